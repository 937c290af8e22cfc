"""Installed plugins: install a verified bundle, re-verify before every load, remove.

Each plugin lives in ``<root>/<name>/``: ``plugin.mwp`` (the signed bundle it came from),
``site/`` (its payload, extracted with every file's hash checked) and ``install.json``. There
are two roots: the user's (``<home>/plugins/installed``) and the Python environment's
(``<sys.prefix>/share/medical-workstation/plugins``, where IT's offline installer puts the
release's plugins). Before a plugin is imported, :func:`verify_installed` checks the bundle's
signatures against the trust roots (revocation and expiry included) and every file under
``site/`` against the signed manifest: a changed, added or missing file refuses the plugin
before any of its code can run. Byte-code caches are deleted first, so a planted ``.pyc``
cannot stand in for checked source.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workstation.config import APP_NAME, paths
from workstation.plugins.errors import PluginError
from workstation.plugins.metadata import PluginMetadata, from_manifest
from workstation.security.bundle import open_bundle
from workstation.security.errors import BundleError, SignatureError, TrustError
from workstation.security.trust import Signer, TrustRoots, format_time, utcnow

__all__ = [
    "InstalledPlugin",
    "install_bundle",
    "installed_folders",
    "remove_plugin",
    "system_root",
    "user_root",
    "verify_installed",
]

BUNDLE_FILE, SITE, RECEIPT = "plugin.mwp", "site", "install.json"
_CHUNK = 1 << 20


def user_root(home: Path | None = None) -> Path:
    """Where ``workstation plugins install`` puts a user's plugins."""
    return (home or paths().home) / "plugins" / "installed"


def system_root() -> Path:
    """Where ``workstation plugins install --system`` puts plugins for every user."""
    return Path(sys.prefix) / "share" / APP_NAME / "plugins"


@dataclass(frozen=True)
class InstalledPlugin:
    """A plugin whose bundle and files verified just now."""

    metadata: PluginMetadata
    folder: Path
    trusted_by: str  # "trust root" | "local key" | "allow-list"
    signers: tuple[Signer, ...]
    expires: dt.datetime

    @property
    def site(self) -> Path:
        return self.folder / SITE

    def top_level(self) -> list[str]:
        """The importable names the plugin adds (its top-level packages and modules)."""
        return top_level_names(self.site)


def top_level_names(site: Path, *, packages_only: bool = False) -> list[str]:
    """Top-level packages (and, unless ``packages_only``, modules) under ``site``."""
    names = set()
    for item in site.iterdir():
        if item.name.endswith((".dist-info", ".data")) or item.name.startswith("."):
            continue
        if item.is_dir() and (not packages_only or (item / "__init__.py").is_file()):
            names.add(item.name)
        elif item.suffix == ".py" and not packages_only:
            names.add(item.stem)
    return sorted(names)


def _trust_errors() -> tuple[type[Exception], ...]:
    return (BundleError, TrustError, SignatureError)


def installed_folders(root: Path) -> list[Path]:
    """Plugin folders under ``root`` (hidden staging folders excluded), by name."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _drop_bytecode(site: Path) -> None:
    for cache in list(site.rglob("__pycache__")):
        if cache.is_dir() and not cache.is_symlink():
            shutil.rmtree(cache)


def _check_files(site: Path, expected: dict[str, tuple[str, int]], name: str) -> None:
    seen = set()
    for dirpath, dirnames, filenames in os.walk(site, followlinks=False):
        for entry in dirnames:
            if Path(dirpath, entry).is_symlink():
                raise PluginError(f"{name}: {entry} is a symbolic link", plugin=name)
        for filename in filenames:
            path = Path(dirpath, filename)
            rel = path.relative_to(site).as_posix()
            if rel not in expected:
                raise PluginError(
                    f"{name} was changed after installation: {rel} is not in its signed "
                    "manifest; the plugin is refused (reinstall it from its bundle)",
                    plugin=name,
                )
            sha, size = expected[rel]
            if path.is_symlink() or path.stat().st_size != size or _sha256(path) != sha:
                raise PluginError(
                    f"{name} was changed after installation: {rel} differs from its signed "
                    "manifest; the plugin is refused (reinstall it from its bundle)",
                    plugin=name,
                )
            seen.add(rel)
    missing = sorted(set(expected) - seen)
    if missing:
        raise PluginError(
            f"{name} is incomplete: {missing[0]} (and {len(missing) - 1} more) missing",
            plugin=name,
        )


def verify_installed(
    folder: Path, *, trust: TrustRoots, now: dt.datetime | None = None
) -> InstalledPlugin:
    """Verify the plugin in ``folder`` completely; nothing of it is imported.

    Raises :class:`PluginError` when the bundle is not trusted (any more), expired, or when a
    file under ``site/`` differs from the signed manifest.
    """
    folder = Path(folder)
    name = folder.name
    try:
        with open_bundle(folder / BUNDLE_FILE, trust=trust, kind="plugin", now=now) as bundle:
            manifest = bundle.manifest
            signers = tuple(bundle.signers)
            trusted_by = bundle.trusted_by
    except _trust_errors() as error:
        raise PluginError(f"{name} is refused: {error}", plugin=name, path=folder) from None
    if manifest.name != name:
        raise PluginError(
            f"{folder} holds the bundle of {manifest.name!r}, not {name!r}", plugin=name
        )
    site = folder / SITE
    _drop_bytecode(site)
    _check_files(site, {f.path: (f.sha256, f.size) for f in manifest.files}, name)
    metadata = from_manifest(manifest.name, str(manifest.version), manifest.requirements)
    return InstalledPlugin(metadata, folder, trusted_by, signers, manifest.expires)


def clashes(top_level: list[str], *sites: Path) -> list[str]:
    """Top-level names that something else than ``sites`` already provides (the plugin must
    not shadow the workstation or a library, nor be shadowed by one)."""
    found = []
    for name in top_level:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        origin = spec and (spec.origin or next(iter(spec.submodule_search_locations or []), ""))
        if spec is not None and not any(str(origin or "").startswith(str(s)) for s in sites):
            found.append(name)
    return found


def _installed_version(root: Path, name: str) -> str | None:
    try:
        return str(json.loads((root / name / RECEIPT).read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def install_bundle(
    bundle_path: str | Path,
    *,
    root: Path,
    trust: TrustRoots,
    actor: str = "",
    allow_downgrade: bool = False,
    now: dt.datetime | None = None,
) -> InstalledPlugin:
    """Verify ``bundle_path`` and install it under ``root``, replacing an older version.

    Refused before anything is written: untrusted, tampered or expired bundles, a lower version
    than the installed one (unless ``allow_downgrade``), an incompatible plugin API or Python,
    missing dependencies (plugins never install packages), and package names that clash.
    """
    source = Path(bundle_path)
    now = now or utcnow()
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    try:
        copy = staging / BUNDLE_FILE
        try:
            shutil.copyfile(source, copy)
        except OSError as error:
            raise PluginError(f"cannot read {source}: {error.strerror}", path=source) from None
        try:
            with open_bundle(copy, trust=trust, kind="plugin", now=now) as peek:
                name = peek.name
            installed = _installed_version(root, name)
            with open_bundle(
                copy,
                trust=trust,
                kind="plugin",
                now=now,
                installed_version=installed,
                allow_downgrade=allow_downgrade,
            ) as bundle:
                manifest = bundle.manifest
                meta = from_manifest(name, str(manifest.version), manifest.requirements)
                _refuse_unusable(meta)
                bundle.extract(staging / SITE)
                trusted_by, signers = bundle.trusted_by, [s.to_json() for s in bundle.signers]
        except _trust_errors() as error:
            raise PluginError(f"{source.name} is refused: {error}", path=source) from None
        receipt = {
            "name": name,
            "version": str(manifest.version),
            "installed": format_time(now),
            "installed_by": actor,
            "bundle_sha256": _sha256(copy),
            "trusted_by": trusted_by,
            "signers": signers,
            "replaced": installed,
        }
        (staging / RECEIPT).write_text(json.dumps(receipt, indent=2) + "\n", encoding="utf-8")
        probe = InstalledPlugin(meta, staging, trusted_by, (), manifest.expires)
        clash = clashes(probe.top_level(), staging / SITE, root / name / SITE)
        if clash:
            raise PluginError(
                f"{name} provides {', '.join(clash)}, which this environment already has; "
                "rename the plugin's package",
                plugin=name,
            )
        _swap_into_place(staging, root / name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return verify_installed(root / name, trust=trust, now=now)


def _refuse_unusable(meta: PluginMetadata) -> None:
    problem = meta.incompatibility()
    if problem:
        raise PluginError(problem, plugin=meta.name)
    missing = meta.missing_dependencies()
    if missing:
        raise PluginError(
            f"{meta.name} needs {'; '.join(missing)}. Plugins never install packages: ask IT "
            "for a workstation release that includes them",
            plugin=meta.name,
        )


def _swap_into_place(staging: Path, target: Path) -> None:
    old = None
    if target.exists():
        old = target.with_name(f".old-{target.name}-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    try:
        os.replace(staging, target)
    except OSError:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def remove_plugin(name: str, *, root: Path) -> dict[str, Any]:
    """Remove the installed plugin ``name`` from ``root``; its receipt is returned."""
    folder = root / name
    if not (folder / BUNDLE_FILE).is_file():
        raise PluginError(f"{name} is not installed in {root}", plugin=name)
    try:
        receipt = json.loads((folder / RECEIPT).read_text())
    except (OSError, ValueError):
        receipt = {"name": name}
    graveyard = folder.with_name(f".removing-{name}-{os.getpid()}")
    os.replace(folder, graveyard)
    shutil.rmtree(graveyard, ignore_errors=True)
    return receipt

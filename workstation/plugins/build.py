"""Build a plugin: its wheel (pip, no network) and the signed plugin bundle made from it.

The bundle's payload is the wheel unpacked (the plugin's packages and its ``*.dist-info``), so
installing it is a verified extraction; the manifest's ``requirements`` carry the metadata the
workstation needs before importing anything (:mod:`workstation.plugins.metadata`).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from workstation.plugins.errors import PluginError
from workstation.plugins.metadata import PluginMetadata, from_dist_info, read_pyproject
from workstation.security.bundle import Manifest, write_bundle
from workstation.security.sign import HybridSigningKey

__all__ = ["build_plugin_bundle", "build_plugin_wheel", "unpack_wheel"]

BUNDLE_SUFFIX = ".mwp"
_BUILD_LITTER = shutil.ignore_patterns(
    "build", "dist", "*.egg-info", "__pycache__", ".git", ".pytest_cache", ".ruff_cache"
)


def build_plugin_wheel(src_dir: str | Path, wheel_dir: str | Path) -> Path:
    """Build ``src_dir``'s wheel into ``wheel_dir`` with pip (no build isolation, no index)."""
    src, wheel_dir = Path(src_dir).resolve(), Path(wheel_dir)
    read_pyproject(src)  # a clear error before pip's
    wheel_dir.mkdir(parents=True, exist_ok=True)
    before = set(wheel_dir.glob("*.whl"))
    with tempfile.TemporaryDirectory(prefix="mw-plugin-build-") as scratch:
        # Build from a clean copy: setuptools writes build/ and *.egg-info into the tree.
        tree = Path(scratch) / "src"
        shutil.copytree(src, tree, ignore=_BUILD_LITTER, symlinks=True)
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
        command += ["--no-index", "--disable-pip-version-check", "-q"]
        command += ["-w", str(wheel_dir.resolve()), str(tree)]
        env = os.environ | {"PIP_NO_INPUT": "1", "TMPDIR": scratch}
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()[-12:]
        raise PluginError(f"building the wheel of {src} failed:\n" + "\n".join(detail), path=src)
    built = (
        sorted(set(wheel_dir.glob("*.whl")) - before)
        or sorted(wheel_dir.glob("*.whl"), key=lambda p: p.stat().st_mtime)[-1:]
    )
    if not built:
        raise PluginError(f"pip built no wheel for {src}", path=src)
    return built[-1]


def unpack_wheel(wheel: Path, dest: Path) -> Path:
    """Unpack ``wheel`` into ``dest`` (refusing unsafe names); return its ``*.dist-info``."""
    dest = dest.resolve()
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            target = (dest / info.filename).resolve()
            if not target.is_relative_to(dest) or info.filename.startswith("/"):
                raise PluginError(f"{wheel.name}: unsafe path {info.filename!r}", path=wheel)
            if info.filename.split("/", 1)[0].endswith(".data"):
                raise PluginError(
                    f"{wheel.name} installs data files ({info.filename}); plugins keep their "
                    "files inside their package (use importlib.resources)",
                    path=wheel,
                )
        archive.extractall(dest)
    infos = list(dest.glob("*.dist-info"))
    if len(infos) != 1:
        raise PluginError(f"{wheel.name} has {len(infos)} .dist-info folders", path=wheel)
    return infos[0]


def plugin_metadata(src_dir: Path, dist_info: Path) -> PluginMetadata:
    """The metadata of a built plugin: its wheel's, plus the API it declares in pyproject."""
    doc = read_pyproject(src_dir)
    api = str(doc.get("tool", {}).get("medical-workstation", {}).get("plugin-api", "")).strip()
    return from_dist_info(dist_info, api)


def build_plugin_bundle(
    src_dir: str | Path,
    out: str | Path,
    *,
    signing_keys: Sequence[HybridSigningKey],
    expires: dt.timedelta = dt.timedelta(days=365),
    wheel: Path | None = None,
) -> Manifest:
    """Build (or take) ``src_dir``'s wheel and write it, signed, as a plugin bundle at ``out``."""
    src = Path(src_dir).resolve()
    with tempfile.TemporaryDirectory(prefix="mw-plugin-bundle-") as scratch:
        work = Path(scratch)
        wheel = wheel or build_plugin_wheel(src, work / "wheel")
        payload = work / "payload"
        dist_info = unpack_wheel(Path(wheel), payload)
        meta = plugin_metadata(src, dist_info)
        problem = meta.api_problem()
        if problem:
            raise PluginError(problem, plugin=meta.name, path=src)
        return write_bundle(
            payload,
            out,
            kind="plugin",
            name=meta.name,
            version=meta.version,
            signing_keys=signing_keys,
            expires=expires,
            requirements=meta.requirements(),
        )

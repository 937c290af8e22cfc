"""``medws-install.pyz verify BUNDLE [--json]`` and ``install BUNDLE --prefix DIR``.

Exit codes: 0 verified / installed, 1 refused or failed (the reason on stderr, or in the JSON),
2 usage error.

``install`` verifies everything first (threshold release signatures against the embedded trust
root, expiry, no downgrade below the receipt ``DIR/medws-release.json``, every payload hash, the
Python version and platform the wheels were built for) and changes nothing under DIR unless the
release passes. Then, under DIR::

    .staging-<version>-<random>/   the extracted payload (hash-checked as written; removed)
    venvs/<version>-<time>/        a new virtual environment (pip, offline, --require-hashes)
    venv -> venvs/<version>-<time> a symbolic link, swapped atomically once the smoke check passed
    medws-release.json             the receipt

The previous venv stays in use until the new one passed its smoke check, then is removed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import pkgutil
import re
import secrets
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medws_install import _bootstrap

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2
RECEIPT = "medws-release.json"
LOCK_FILE = ".medws-install.lock"
RELEASE_KIND = "release"
USABLE = ("ready", "loaded")  # plugin states `workstation plugins list` reports as usable


class Refused(Exception):
    """The release is refused, or the installation failed; the message says why."""


def _say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


# -- verification ------------------------------------------------------------------------------


def trust_root_bytes() -> bytes:
    raw = pkgutil.get_data("medws_install", "data/root.json")
    if raw is None:
        raise Refused("this installer lacks its trust root (data/root.json); rebuild it")
    return raw


def verify(bundle: Path, *, installed: str | None = None, allow_downgrade: bool = False) -> dict:
    """Verify ``bundle`` completely (nothing written); return what ``verify --json`` prints."""
    if not bundle.is_file():
        raise Refused(f"{bundle} is not a file")
    try:
        crypto = _bootstrap.ensure_cryptography(bundle)
    except _bootstrap.BootstrapError as error:
        raise Refused(str(error)) from None
    from workstation.core.errors import WorkstationError
    from workstation.security.bundle import open_bundle
    from workstation.security.trust import TrustRoots

    started = time.perf_counter()
    try:
        roots = TrustRoots.from_bytes(trust_root_bytes())
        with open_bundle(
            bundle,
            trust=roots,
            kind=RELEASE_KIND,
            installed_version=installed,
            allow_downgrade=allow_downgrade,
        ) as vb:
            vb.verify_payload()
            release = json.loads(_member(vb, "release.json"))
            sbom = json.loads(_member(vb, "sbom.cdx.json"))
            result = vb.to_json()
    except WorkstationError as error:
        raise Refused(f"{type(error).__name__}: {error}") from None
    except (KeyError, ValueError) as error:
        raise Refused(f"the release's release.json or SBOM is unreadable: {error}") from None
    result.update(
        ok=True,
        seconds=round(time.perf_counter() - started, 3),
        trust_root_version=roots.version,
        cryptography=crypto,
        release=release,
        sbom_components=len(sbom.get("components", [])),
    )
    return result


def _member(vb: Any, rel: str, limit: int = 64 << 20) -> bytes:
    """The bytes of one small payload file, checked against the (verified) manifest."""
    # The installer ships with this bundle module: its private fields are fair to read.
    for entry, record in vb._files:
        if record.path == rel:
            if record.size > limit:
                raise ValueError(f"{rel} is too large ({record.size} bytes)")
            vb._file.seek(entry.data_offset)
            data = vb._file.read(entry.csize)
            if entry.method == 8:
                import zlib

                data = zlib.decompress(data, -15)
            if hashlib.sha256(data).hexdigest() != record.sha256:
                raise ValueError(f"{rel} does not match its manifest hash")
            return data
    raise KeyError(f"the release has no {rel}")


def compatibility_problem(release: dict) -> str | None:
    """Why this Python cannot run the release's wheels, or None."""
    python = release.get("python", {})
    want = python.get("version")
    have = f"{sys.version_info.major}.{sys.version_info.minor}"
    if want and want != have:
        return (
            f"the release's wheels are for Python {want}; this is Python {have} ({sys.executable})"
        )
    platform = release.get("platform")
    if platform and platform != sysconfig.get_platform():
        return f"the release is for {platform}; this machine is {sysconfig.get_platform()}"
    return None


def _print_verified(info: dict) -> None:
    release = info["release"]
    signers = ", ".join(f"{s['key_id']} ({s['role']}, {s['source']})" for s in info["signers"])
    _say(f"Release   {info['name']} {info['version']}")
    _say(f"Created   {info['created']}")
    _say(f"Expires   {info['expires']}")
    _say(f"Signers   {signers}")
    _say(f"Files     {info['files']} ({_size(info['bytes'])})")
    counts = release.get("counts", {})
    _say(f"Wheels    {counts.get('wheels', '?')}; plugins {counts.get('plugins', '?')}")
    _say(f"SBOM      {info['sbom_components']} components")
    python = release.get("python", {})
    _say(f"Python    {python.get('version', '?')} ({release.get('platform', '?')})")
    _say(f"Crypto    cryptography from the {info['cryptography']}")
    _say(
        f"OK: verified against the embedded trust root (version {info['trust_root_version']}) "
        f"in {info['seconds']:.2f} s"
    )
    for warning in info.get("warnings", []):
        _say(f"warning: {warning}")


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n} bytes"


# -- installation ------------------------------------------------------------------------------


def read_receipt(prefix: Path) -> dict | None:
    path = prefix / RECEIPT
    if not path.exists():
        return None
    try:
        receipt = json.loads(path.read_text())
        str(receipt["version"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise Refused(f"the receipt {path} is unreadable ({error}); fix or remove it") from None
    return receipt


def _clean_env(home: Path) -> dict[str, str]:
    """The environment of the venv's commands: no pip configuration (no index, ever), no
    inherited Python path, a scratch workstation home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    env.update(
        PIP_CONFIG_FILE=os.devnull,
        PIP_NO_INDEX="1",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
        PYTHONNOUSERSITE="1",
        WORKSTATION_HOME=str(home),
    )
    env.pop("WORKSTATION_RESOURCES", None)
    return env


def _run(cmd: list[str], env: dict[str, str], what: str) -> str:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-4000:]
        raise Refused(f"{what} failed (exit {done.returncode}): {' '.join(cmd)}\n{tail}")
    return done.stdout


@contextlib.contextmanager
def _locked(prefix: Path) -> Iterator[None]:
    import fcntl

    with open(prefix / LOCK_FILE, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise Refused(f"another installation into {prefix} is running") from None
        yield


def install(bundle: Path, prefix: Path, *, allow_downgrade: bool = False) -> dict:
    """Verify, then install (see the module docstring). Returns the receipt."""
    started = time.perf_counter()
    prefix = prefix.absolute()
    if prefix.exists() and not prefix.is_dir():
        raise Refused(f"{prefix} exists and is not a folder")
    receipt = read_receipt(prefix) if prefix.is_dir() else None
    link = prefix / "venv"
    if link.exists() and not link.is_symlink():
        raise Refused(f"{link} is a folder, not this installer's venv link; move it away first")
    installed = receipt["version"] if receipt else None
    info = verify(bundle, installed=installed, allow_downgrade=allow_downgrade)
    problem = compatibility_problem(info["release"])
    if problem:
        raise Refused(problem)
    version = info["version"]
    _say(f"verified {info['name']} {version} ({info['seconds']:.2f} s); installing into {prefix}")

    # -- nothing under the prefix changed until here ---------------------------------------
    prefix.mkdir(parents=True, exist_ok=True)
    with _locked(prefix):
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        staging = prefix / f".staging-{version}-{secrets.token_hex(4)}"
        venv = prefix / "venvs" / f"{version}-{stamp}-{secrets.token_hex(2)}"
        try:
            plugins = _install_into(bundle, staging, venv, info, allow_downgrade)
        except BaseException:
            shutil.rmtree(venv, ignore_errors=True)
            shutil.rmtree(staging, ignore_errors=True)
            raise
        # -- swap: the new venv becomes current, then the receipt says so ---------------------
        tmp_link = prefix / f".venv-{secrets.token_hex(4)}"
        os.symlink(os.path.relpath(venv, prefix), tmp_link)
        os.replace(tmp_link, link)
        new_receipt = {
            "name": info["name"],
            "version": version,
            "created": info["created"],
            "expires": info["expires"],
            "installed": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "bundle": str(bundle.absolute()),
            "bundle_sha256": _sha256(bundle),
            "signers": [s["key_id"] for s in info["signers"]],
            "venv": os.path.relpath(venv, prefix),
            "python": sys.executable,
            "plugins": plugins,
            "previous_version": installed,
        }
        tmp = prefix / f".{RECEIPT}.{secrets.token_hex(4)}"
        tmp.write_text(json.dumps(new_receipt, indent=2) + "\n")
        os.replace(tmp, prefix / RECEIPT)
        if receipt and receipt.get("venv"):
            old = (prefix / receipt["venv"]).resolve()
            if old != venv.resolve() and old.parent == (prefix / "venvs").resolve():
                shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)
    new_receipt["seconds"] = round(time.perf_counter() - started, 1)
    return new_receipt


def _install_into(
    bundle: Path, staging: Path, venv: Path, info: dict, allow_downgrade: bool
) -> list[dict]:
    from workstation.security.bundle import open_bundle
    from workstation.security.trust import TrustRoots

    staging.mkdir()
    payload = staging / "payload"
    roots = TrustRoots.from_bytes(trust_root_bytes())
    # Re-open: the file is verified again as it is extracted (each file's hash as written).
    with open_bundle(bundle, trust=roots, kind=RELEASE_KIND, allow_downgrade=True) as vb:
        if str(vb.version) != info["version"]:
            raise Refused("the bundle changed while it was being installed")
        vb.extract(payload)
    env = _clean_env(staging / "home")
    venv.parent.mkdir(parents=True, exist_ok=True)
    _say(f"creating {venv}")
    _run([sys.executable, "-m", "venv", str(venv)], env, "creating the virtual environment")
    python = venv / "bin" / "python"
    _say("installing the wheels (offline, --require-hashes)")
    pip = [str(python), "-m", "pip", "install", "--no-index", "--no-cache-dir"]
    pip += ["--find-links", str(payload / "wheels"), "--require-hashes"]
    pip += ["-r", str(payload / "requirements.lock")]
    _run(pip, env, "pip install")
    workstation = str(venv / "bin" / "workstation")
    bundles = sorted((payload / "plugins").glob("*.mwp")) if (payload / "plugins").is_dir() else []
    for mwp in bundles:
        _say(f"installing the plugin {mwp.name}")
        _run([workstation, "plugins", "install", "--system", str(mwp)], env, f"plugin {mwp.name}")
    # -- smoke check -----------------------------------------------------------------------
    version_out = _run([workstation, "--version"], env, "workstation --version").strip()
    listing = json.loads(_run([workstation, "plugins", "list", "--json"], env, "plugins list"))
    listed = listing.get("plugins", []) if isinstance(listing, dict) else listing
    app_version = info["release"].get("app_version")
    if app_version and app_version not in version_out:
        raise Refused(
            f"smoke check: `workstation --version` says {version_out!r}, expected {app_version}"
        )
    want = {_canon(p["name"]) for p in info["release"].get("plugins", [])}
    ok = {_canon(p.get("name", "")) for p in listed if p.get("state") in USABLE}
    if want - ok:
        raise Refused(f"smoke check: plugins not usable: {sorted(want - ok)}; listed: {listed}")
    _say(f"smoke check ok: {version_out}; plugins: {sorted(ok) or 'none'}")
    return [
        {k: p.get(k) for k in ("name", "version", "state", "trusted_by")}
        for p in listed
        if _canon(p.get("name", "")) in want
    ]


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()


# -- the command line --------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medws-install.pyz",
        description="Verify and install a signed Medical Workstation release, offline.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    v = actions.add_parser("verify", help="verify a release bundle without installing anything")
    v.add_argument("bundle", metavar="BUNDLE", type=Path)
    v.add_argument("--json", action="store_true", help="print the result as JSON")
    i = actions.add_parser("install", help="verify, then install a release into a prefix")
    i.add_argument("bundle", metavar="BUNDLE", type=Path)
    i.add_argument("--prefix", metavar="DIR", type=Path, required=True)
    i.add_argument(
        "--allow-downgrade", action="store_true", help="install a version older than the receipt"
    )
    i.add_argument("--json", action="store_true", help="print the receipt as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.action == "verify":
            info = verify(args.bundle)
            problem = compatibility_problem(info["release"])
            if problem:
                info["warnings"] = [*info.get("warnings", []), f"cannot install here: {problem}"]
            if args.json:
                _say(json.dumps(info, indent=2))
            else:
                _print_verified(info)
            return EXIT_OK
        receipt = install(args.bundle, args.prefix, allow_downgrade=args.allow_downgrade)
        if args.json:
            _say(json.dumps({"ok": True, **receipt}, indent=2))
        else:
            command = args.prefix / "venv" / "bin" / "workstation"
            _say(
                f"installed {receipt['name']} {receipt['version']} into {args.prefix} "
                f"in {receipt['seconds']} s; run {command}"
            )
        return EXIT_OK
    except Refused as error:
        if getattr(args, "json", False):
            _say(json.dumps({"ok": False, "path": str(args.bundle), "error": str(error)}))
        _err(f"refused: {error}")
        return EXIT_REFUSED
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_REFUSED

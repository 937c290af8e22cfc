"""Fixtures for the release tests: a throwaway trust root (2-of-3 release keys), the pinned
cryptography wheels, and small signed releases built with the real build functions.

``$MEDWS_WHEELHOUSE``, when set, is the wheel cache the builds use (and fill).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGING = REPO / "packaging"
if str(PACKAGING) not in sys.path:
    sys.path.insert(0, str(PACKAGING))

import _release_wheelhouse as wh  # noqa: E402
import build_release  # noqa: E402
from _release_installer import build_installer  # noqa: E402
from _release_sbom import SBOM_NAME, write_sbom  # noqa: E402
from security.bundle_kit import Publisher  # noqa: E402

from workstation.security.sign import HybridSigningKey  # noqa: E402

MakeRelease = Callable[..., Path]


def wheel_cache() -> Path | None:
    value = os.environ.get("MEDWS_WHEELHOUSE", "").strip()
    return Path(value) if value else None


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def run_installer(
    pyz: Path,
    *args: str | Path,
    python: str | Path = sys.executable,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python pyz ARGS`` in a clean environment (no PYTHONPATH: the pyz is self-contained)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return subprocess.run(
        [str(python), str(pyz), *map(str, args)],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        cwd=pyz.parent,
        timeout=600,
    )


def tree_snapshot(folder: Path) -> dict[str, tuple[int, int]] | None:
    """Every path under ``folder`` with its size and mtime (None when it does not exist)."""
    if not folder.exists():
        return None
    return {
        str(p.relative_to(folder)): (p.lstat().st_size, p.lstat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


FAKE_APP = """\
import json, sys

VERSION = {version!r}


def main():
    args = sys.argv[1:]
    if {broken!r}:
        sys.stderr.write("broken build\\n")
        return 3
    if args == ["--version"]:
        print("workstation", VERSION)
    elif args[:2] == ["plugins", "list"]:
        print(json.dumps({{"api_version": "1.0", "developer_mode": False, "plugins": []}}))
    else:
        return 2
    return 0
"""


def fake_app_wheel(folder: Path, version: str, *, broken: bool = False) -> Path:
    """A tiny ``medical-workstation`` wheel whose ``workstation`` script answers the installer's
    smoke check (``--version``, ``plugins list --json``), or fails it when ``broken``."""
    import base64
    import hashlib
    import zipfile

    dist = f"medical_workstation-{version}.dist-info"
    files = {
        "fake_workstation/__init__.py": FAKE_APP.format(version=version, broken=broken),
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: medical-workstation\n"
        f"Version: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
        f"{dist}/entry_points.txt": "[console_scripts]\nworkstation = fake_workstation:main\n",
    }
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{name},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = "\n".join(record) + "\n"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"medical_workstation-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return path


@pytest.fixture(scope="session")
def publisher() -> Publisher:
    """Throwaway keys: release 2-of-3, root 2-of-3, one plugin key (valid until 2031)."""
    return Publisher.make()


@pytest.fixture(scope="session")
def root_file(publisher: Publisher, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return publisher.write_root(tmp_path_factory.mktemp("root") / "root.json")


@pytest.fixture(scope="session")
def crypto_wheels(tmp_path_factory: pytest.TempPathFactory) -> list[wh.Wheel]:
    """cryptography (the installed version) and what it needs, as pinned wheels."""
    from importlib.metadata import version

    dest = tmp_path_factory.mktemp("crypto-wheels")
    return wh.download(
        [f"cryptography=={version('cryptography')}"],
        dest,
        constraints=wh.installed_constraints(["cryptography"]),
        cache=wheel_cache(),
    )


@pytest.fixture(scope="session")
def installer(
    crypto_wheels: list[wh.Wheel], root_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("installer") / build_release.INSTALLER
    return build_installer(out, root=root_file.read_bytes(), pins=wh.bootstrap_pins(crypto_wheels))


@pytest.fixture(scope="session")
def make_release(
    crypto_wheels: list[wh.Wheel], root_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> MakeRelease:
    """``make_release(version=..., keys=[...], created=..., expires=..., app_wheel=...)``: a
    small release (the cryptography wheels unless ``crypto`` is false, and ``app_wheel`` when
    given, as its wheelhouse; no plugins) in a new folder."""

    def make(
        *,
        keys: list[HybridSigningKey],
        version: str = "1.0.0",
        created: dt.datetime | None = None,
        expires: dt.timedelta | dt.datetime = dt.timedelta(days=30),
        app_wheel: Path | None = None,
        crypto: bool = True,
    ) -> Path:
        created = created or utcnow()
        work = tmp_path_factory.mktemp("release")
        payload = work / "payload"
        (payload / "wheels").mkdir(parents=True)
        for w in crypto_wheels if crypto else ():
            os.link(w.path, payload / "wheels" / w.path.name)
        if app_wheel is not None:
            os.link(app_wheel, payload / "wheels" / app_wheel.name)
        wheels = wh.wheels_in(payload / "wheels")
        wh.write_lock(wheels, payload / wh.LOCK_NAME)
        app_name = "medical-workstation" if app_wheel is not None else "cryptography"
        app = next(w for w in wheels if w.name == app_name)
        count = write_sbom(payload / SBOM_NAME, app=app, wheels=wheels, created=created)
        (payload / "trust").mkdir()
        (payload / "trust" / "root.json").write_bytes(root_file.read_bytes())
        info = build_release.release_info(
            version=version, app=app, wheels=wheels, plugins=[], sbom_components=count,
            created=created, requires=">=3.11",
        )  # fmt: skip
        (payload / "release.json").write_text(json.dumps(info, indent=2))
        out = work / "out"
        return build_release.seal(
            payload, out, version=version, keys=keys, expires=expires, created=created
        )

    return make


@pytest.fixture(scope="session")
def good_release(make_release: MakeRelease, publisher: Publisher) -> Path:
    return make_release(keys=publisher.keys["release"][:2])

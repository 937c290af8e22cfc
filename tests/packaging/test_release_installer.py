"""The release installer (``medws-install.pyz``): verify, and every refusal before the prefix
is created or changed; the cryptography bootstrap from pinned wheels on a bare Python."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import _release_wheelhouse as wh
import pytest
from conftest import MakeRelease, run_installer, tree_snapshot, utcnow
from security.bundle_kit import Publisher

from workstation.security import _zipfmt


def _json(done: subprocess.CompletedProcess[str]) -> dict:
    return json.loads(done.stdout)


def test_verify_ok(installer: Path, good_release: Path, crypto_wheels: list[wh.Wheel]) -> None:
    done = run_installer(installer, "verify", good_release, "--json")
    assert done.returncode == 0, done.stderr
    info = _json(done)
    assert info["ok"] is True
    assert (info["kind"], info["name"], info["version"]) == (
        "release", "medical-workstation", "1.0.0",
    )  # fmt: skip
    assert len(info["signers"]) == 2
    assert {s["role"] for s in info["signers"]} == {"release"}
    assert info["sbom_components"] == len(crypto_wheels)
    assert info["cryptography"] == "environment"
    assert info["files"] == len(crypto_wheels) + 4  # wheels, lock, sbom, root, release.json

    text = run_installer(installer, "verify", good_release)
    assert text.returncode == 0, text.stderr
    for word in ("Release", "Expires", "Signers", "SBOM", "OK: verified"):
        assert word in text.stdout


def test_usage_errors_exit_2(installer: Path, good_release: Path) -> None:
    assert run_installer(installer).returncode == 2
    assert run_installer(installer, "install", good_release).returncode == 2  # no --prefix
    assert run_installer(installer, "frobnicate").returncode == 2


def _flip_payload_byte(src: Path, dest: Path) -> Path:
    shutil.copy(src, dest)
    with dest.open("r+b") as f:
        entries = _zipfmt.read_directory(f, dest.stat().st_size).entries
        entry = next(e for e in entries if e.name.startswith("payload/wheels/") and e.csize > 100)
        at = entry.data_offset + entry.csize // 2
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0x01]))
    return dest


def _refused(installer: Path, bundle: Path, prefix: Path, *extra: str) -> str:
    before = tree_snapshot(prefix)
    check = run_installer(installer, "verify", bundle)
    assert check.returncode == 1, check.stdout
    done = run_installer(installer, "install", bundle, "--prefix", prefix, *extra)
    assert done.returncode == 1, done.stdout
    assert "refused" in done.stderr
    assert tree_snapshot(prefix) == before  # not created, not changed
    return done.stderr


def test_tampered_release_is_refused(installer: Path, good_release: Path, tmp_path: Path) -> None:
    bad = _flip_payload_byte(good_release, tmp_path / good_release.name)
    error = _refused(installer, bad, tmp_path / "prefix")
    assert "does not match the signed manifest" in error


def test_one_release_signature_is_refused(
    installer: Path, make_release: MakeRelease, publisher: Publisher, tmp_path: Path
) -> None:
    bundle = make_release(keys=[publisher.key("release", 2)])
    error = _refused(installer, bundle, tmp_path / "prefix")
    assert "threshold 1 of 2" in error


def test_expired_release_is_refused(
    installer: Path, make_release: MakeRelease, publisher: Publisher, tmp_path: Path
) -> None:
    now = utcnow()
    bundle = make_release(
        keys=publisher.keys["release"][:2],
        created=now - dt.timedelta(days=10),
        expires=now - dt.timedelta(days=1),
    )
    error = _refused(installer, bundle, tmp_path / "prefix")
    assert "expired" in error


def test_downgrade_is_refused(installer: Path, good_release: Path, tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    (prefix / "venvs" / "2.0.0-x" / "bin").mkdir(parents=True)
    receipt = {"name": "medical-workstation", "version": "2.0.0", "venv": "venvs/2.0.0-x"}
    (prefix / "medws-release.json").write_text(json.dumps(receipt))
    before = tree_snapshot(prefix)
    done = run_installer(installer, "install", good_release, "--prefix", prefix)
    assert done.returncode == 1
    assert "2.0.0" in done.stderr and "1.0.0" in done.stderr
    assert tree_snapshot(prefix) == before


def test_a_prefix_that_is_a_file_is_refused(
    installer: Path, good_release: Path, tmp_path: Path
) -> None:
    prefix = tmp_path / "file"
    prefix.write_text("not a folder")
    done = run_installer(installer, "install", good_release, "--prefix", prefix)
    assert done.returncode == 1 and "not a folder" in done.stderr
    assert prefix.read_text() == "not a folder"


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Python with the standard library only (no cryptography, no numpy, no pip)."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    probe = subprocess.run([python, "-c", "import cryptography"], capture_output=True)
    assert probe.returncode != 0, "the bare venv must not see cryptography"
    return python


def test_verify_on_a_bare_python_uses_the_pinned_wheels(
    installer: Path, good_release: Path, bare_python: Path
) -> None:
    done = run_installer(installer, "verify", good_release, "--json", python=bare_python)
    assert done.returncode == 0, done.stderr
    info = _json(done)
    assert info["ok"] is True
    assert info["cryptography"] == "release bundle (pinned wheels)"


def test_bare_python_refuses_wheels_that_do_not_match_the_pins(
    installer: Path, good_release: Path, bare_python: Path, tmp_path: Path
) -> None:
    # The same installer with one pin changed: the bundle's (authentic) wheel no longer matches.
    forged = tmp_path / "forged.pyz"
    with zipfile.ZipFile(installer) as src, zipfile.ZipFile(forged, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "medws_install/data/pins.json":
                meta = json.loads(data)
                name = next(iter(meta["wheels"]))
                meta["wheels"][name] = "0" * 64
                data = json.dumps(meta).encode()
            dst.writestr(item, data)
    done = run_installer(forged, "verify", good_release, python=bare_python)
    assert done.returncode == 1
    assert "pinned in this installer" in done.stderr


def test_installer_is_reproducible_and_minimal(
    installer: Path, root_file: Path, crypto_wheels: list[wh.Wheel], tmp_path: Path
) -> None:
    from _release_installer import build_installer

    again = build_installer(
        tmp_path / "again.pyz", root=root_file.read_bytes(), pins=wh.bootstrap_pins(crypto_wheels)
    )
    assert again.read_bytes() == installer.read_bytes()
    with zipfile.ZipFile(installer) as zf:
        names = set(zf.namelist())
        assert zf.read("medws_install/data/root.json") == root_file.read_bytes()
    modules = {n for n in names if n.startswith("workstation/")}
    assert "workstation/security/bundle.py" in modules
    for heavy in ("workstation/core/volume.py", "workstation/config.py",
                  "workstation/security/keystore.py", "workstation/cli.py"):  # fmt: skip
        assert heavy not in modules
    assert set(json.loads(zipfile.ZipFile(installer).read("medws_install/data/pins.json"))[
        "wheels"]) == {w.path.name for w in crypto_wheels}  # fmt: skip

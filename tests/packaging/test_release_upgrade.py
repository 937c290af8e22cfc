"""Installing, upgrading and a failed upgrade with small releases (a stand-in app wheel whose
``workstation`` script answers the smoke check): the venv swap, the receipt, the rollback."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import MakeRelease, fake_app_wheel, run_installer, tree_snapshot
from security.bundle_kit import Publisher


@pytest.fixture
def release_of(
    make_release: MakeRelease, publisher: Publisher, tmp_path: Path
) -> Callable[..., Path]:
    def make(version: str, *, broken: bool = False) -> Path:
        wheel = fake_app_wheel(tmp_path / f"app-{version}-{broken}", version, broken=broken)
        return make_release(keys=publisher.keys["release"][1:], version=version, app_wheel=wheel,
                            crypto=False)  # fmt: skip

    return make


def _receipt(prefix: Path) -> dict:
    return json.loads((prefix / "medws-release.json").read_text())


def test_install_then_upgrade_swaps_the_venv(
    installer: Path, release_of: Callable[..., Path], tmp_path: Path
) -> None:
    prefix = tmp_path / "prefix"
    first = run_installer(installer, "install", release_of("1.0.0"), "--prefix", prefix)
    assert first.returncode == 0, first.stderr
    receipt = _receipt(prefix)
    assert receipt["version"] == "1.0.0" and receipt["previous_version"] is None
    assert os.readlink(prefix / "venv") == receipt["venv"]
    old_venv = prefix / receipt["venv"]
    assert (prefix / "venv" / "bin" / "workstation").exists()
    assert not list(prefix.glob(".staging-*"))

    second = run_installer(installer, "install", release_of("1.1.0"), "--prefix", prefix, "--json")
    assert second.returncode == 0, second.stderr
    receipt = _receipt(prefix)
    assert receipt["version"] == "1.1.0" and receipt["previous_version"] == "1.0.0"
    assert os.readlink(prefix / "venv") == receipt["venv"]
    assert not old_venv.exists()  # removed once the new one passed
    assert [p.name for p in (prefix / "venvs").iterdir()] == [Path(receipt["venv"]).name]
    assert not list(prefix.glob(".staging-*"))


def test_a_failed_upgrade_keeps_the_installed_release(
    installer: Path, release_of: Callable[..., Path], tmp_path: Path
) -> None:
    prefix = tmp_path / "prefix"
    first = run_installer(installer, "install", release_of("1.0.0"), "--prefix", prefix)
    assert first.returncode == 0, first.stderr
    before = tree_snapshot(prefix)
    done = run_installer(installer, "install", release_of("1.2.0", broken=True), "--prefix", prefix)
    assert done.returncode == 1
    assert "smoke" in done.stderr or "workstation --version" in done.stderr
    after = tree_snapshot(prefix)
    assert after is not None and before is not None
    assert set(after) == set(before)  # the new venv and the staging copy are gone
    receipt = (prefix / "medws-release.json").read_text()
    assert json.loads(receipt)["version"] == "1.0.0"
    assert after["medws-release.json"] == before["medws-release.json"]
    assert (prefix / "venv" / "bin" / "workstation").exists()

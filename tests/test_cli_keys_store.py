"""`keys rotate` re-wraps the encrypted result store; `keys retire` refuses while the store
still holds ciphertexts under the version, and succeeds after the re-wrap."""

from __future__ import annotations

from pathlib import Path

import pytest
from store.store_kit import FINDING_TEXT, sample_result

from workstation.cli import main
from workstation.security.keystore import KeyStore, default_folder
from workstation.store import ResultStore


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WORKSTATION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WORKSTATION_PASSPHRASE", "a long test passphrase")
    monkeypatch.delenv("WORKSTATION_STORE_URL", raising=False)
    assert main(["keys", "init", "--kek", "passphrase"]) == 0
    return tmp_path / "home"


def _save(keys: KeyStore) -> str:
    with ResultStore.open(keys=keys.data_keys, actor="test") as store:
        return store.save_result(sample_result(maps=1, map_bytes=5000))


def test_rotate_rewraps_the_store_and_retire_then_succeeds(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result_id = _save(KeyStore.open(default_folder()))
    assert main(["keys", "retire", "1", "--yes"]) == 1  # the store still uses version 1
    assert "error" in capsys.readouterr().err
    assert main(["keys", "rotate"]) == 0
    out = capsys.readouterr().out
    assert " 0 stored" not in out and "re-wrapped" in out
    assert main(["keys", "retire", "1", "--yes"]) == 0
    keys = KeyStore.open(default_folder())
    with ResultStore.open(keys=keys.data_keys, actor="test") as store:
        result = store.get_result(result_id)
    assert result.findings[0].text == FINDING_TEXT


def test_rotate_without_a_store_creates_none(home: Path) -> None:
    assert main(["keys", "rotate"]) == 0
    assert not (home / "store" / "results.db").exists()

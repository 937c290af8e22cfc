"""``workstation models`` with the shipped demo bundle, a temporary home and a real key store."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from workstation import cli_models
from workstation.cli import main
from workstation.core.errors import WorkstationError
from workstation.inference.catalogue import shipped_models_dir

DEMO = shipped_models_dir() / "demo-lesion-seg-0.1.0.mwb"


def models(*argv: str) -> int:
    """Run ``workstation models ...`` as ``workstation.cli.main`` would (errors → exit 1)."""
    parser = argparse.ArgumentParser(prog="workstation")
    cli_models.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["models", *argv])
    try:
        return cli_models.run(args)
    except WorkstationError as error:
        import sys

        sys.stderr.write(f"error: {error}\n")
        return 1


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WORKSTATION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WORKSTATION_PASSPHRASE", "a long test passphrase")
    monkeypatch.delenv("WORKSTATION_STORE_URL", raising=False)
    assert main(["keys", "init", "--kek", "passphrase"]) == 0
    return tmp_path / "home"


def _rows(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    assert models("list", "--json") == 0
    return json.loads(capsys.readouterr().out)["models"]


def test_install_list_activate_and_refusals(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert models("list") == 0
    assert "no model versions" in capsys.readouterr().out
    assert models("install", str(DEMO)) == 0
    assert "demo-lesion-seg 0.1.0: installed" in capsys.readouterr().out
    assert (home / "models" / "demo-lesion-seg-0.1.0.mwb").is_file()
    assert models("activate", "demo-lesion-seg", "0.1.0", "--reason", "first") == 0
    capsys.readouterr()
    (row,) = _rows(capsys)
    assert (row["name"], row["version"], row["stage"]) == ("demo-lesion-seg", "0.1.0", "active")
    assert models("list") == 0
    assert "active" in capsys.readouterr().out
    assert models("install", str(DEMO)) == 1
    assert "downgrade" in capsys.readouterr().err
    assert models("rollback", "demo-lesion-seg") == 1
    assert "no earlier version" in capsys.readouterr().err
    assert models("promote", "demo-lesion-seg", "9.9.9", "--to", "shadow") == 1
    assert "not installed" in capsys.readouterr().err
    assert main(["audit", "verify"]) == 0
    from workstation.workflow.analysis_store import open_default_store

    store = open_default_store()
    try:
        actions = [e["action"] for e in store.audit.export() if e["object_type"] == "model"]
    finally:
        store.close()
    assert actions == ["model.install", "model.activate"]


def test_install_activate_at_once(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert models("install", str(DEMO), "--activate") == 0
    assert "active" in capsys.readouterr().out
    assert [r["stage"] for r in _rows(capsys)] == ["active"]


def test_changes_need_the_audit_trail_but_list_does_not(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WORKSTATION_PASSPHRASE")
    assert models("install", str(DEMO)) == 1
    assert "audit trail" in capsys.readouterr().err
    assert _rows(capsys) == []
    assert models() == 2

"""``workstation audit verify|export`` and ``workstation results list|show``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import keyring
import pytest
import sqlalchemy as sa
from keyring.backends import fail

from workstation.cli import main
from workstation.security.keystore import PASSPHRASE_ENV, Argon2Params, KeyStore
from workstation.store import NewFinding, NewMap, NewResult, ResultStore, StudyRef

SECRET = "correct horse battery"


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    """A private home with a key store (passphrase from the environment, no OS keyring)."""
    monkeypatch.setenv("WORKSTATION_HOME", str(tmp_path))
    monkeypatch.setenv(PASSPHRASE_ENV, SECRET)
    monkeypatch.delenv("WORKSTATION_STORE_URL", raising=False)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False, raising=False)
    before = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    KeyStore.create(tmp_path / "keys", passphrase=SECRET, kdf=Argon2Params(64, 1, 1))
    yield tmp_path
    keyring.set_keyring(before)


@pytest.fixture
def saved(home: Path) -> str:
    """One saved result; its id."""
    keys = KeyStore.open(home / "keys", passphrase=SECRET)
    with ResultStore.open(keys=keys.data_keys, actor="alice", signer=keys.signing_key()) as store:
        return store.save_result(
            NewResult(
                study=StudyRef("ps-42", {"PatientName": "Doe^Jane"}),
                model_name="brain-lesion",
                model_version="1.2.0",
                input_hash="ab" * 32,
                parameters={"threshold": 0.5},
                findings=[NewFinding("lesion", "left frontal", {"volume_ml": 1.5})],
                maps=[NewMap("gradcam", b"\x00" * 1000, {"shape": [10, 10, 10]})],
            )
        )


def _tamper(home: Path, statement: str) -> None:
    engine = sa.create_engine(f"sqlite:///{home / 'store' / 'results.db'}")
    with engine.begin() as connection:
        connection.execute(sa.text(statement))
    engine.dispose()


def test_verify_ok(saved: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify"]) == 0
    out = capsys.readouterr().out
    assert "1 events" in out and "signatures checked" in out and "audit trail verified" in out
    assert main(["audit", "verify", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["schema"] == 1 and report["ok"] is True
    assert report["events"] == 2  # the first verify is on the record too
    assert report["first_bad_seq"] is None and report["problems"] == []


def test_verify_names_the_first_bad_event(
    saved: str, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["audit", "verify"])
    main(["results", "list"])
    capsys.readouterr()
    _tamper(home, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 2")
    assert main(["audit", "verify"]) == 1
    captured = capsys.readouterr()
    assert "first bad event: 2 (edited" in captured.err
    assert "event 2: edited" in captured.out

    _tamper(home, "DELETE FROM audit_events WHERE seq = 1")
    assert main(["audit", "verify", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["first_bad_seq"] == 1
    assert [p["kind"] for p in report["problems"]][:2] == ["deleted", "edited"]


def test_export_since(saved: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "export", "--since", "2000-01-01", "--jsonl"]) == 0
    [event] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (event["seq"], event["action"], event["study"]) == (1, "result.save", "ps-42")
    assert event["object_id"] == saved and "Doe" not in json.dumps(event)

    assert main(["audit", "export", "--since", "2000-01-01", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["since"] == "2000-01-01T00:00:00.000000Z"
    assert [e["action"] for e in document["events"]] == ["result.save", "audit.export"]

    assert main(["audit", "export", "--since", "2999-01-01"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["audit", "export", "--since", "yesterday"]) == 2
    assert "not a date" in capsys.readouterr().err
    assert main(["audit", "export"]) == 2  # --since is required


def test_results_list_and_show(saved: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["results", "list", "--json"]) == 0
    [summary] = json.loads(capsys.readouterr().out)["results"]
    assert (summary["id"], summary["study"], summary["finding_count"]) == (saved, "ps-42", 1)

    assert main(["results", "list"]) == 0
    assert saved in capsys.readouterr().out

    assert main(["results", "show", saved]) == 0
    out = capsys.readouterr().out
    assert "brain-lesion 1.2.0" in out and "lesion: left frontal" in out and "gradcam" in out

    assert main(["results", "show", saved, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)["result"]
    assert result["findings"][0]["values"] == {"volume_ml": 1.5}

    assert main(["results", "show", "no-such-id"]) == 1
    assert "no result with id no-such-id" in capsys.readouterr().err
    assert main(["audit", "export", "--since", "2000-01-01", "--jsonl"]) == 0
    actions = [json.loads(line)["action"] for line in capsys.readouterr().out.splitlines()]
    assert actions == ["result.save", "result.list", "result.list", "result.view", "result.view"]


def test_without_a_key_store(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (home / "keys" / "keystore.json").unlink()
    assert main(["results", "list"]) == 1
    assert "keys init" in capsys.readouterr().err


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "audit" in out and "results" in out

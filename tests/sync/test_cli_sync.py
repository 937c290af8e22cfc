"""``workstation registry enrol`` and ``workstation sync`` (through the modules' parsers)."""

from __future__ import annotations

import argparse
import json
import stat
import sys
from pathlib import Path

import keyring
import pytest
from keyring.backends import fail

from sync.conftest import Registry
from sync.sync_kit import new_result
from workstation import cli_sync
from workstation.security.keystore import PASSPHRASE_ENV, Argon2Params, KeyStore
from workstation.store import ResultStore

SECRET = "correct horse battery"


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.setenv("WORKSTATION_HOME", str(tmp_path))
    monkeypatch.setenv(PASSPHRASE_ENV, SECRET)
    monkeypatch.delenv("WORKSTATION_STORE_URL", raising=False)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False, raising=False)
    before = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    KeyStore.create(tmp_path / "keys", passphrase=SECRET, kdf=Argon2Params(64, 1, 1))
    yield tmp_path
    keyring.set_keyring(before)


def _main(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="workstation")
    commands = parser.add_subparsers(dest="command", required=True)
    cli_sync.registry_command.add_parser(commands)
    cli_sync.sync_command.add_parser(commands)
    args = parser.parse_args(argv)
    return cli_sync.run(args)


def _save(home: Path, n: int) -> list[str]:
    keys = KeyStore.open(home / "keys", passphrase=SECRET)
    with ResultStore.open(keys=keys.data_keys, actor="alice", signer=keys.signing_key()) as store:
        return [store.save_result(new_result(i), sync=True) for i in range(n)]


def test_enrol_then_sync(
    home: Path,
    registry: Registry,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _main("sync", "--once") == 1
    assert "not enrolled" in capsys.readouterr().err
    monkeypatch.setenv("ENROL_TOKEN", registry.seeded.tokens["a"])
    assert _main("registry", "enrol", registry.url, "--token-env", "ENROL_TOKEN", "--json") == 0
    enrolment = json.loads(capsys.readouterr().out)
    assert enrolment["site_id"] == registry.seeded.sites["a"]
    state = home / "sync" / "registry.json"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert registry.seeded.tokens["a"] not in state.read_text()
    assert _main("registry", "enrol", registry.url, "--token-env", "ENROL_TOKEN") == 1
    capsys.readouterr()

    ids = _save(home, 3)
    assert _main("sync", "--once", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["sent"], report["duplicates"], report["pending"]) == (3, 0, 0)
    assert sorted(k for _ws, k, _sha in registry.rows()) == sorted(f"result:{i}" for i in ids)

    registry.server.stop(kill=True)
    _save(home, 2)
    assert _main("sync", "--once") == 1
    captured = capsys.readouterr()
    assert "sent 0" in captured.out and "queued 2" in captured.out
    assert "unreachable" in captured.err and "2 result(s) stay queued" in captured.err


def test_enrol_needs_the_token_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("NO_SUCH_TOKEN", raising=False)
    code = _main("registry", "enrol", "http://127.0.0.1:9", "--token-env", "NO_SUCH_TOKEN")
    assert code == 2 and "NO_SUCH_TOKEN" in capsys.readouterr().err


def test_the_gui_status_follows_the_registry(
    home: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workstation.sync.status import sync_and_report

    assert sync_and_report().state == "off"
    monkeypatch.setenv("ENROL_TOKEN", registry.seeded.tokens["a"])
    assert _main("registry", "enrol", registry.url, "--token-env", "ENROL_TOKEN") == 0
    _save(home, 2)
    status = sync_and_report()
    assert (status.state, status.sent, status.pending) == ("ok", 2, 0), status
    registry.server.stop()
    _save(home, 1)
    status = sync_and_report()
    assert (status.state, status.pending) == ("offline", 1), status
    assert "offline" in status.text

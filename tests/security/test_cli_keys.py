"""``workstation keys``: init / show / rotate / retire, exit codes, and no secret in the output."""

from __future__ import annotations

import argparse
import base64
import getpass
import json
import sys
from pathlib import Path

import keyring
import pytest
from keyring.backends import fail

from workstation import cli_keys
from workstation.security.keystore import FILE_NAME, PASSPHRASE_ENV, KeyStore

SECRET = "correct horse battery"


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    """A private workstation home, a passphrase in the environment, no OS keyring."""
    monkeypatch.setenv("WORKSTATION_HOME", str(tmp_path))
    monkeypatch.setenv(PASSPHRASE_ENV, SECRET)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: False, raising=False)  # even under -s
    before = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield tmp_path
    keyring.set_keyring(before)


def keys(*argv: str) -> int:
    """Parse ``workstation keys ARGV`` with a parser built from :func:`cli_keys.add_parser`."""
    parser = argparse.ArgumentParser(prog="workstation")
    cli_keys.add_parser(parser.add_subparsers(dest="command"))
    try:
        args = parser.parse_args(["keys", *argv])
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 2
    return cli_keys.run(args)


def _store(home: Path) -> KeyStore:
    return KeyStore.open(home / "keys", passphrase=SECRET)


def test_init_show_rotate(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert keys("init") == 0
    out = capsys.readouterr().out
    store = _store(home)
    assert str(home / "keys" / FILE_NAME) in out
    assert store.signing_key().key_id in out and store.recipient_key().key_id in out
    assert "passphrase (Argon2id, 64 MiB, 3 passes, 4 lanes)" in out

    assert keys("show") == 0
    out = capsys.readouterr().out
    assert "versions 1 (current 1)" in out and store.signing_key().key_id in out

    assert keys("rotate") == 0
    assert "data key version 2 is now current (kept: 1, 2)" in capsys.readouterr().out

    assert keys("show", "--json") == 0
    captured = capsys.readouterr()
    info = json.loads(captured.out)
    assert info["data_keys"] == {"versions": [1, 2], "current": 2}
    assert info["signing_key"]["key_id"] == store.signing_key().key_id
    assert info["recipient_key"]["key_id"] == store.recipient_key().key_id
    assert info["kek"]["source"] == "passphrase" and "salt" not in info["kek"]

    store = _store(home)
    shown = captured.out + captured.err
    for secret in (
        store.signing_key().private_bytes(),
        store.recipient_key().private_bytes(),
        *store.data_keys().keys.values(),
    ):
        assert secret.hex() not in shown and base64.b64encode(secret).decode() not in shown
    assert SECRET not in shown


def test_init_refuses_to_overwrite_without_force(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert keys("init") == 0
    old = _store(home).signing_key().key_id
    capsys.readouterr()
    assert keys("init") == 1
    assert "already exists" in capsys.readouterr().err and _store(home).signing_key().key_id == old
    assert keys("init", "--force") == 0
    assert "destroyed" in capsys.readouterr().err
    assert _store(home).signing_key().key_id != old


def test_retire(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys("init")
    assert keys("retire", "1", "--yes") == 1
    assert "current" in capsys.readouterr().err
    keys("rotate")
    capsys.readouterr()
    assert keys("retire", "1") == 1  # not a terminal and no --yes
    assert "--yes" in capsys.readouterr().err
    assert keys("retire", "1", "--yes") == 0
    assert "version 1 destroyed" in capsys.readouterr().out
    assert sorted(_store(home).data_keys().keys) == [2]


def test_failures_are_clear(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert keys("show") == 1
    assert "run `workstation keys init`" in capsys.readouterr().err
    keys("init")
    monkeypatch.setenv(PASSPHRASE_ENV, "the wrong passphrase")
    capsys.readouterr()
    assert keys("rotate") == 1
    err = capsys.readouterr().err
    assert "wrong passphrase" in err and "the wrong passphrase" not in err
    monkeypatch.delenv(PASSPHRASE_ENV)
    assert keys("show") == 1  # no passphrase and not a terminal: no hanging prompt
    assert PASSPHRASE_ENV in capsys.readouterr().err


def test_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert keys() == 2
    assert keys("retire", "one") == 2
    assert keys("frobnicate") == 2
    capsys.readouterr()


def test_interactive_passphrase(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    answers = iter([SECRET, "something else"])
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": next(answers))
    assert keys("init") == 1
    assert "do not match" in capsys.readouterr().err
    assert not (home / "keys" / FILE_NAME).exists()

    answers = iter([SECRET, SECRET, SECRET])
    assert keys("init") == 0
    assert keys("show") == 0
    assert next(answers, None) is None  # asked twice on init, once on show


def test_wired_into_the_workstation_command(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from workstation import cli

    try:
        cli._parser().parse_args(["keys", "show"])
    except SystemExit:
        capsys.readouterr()
        pytest.skip("`keys` is not wired into workstation.cli yet")
    assert cli.main(["keys", "init"]) == 0
    assert cli.main(["keys", "rotate"]) == 0
    capsys.readouterr()
    assert cli.main(["keys", "show", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["data_keys"]["current"] == 2
    assert cli.main(["keys"]) == 2

"""``workstation-registry admin``: bootstrap a registry without HTTP (sites, users, enrolment
tokens, audit verification); passwords never appear in arguments or output."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from workstation.registry.cli import ENV_PASSWORD, main
from workstation.registry.db import Database
from workstation.registry.identity import hash_key
from workstation.registry.models import AuditEvent, EnrolmentToken, Site, User
from workstation.registry.settings import RegistrySettings

PASSWORD = "a long and secret passphrase 42"


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out.strip(), captured.err.strip()


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "registry-data"


def _db(data: Path) -> Database:
    return Database(RegistrySettings(data).url)


def test_bootstrap_site_user_token(
    data: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    code, site_id, _ = _run(capsys, "admin", "create-site", "North clinic", "--data", str(data))
    assert code == 0
    monkeypatch.setenv(ENV_PASSWORD, PASSWORD)
    outputs: list[str] = []
    code, admin_id, err = _run(
        capsys, "admin", "create-user", "root", "--role", "admin", "--data", str(data)
    )
    assert code == 0, err
    outputs += [admin_id, err]
    code, user_id, err = _run(
        capsys,
        "admin", "create-user", "dr-a", "--role", "clinician", "--site", site_id,
        "--data", str(data),
    )  # fmt: skip
    assert code == 0, err
    outputs += [user_id, err]
    code, token, err = _run(
        capsys, "admin", "enrolment-token", site_id, "--valid-hours", "2", "--data", str(data)
    )
    assert code == 0, err
    assert token.startswith("mwe_")
    assert all(PASSWORD not in text for text in [*outputs, caplog.text])

    db = _db(data)
    try:
        with db.sessions() as session:
            assert session.get(Site, site_id).name == "North clinic"
            users = {u.username: u for u in session.scalars(sa.select(User))}
            assert users["root"].role == "admin" and users["root"].site_id is None
            assert users["dr-a"].role == "clinician" and users["dr-a"].site_id == site_id
            assert PASSWORD not in users["dr-a"].password_hash
            row = session.scalars(
                sa.select(EnrolmentToken).where(EnrolmentToken.token_hash == hash_key(token))
            ).one()
            assert row.site_id == site_id
            actions = [e.action for e in session.scalars(sa.select(AuditEvent))]
            assert actions.count("user.create") == 2 and "enrolment.issue" in actions
    finally:
        db.dispose()

    # the user the CLI created signs in over HTTP
    from workstation.registry.app import create_app

    with TestClient(create_app(RegistrySettings(data, rate_per_minute=100_000))) as client:
        response = client.post("/auth/login", json={"username": "dr-a", "password": PASSWORD})
        assert response.status_code == 200, response.text

    assert _run(capsys, "admin", "audit-verify", "--data", str(data))[0] == 0


def test_password_prompted_twice(
    data: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_PASSWORD, raising=False)
    monkeypatch.setattr(sys, "stdin", _Tty())
    answers = iter([PASSWORD, PASSWORD, PASSWORD, "something else entirely"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    code, out, err = _run(
        capsys, "admin", "create-user", "a1", "--role", "admin", "--data", str(data)
    )
    assert code == 0, err
    assert PASSWORD not in out + err
    code, out, err = _run(
        capsys, "admin", "create-user", "a2", "--role", "admin", "--data", str(data)
    )
    assert code == 1
    assert "differ" in err and PASSWORD not in out + err


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_failures_and_usage(
    data: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_PASSWORD, "short")
    code, _, err = _run(capsys, "admin", "create-user", "x", "--role", "admin", "--data", str(data))
    assert code == 1 and "12 characters" in err and "short" not in err
    monkeypatch.delenv(ENV_PASSWORD)
    monkeypatch.setattr(sys, "stdin", io.StringIO())  # not a terminal: no prompt
    code, _, err = _run(capsys, "admin", "create-user", "x", "--role", "admin", "--data", str(data))
    assert code == 2 and ENV_PASSWORD in err
    code, _, err = _run(
        capsys, "admin", "create-user", "x", "--role", "viewer", "--data", str(data)
    )
    assert code == 2 and "--site" in err
    assert _run(capsys, "admin", "enrolment-token", "no-such-site", "--data", str(data))[0] == 1
    assert _run(capsys, "admin", "create-site", "twice", "--data", str(data))[0] == 0
    assert _run(capsys, "admin", "create-site", "twice", "--data", str(data))[0] == 1
    assert _run(capsys, "admin", "enrolment-token", "x", "--valid-hours", "0")[0] == 2
    assert _run(capsys, "admin", "create-user", "x", "--password", "p", "--role", "admin")[0] == 2


def test_audit_verify_detects_tampering(data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("one", "two", "three"):
        assert _run(capsys, "admin", "create-site", name, "--data", str(data))[0] == 0
    assert _run(capsys, "admin", "audit-verify", "--data", str(data)) == (
        0, "audit chain intact", ""
    )  # fmt: skip
    db = _db(data)
    try:
        with db.sessions.begin() as session:
            session.execute(sa.update(AuditEvent).where(AuditEvent.seq == 2).values(actor="x"))
    finally:
        db.dispose()
    code, _, err = _run(capsys, "admin", "audit-verify", "--data", str(data))
    assert code == 1
    assert "event 2: edited" in err


def test_console_script_with_env_password(data: Path) -> None:
    """As an operator runs it: a subprocess, the password only in the environment."""
    import os

    env = {**os.environ, ENV_PASSWORD: PASSWORD}
    base = [sys.executable, "-m", "workstation.registry.cli", "admin"]
    result: Any = subprocess.run(
        [*base, "create-user", "ops", "--role", "admin", "--data", str(data)],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    assert len(result.stdout.strip()) == 36  # the new user's id, nothing else


def test_admin_on_postgresql(
    postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    where = ("--db", postgres_url, "--data", str(tmp_path / "data"))
    code, site_id, err = _run(capsys, "admin", "create-site", "pg site", *where)
    assert code == 0, err
    code, token, err = _run(capsys, "admin", "enrolment-token", site_id, *where)
    assert code == 0 and token.startswith("mwe_"), err
    assert _run(capsys, "admin", "audit-verify", *where)[0] == 0
    db = Database(postgres_url)
    try:
        with db.sessions() as session:
            assert session.get(Site, site_id) is not None
    finally:
        db.dispose()

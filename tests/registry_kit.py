"""Registry test helpers shared by tests/registry and tests/sync (importable: tests/ is on
``sys.path``): a seeded registry database, sign-in, and the service on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

PASSWORD = "correct horse battery staple"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Seeded:
    """What :func:`seeded` created: sites ``a`` and ``b``, and users by name."""

    sites: dict[str, str] = field(default_factory=dict)  # "a"/"b" -> site id
    users: dict[str, str] = field(default_factory=dict)  # username -> role
    tokens: dict[str, str] = field(default_factory=dict)  # "a"/"b" -> enrolment token
    password: str = PASSWORD


def seed(db: Any) -> Seeded:
    """Sites a and b; users admin, clinician-a/b, viewer-a/b; one enrolment token per site."""
    from workstation.registry.bootstrap import create_site, create_user, issue_enrolment_token

    out = Seeded()
    with db.sessions.begin() as session:
        for key in ("a", "b"):
            out.sites[key] = create_site(session, f"site {key}").id
        create_user(session, "admin", PASSWORD, "admin")
        out.users["admin"] = "admin"
        for key in ("a", "b"):
            for role in ("clinician", "viewer"):
                create_user(session, f"{role}-{key}", PASSWORD, role, site_id=out.sites[key])
                out.users[f"{role}-{key}"] = role
            out.tokens[key] = issue_enrolment_token(session, out.sites[key])
    return out


def login(client: Any, username: str, password: str = PASSWORD) -> dict[str, str]:
    """Sign in; the Authorization header for the user's requests."""
    response = client.post("/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@dataclass
class RunningRegistry:
    """``workstation-registry serve`` in a subprocess on loopback."""

    url: str
    data: Path
    process: subprocess.Popen[bytes]
    db_url: str | None = None

    def stop(self, *, kill: bool = False) -> None:
        if self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            self.process.wait(timeout=20)


def start_registry(
    data: Path, *, db_url: str | None = None, port: int | None = None, workers: int = 1
) -> RunningRegistry:
    """Start the service as its console script would run; wait until ``/health/ready``."""
    port = port or free_port()
    argv = [sys.executable, "-m", "workstation.registry.cli", "serve", "--data", str(data)]
    argv += ["--port", str(port), "--workers", str(workers)]
    if db_url:
        argv += ["--db", db_url]
    log = open(data.parent / f"registry-{port}.log", "ab")  # noqa: SIM115 (kept for the process)
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                return RunningRegistry(url, data, process, db_url)
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            code = process.poll()  # None: still running after the deadline
            process.kill()
            tail = (data.parent / f"registry-{port}.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the registry did not start (exit code {code}):\n{tail}")
        time.sleep(0.2)


CONTEXT = "medws-registry-auth"


def enrol(client: Any, token: str, keys: Any, name: str = "ws-1") -> dict[str, Any]:
    """``POST /enrol`` with ``keys``' public halves; the response body (201 asserted)."""
    body = {
        "token": token,
        "name": name,
        "signing_key": keys.signing.public_key.to_json(),
        "recipient_key": keys.recipient.public_key().to_json(),
    }
    response = client.post("/enrol", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def workstation_token(client: Any, ws_id: str, signing: Any) -> Any:
    """Challenge and signed answer; the ``/auth/workstation`` response (not asserted)."""
    challenge = client.get("/auth/challenge", params={"workstation_id": ws_id})
    assert challenge.status_code == 200, challenge.text
    nonce = challenge.json()["nonce"]
    signature = signing.sign(bytes.fromhex(nonce), context=CONTEXT).to_json()
    return client.post(
        "/auth/workstation",
        json={"workstation_id": ws_id, "nonce": nonce, "signature": signature},
    )


def enrol_workstation(
    client: Any, token: str, keys: Any, name: str = "ws"
) -> tuple[str, dict[str, str]]:
    """Enrol with ``token`` and sign in by challenge; the workstation id and its auth header."""
    ws_id = enrol(client, token, keys, name)["workstation_id"]
    response = workstation_token(client, ws_id, keys.signing)
    assert response.status_code == 200, response.text
    return ws_id, {"Authorization": f"Bearer {response.json()['access_token']}"}

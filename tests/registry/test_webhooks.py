"""Webhooks: administration, signed deliveries to a real loopback receiver, retries, giving up."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from registry_kit import login

from workstation.registry.db import now
from workstation.registry.webhooks import verify_signature

DEMO = Path(__file__).resolve().parents[2] / "resources" / "models" / "demo-lesion-seg-0.1.0.mwb"


class Receiver:
    """An HTTP server on loopback that records POSTs and fails the first ``fail`` of them."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                failing = len(receiver.requests) <= receiver.fail
                self.send_response(503 if failing else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def admin(client: Any, seeded: Any) -> dict[str, str]:
    return login(client, "admin")


@pytest.fixture
def manual(client: Any, app: Any) -> Any:
    """The app's dispatcher, stopped: the test drives it with ``run_once``."""
    app.state.dispatcher.stop()
    return app.state.dispatcher


def subscribe(client: Any, admin: Any, url: str, **extra: Any) -> dict[str, Any]:
    body = {"url": url, "events": ["model.published", "result.received"], **extra}
    response = client.post("/admin/webhooks", headers=admin, json=body)
    assert response.status_code == 201, response.text
    return response.json()


def publish(client: Any, admin: Any, **params: str) -> None:
    headers = {**admin, "Content-Type": "application/octet-stream"}
    response = client.post("/models", content=DEMO.read_bytes(), headers=headers, params=params)
    assert response.status_code == 201, response.text


def deliveries(client: Any, admin: Any, hook_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/admin/webhooks/{hook_id}/deliveries", headers=admin)
    assert response.status_code == 200
    return list(response.json()["items"])


def test_admin_only_and_no_secrets_in_listings(client: Any, seeded: Any, admin: Any) -> None:
    hook = subscribe(client, admin, "http://127.0.0.1:9/x")
    assert hook["secret"].startswith("whsec_")
    listed = client.get("/admin/webhooks", headers=admin).json()["items"]
    assert [item["id"] for item in listed] == [hook["id"]]
    assert "secret" not in listed[0]
    clinician = login(client, "clinician-a")
    assert client.get("/admin/webhooks", headers=clinician).status_code == 403
    bad = {"url": "ftp://example.org", "events": ["model.published"]}
    assert client.post("/admin/webhooks", headers=admin, json=bad).status_code == 422
    bad = {"url": "http://example.org", "events": ["patient.admitted"]}
    assert client.post("/admin/webhooks", headers=admin, json=bad).status_code == 422
    assert client.delete(f"/admin/webhooks/{hook['id']}", headers=admin).status_code == 204
    assert client.get("/admin/webhooks", headers=admin).json()["items"] == []
    assert client.delete(f"/admin/webhooks/{hook['id']}", headers=admin).status_code == 404


def test_signed_delivery_by_the_background_thread(
    client: Any, admin: Any, receiver: Receiver
) -> None:
    hook = subscribe(client, admin, receiver.url)
    publish(client, admin, channel="stable")
    deadline = time.monotonic() + 15
    while not receiver.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(receiver.requests) == 1
    headers, body = receiver.requests[0]
    assert verify_signature(hook["secret"], body, headers["x-medws-signature"])
    assert not verify_signature(hook["secret"], body + b" ", headers["x-medws-signature"])
    assert not verify_signature("whsec_other", body, headers["x-medws-signature"])
    message = json.loads(body)
    assert message["event"] == headers["x-medws-event"] == "model.published"
    assert message["id"] == headers["x-medws-delivery"]
    assert message["data"]["name"] == "demo-lesion-seg"
    assert int(headers["x-medws-timestamp"]) > 0
    deadline = time.monotonic() + 5
    while deliveries(client, admin, hook["id"])[0]["state"] != "done":
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_retries_then_succeeds(client: Any, admin: Any, receiver: Receiver, manual: Any) -> None:
    receiver.fail = 2
    hook = subscribe(client, admin, receiver.url)
    publish(client, admin, channel="canary")
    moment = now()
    for _ in range(3):
        assert manual.run_once(moment) == 1
        moment += timedelta(seconds=400)  # past any backoff
    assert manual.run_once(moment) == 0
    assert len(receiver.requests) == 3
    ids = {headers["x-medws-delivery"] for headers, _ in receiver.requests}
    assert len(ids) == 1  # the same delivery each time: receivers de-duplicate on it
    [delivery] = deliveries(client, admin, hook["id"])
    assert delivery["state"] == "done" and delivery["attempts"] == 3


def test_backoff_and_giving_up(
    client: Any, app: Any, admin: Any, receiver: Receiver, manual: Any
) -> None:
    receiver.fail = 100
    hook = subscribe(client, admin, receiver.url)
    publish(client, admin, channel="shadow")
    moment = now()
    assert manual.run_once(moment) == 1
    assert manual.run_once(moment + timedelta(seconds=1)) == 0  # backing off (2 s ± 20 %)
    attempts = app.state.settings.webhook_attempts
    for _ in range(attempts - 1):
        moment += timedelta(seconds=400)
        assert manual.run_once(moment) == 1
    assert manual.run_once(moment + timedelta(seconds=400)) == 0
    assert len(receiver.requests) == attempts
    [delivery] = deliveries(client, admin, hook["id"])
    assert delivery["state"] == "failed" and delivery["attempts"] == attempts
    assert delivery["last_error"] == "HTTP 503"


def test_site_filter_and_result_events(
    client: Any, seeded: Any, admin: Any, receiver: Receiver, manual: Any
) -> None:
    site_b = subscribe(client, admin, receiver.url, site_id=seeded.sites["b"])
    publish(client, admin, channel="stable", site_id=seeded.sites["a"])  # site a only
    publish(client, admin, channel="canary")  # every site
    events = [d["event"] for d in deliveries(client, admin, site_b["id"])]
    assert events == ["model.published"]
    manual.run_once()
    body = json.loads(receiver.requests[0][1])
    assert body["data"]["site_id"] is None


def test_result_received_event(
    client: Any, seeded: Any, admin: Any, receiver: Receiver, manual: Any, workstation_keys: Any
) -> None:
    from workstation.security.seal import seal

    hook = subscribe(client, admin, receiver.url, site_id=seeded.sites["a"])
    keys = workstation_keys
    ws_id = client.post(
        "/enrol",
        json={
            "token": seeded.tokens["a"],
            "name": "ws-a",
            "signing_key": keys.signing.public_key.to_json(),
            "recipient_key": keys.recipient.public_key().to_json(),
        },
    ).json()["workstation_id"]
    nonce = client.get("/auth/challenge", params={"workstation_id": ws_id}).json()["nonce"]
    signature = keys.signing.sign(bytes.fromhex(nonce), context="medws-registry-auth")
    token = client.post(
        "/auth/workstation",
        json={"workstation_id": ws_id, "nonce": nonce, "signature": signature.to_json()},
    ).json()["access_token"]
    blob = seal(b"DOE^JANE", [keys.recipient.public_key()], purpose="registry-result")
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "r1"}
    result = client.post("/results", content=blob, headers=headers).json()
    assert client.post("/results", content=blob, headers=headers).status_code == 200
    assert manual.run_once() == 1  # the replay queued nothing
    [(sent, body)] = receiver.requests
    assert verify_signature(hook["secret"], body, sent["x-medws-signature"])
    data = json.loads(body)["data"]
    assert data == {"result_id": result["id"], "site_id": seeded.sites["a"], "size": len(blob)}
    assert b"DOE" not in body

"""The registry client's error mapping and token cache (a mock transport, no server)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from sync.sync_kit import Keys, new_result
from workstation.store import ResultStore
from workstation.sync.client import (
    PermanentError,
    RegistryClient,
    RegistryUnavailable,
    RetryableError,
)
from workstation.sync.engine import sync_once


def _client(keys: Keys, handler, clock=lambda: 0.0) -> RegistryClient:  # type: ignore[no-untyped-def]
    return RegistryClient(
        "http://registry.test",
        signing_key=keys.signing,
        workstation_id="ws-1",
        transport=httpx.MockTransport(handler),
        clock=clock,
    )


def _registry(upload: httpx.Response, calls: list[str]):  # type: ignore[no-untyped-def]
    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if request.url.path == "/auth/challenge":
            return httpx.Response(200, json={"nonce": "ab" * 32, "expires": "later"})
        if request.url.path == "/auth/workstation":
            return httpx.Response(200, json={"access_token": f"t{len(calls)}", "expires_in": 900})
        return upload

    return handle


@pytest.mark.parametrize(
    ("response", "error", "retry_after"),
    [
        (httpx.Response(429, headers={"Retry-After": "7"}), RetryableError, 7.0),
        (httpx.Response(503, json={"detail": "db down"}), RetryableError, None),
        (httpx.Response(409, json={"detail": "other body"}), PermanentError, None),
        (httpx.Response(413), PermanentError, None),
        (httpx.Response(422, json={"detail": "not sealed"}), PermanentError, None),
    ],
)
def test_error_mapping(
    keys: Keys, response: httpx.Response, error: type, retry_after: float | None
) -> None:
    calls: list[str] = []
    with _client(keys, _registry(response, calls)) as client, pytest.raises(error) as raised:
        client.upload_result("k", b"blob")
    assert raised.value.status == response.status_code
    assert getattr(raised.value, "retry_after", None) == retry_after


def test_network_down_is_unavailable(keys: Keys) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with _client(keys, refuse) as client, pytest.raises(RegistryUnavailable):
        client.authenticate()


def test_token_cached_until_shortly_before_expiry(keys: Keys) -> None:
    now = [0.0]
    calls: list[str] = []
    ok = httpx.Response(201, json={"id": "r", "sha256": "x", "size": 4, "duplicate": False})
    with _client(keys, _registry(ok, calls), clock=lambda: now[0]) as client:
        first = client.authenticate()
        now[0] = 800.0
        assert client.authenticate() == first
        now[0] = 880.0  # within 30 s of the 900 s lifetime
        assert client.authenticate() != first
    assert calls.count("/auth/workstation") == 2


def test_429_defers_by_retry_after(store: ResultStore, keys: Keys, tmp_path: Path) -> None:
    store.save_result(new_result(1), sync=True)
    store.save_result(new_result(2), sync=True)
    calls: list[str] = []
    busy = httpx.Response(429, headers={"Retry-After": "120"})
    with _client(keys, _registry(busy, calls)) as client:
        report = sync_once(
            store,
            client,
            site_id="s",
            recipients=[keys.recipient.public_key()],
            spool=tmp_path,
            rng=lambda: 0.0,
        )
    assert (report.retried, report.queued, report.unreachable) == (1, 1, False)
    assert len(store.outbox.due()) == 1
    store._clock.advance(119)  # type: ignore[attr-defined]
    assert len(store.outbox.due()) == 1
    store._clock.advance(2)  # type: ignore[attr-defined]
    assert len(store.outbox.due()) == 2
    assert len(list(tmp_path.glob("*.sealed"))) == 1  # kept for an identical retry

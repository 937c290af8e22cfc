"""The sync engine against a real registry (``workstation-registry serve`` on loopback)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from registry_kit import login

from sync.conftest import Registry
from sync.sync_kit import SECRET_IDENTIFIERS, Clock, Keys, new_result
from workstation.security.seal import seal
from workstation.store import ResultStore
from workstation.sync.client import (
    AuthenticationError,
    PermanentError,
    RegistryClient,
    RegistryUnavailable,
    Upload,
)
from workstation.sync.engine import backoff, sync_once
from workstation.sync.payload import open_payload

Enrolled = tuple[RegistryClient, str]


@pytest.fixture
def enrolled(registry: Registry, keys: Keys) -> Enrolled:
    client = RegistryClient(registry.url, signing_key=keys.signing)
    enrolment = client.enrol(
        registry.seeded.tokens["a"], "ws-1", keys.signing.public_key, keys.recipient.public_key()
    )
    assert enrolment.site_id == registry.seeded.sites["a"]
    assert client.workstation_id == enrolment.workstation_id
    yield client, enrolment.site_id
    client.close()


def _sync(store: ResultStore, enrolled: Enrolled, keys: Keys, spool: Path, **kwargs: object):
    client, site_id = enrolled
    kwargs.setdefault("rng", lambda: 0.5)
    return sync_once(store, client, site_id=site_id, keys=keys, spool=spool, **kwargs)


def _states(store: ResultStore) -> dict[str, tuple[str, int]]:
    with store.engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT object_id, state, attempts FROM outbox"))
        return {object_id: (state, attempts) for object_id, state, attempts in rows}


def _actions(store: ResultStore, action: str) -> list[dict]:
    return [e for e in store.audit.export(None) if e["action"] == action]


def test_backoff_full_jitter() -> None:
    assert backoff(0, rng=lambda: 0.999) < 2.0
    assert backoff(3, rng=lambda: 0.5) == 8.0
    assert backoff(40, rng=lambda: 0.999) < 900.0 and backoff(40, rng=lambda: 0.5) == 450.0
    assert backoff(5, rng=lambda: 0.0) == 0.0


def test_enrol_authenticate_recipients(registry: Registry, enrolled: Enrolled, keys: Keys) -> None:
    client, site_id = enrolled
    token = client.authenticate()
    assert client.authenticate() == token  # cached
    assert client.authenticate(force=True) != token
    ids = [key.key_id for key in client.recipients(site_id)]
    assert keys.recipient.key_id in ids
    with pytest.raises(AuthenticationError):
        client.recipients(registry.seeded.sites["b"])  # another site's: 403
    with pytest.raises(AuthenticationError) as refused, RegistryClient(registry.url) as other:
        other.enrol("not-a-token", "x", keys.signing.public_key, keys.recipient.public_key())
    assert refused.value.status == 401


def test_upload_contract(enrolled: Enrolled, keys: Keys) -> None:
    client, _site = enrolled
    blob = seal(b"payload", [keys.recipient.public_key()], purpose="medws-result-v1")
    first = client.upload_result("k-1", blob)
    again = client.upload_result("k-1", blob)
    assert (first.duplicate, again.duplicate) == (False, True) and first.id == again.id
    other = seal(b"payload", [keys.recipient.public_key()], purpose="medws-result-v1")
    with pytest.raises(PermanentError) as conflict:
        client.upload_result("k-1", other)
    assert conflict.value.status == 409
    with pytest.raises(PermanentError) as garbage:
        client.upload_result("k-2", b"not sealed at all")
    assert garbage.value.status == 422
    client._token = "expired-or-garbage"  # a 401 signs in again, once
    assert client.upload_result("k-1", blob).duplicate


def test_results_arrive_exactly_once(
    registry: Registry, enrolled: Enrolled, store: ResultStore, keys: Keys, tmp_path: Path
) -> None:
    ids = [store.save_result(new_result(i), sync=True) for i in range(3)]
    store.save_result(new_result(9))  # not for syncing
    report = _sync(store, enrolled, keys, tmp_path / "spool")
    assert (report.sent, report.duplicates, report.failed, report.error) == (3, 0, 0, None)
    assert sorted(report.results) == sorted(ids)
    assert _sync(store, enrolled, keys, tmp_path / "spool").delivered == 0
    rows = registry.rows()
    assert sorted(key for _ws, key, _sha in rows) == sorted(f"result:{i}" for i in ids)
    assert {state for state, _ in _states(store).values()} == {"done"}
    assert not list((tmp_path / "spool").iterdir())
    sends = _actions(store, "sync.send")
    assert sorted(e["object_id"] for e in sends) == sorted(ids)
    assert all(e["details"]["status"] == "sent" for e in sends)
    # what the registry holds is ciphertext the site can open, with no identifiers in it
    with httpx.Client(base_url=registry.url, timeout=30) as http:
        headers = login(http, "clinician-a")
        listing = http.get("/results", headers=headers).json()
        items = listing["items"] if isinstance(listing, dict) else listing
        assert len(items) == 3
        blob = http.get(f"/results/{items[0]['id']}/blob", headers=headers).content
    assert all(secret.encode() not in blob for secret in SECRET_IDENTIFIERS)
    assert open_payload(blob, keys.recipient).document["result_id"] in ids


class _LosesResponses(RegistryClient):
    """Uploads reach the registry, but the answer is lost on the way back."""

    def upload_result(self, idempotency_key: str, blob: bytes, *, kind: str = "analysis") -> Upload:
        super().upload_result(idempotency_key, blob, kind=kind)
        raise RegistryUnavailable("connection reset (simulated)")


def test_retry_after_lost_response_is_a_duplicate(
    registry: Registry,
    enrolled: Enrolled,
    store: ResultStore,
    keys: Keys,
    clock: Clock,
    tmp_path: Path,
) -> None:
    client, site_id = enrolled
    [result_id] = [store.save_result(new_result(1), sync=True)]
    lossy = _LosesResponses(
        registry.url, signing_key=keys.signing, workstation_id=client.workstation_id
    )
    report = sync_once(
        store, lossy, site_id=site_id, keys=keys, spool=tmp_path / "spool", rng=lambda: 0.5
    )
    assert (report.retried, report.unreachable, report.delivered) == (1, True, 0)
    assert _states(store)[result_id] == ("pending", 1)
    assert len(registry.rows()) == 1  # it did arrive
    assert _sync(store, enrolled, keys, tmp_path / "spool").delivered == 0  # backing off
    clock.advance(1.0)
    report = _sync(store, enrolled, keys, tmp_path / "spool")
    assert (report.sent, report.duplicates) == (0, 1)
    assert len(registry.rows()) == 1
    assert _states(store)[result_id] == ("done", 1)
    lossy.close()


def test_registry_down_then_back(
    registry: Registry,
    enrolled: Enrolled,
    store: ResultStore,
    keys: Keys,
    clock: Clock,
    tmp_path: Path,
) -> None:
    ids = [store.save_result(new_result(i), sync=True) for i in range(3)]
    enrolled[0].authenticate()  # a cached token survives the restart
    registry.server.stop(kill=True)
    report = _sync(store, enrolled, keys, tmp_path / "spool")
    assert report.unreachable and report.error and report.delivered == 0
    assert (report.retried, report.queued) == (1, 2)
    states = _states(store)
    assert all(state == "pending" for state, _ in states.values())
    assert sorted(attempts for _, attempts in states.values()) == [0, 0, 1]
    assert len(store.outbox.due()) == 2  # the one tried waits for its backoff (1 s here)
    report = _sync(store, enrolled, keys, tmp_path / "spool")
    assert report.unreachable and len(store.outbox.due()) == 1
    failed = _actions(store, "sync.failed")
    assert [e["details"]["status"] for e in failed] == ["unreachable", "unreachable"]
    assert all(set(e["details"]) <= {"status", "http", "retry_in_s"} for e in failed)
    registry.restart()
    clock.advance(3600)
    report = _sync(store, enrolled, keys, tmp_path / "spool")
    assert (report.sent, report.error) == (3, None)
    assert sorted(k for _ws, k, _sha in registry.rows()) == sorted(f"result:{i}" for i in ids)


def test_permanent_error_marks_failed(
    registry: Registry, enrolled: Enrolled, store: ResultStore, keys: Keys, tmp_path: Path
) -> None:
    client, _site = enrolled
    bad, good = (store.save_result(new_result(i), sync=True) for i in range(2))
    squatter = seal(b"something else", [keys.recipient.public_key()], purpose="x")
    client.upload_result(f"result:{bad}", squatter)  # the key is taken by other bytes: 409
    report = _sync(store, enrolled, keys, tmp_path / "spool")
    assert (report.sent, report.failed, report.retried) == (1, 1, 0)
    assert _states(store) == {bad: ("failed", 1), good: ("done", 0)}
    [event] = _actions(store, "sync.failed")
    assert event["object_id"] == bad and event["details"] == {"status": "rejected", "http": 409}
    assert _sync(store, enrolled, keys, tmp_path / "spool").delivered == 0


def test_revoked_or_unknown_workstation_keeps_items_queued(
    registry: Registry, store: ResultStore, keys: Keys, tmp_path: Path
) -> None:
    store.save_result(new_result(1), sync=True)
    stranger = RegistryClient(registry.url, signing_key=keys.signing, workstation_id="nobody")
    report = sync_once(
        store, stranger, site_id=registry.seeded.sites["a"], keys=keys, spool=tmp_path
    )
    assert report.error and not report.unreachable and report.queued == 1
    assert [state for state, _ in _states(store).values()] == ["pending"]
    assert len(store.outbox.due()) == 1
    stranger.close()


def test_crash_before_done_then_retry_is_a_duplicate(
    registry: Registry,
    enrolled: Enrolled,
    store: ResultStore,
    keys: Keys,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    result_id = store.save_result(new_result(4), sync=True)

    def crash(entry_id: str) -> None:
        raise SystemExit("killed between the upload and outbox.done")

    with monkeypatch.context() as patch:
        patch.setattr(store.outbox, "done", crash)
        with pytest.raises(SystemExit):
            _sync(store, enrolled, keys, tmp_path / "spool")
    assert _states(store)[result_id] == ("pending", 0)  # never marked done
    assert len(list((tmp_path / "spool").glob("*.sealed"))) == 1
    report = _sync(store, enrolled, keys, tmp_path / "spool")
    assert (report.sent, report.duplicates) == (0, 1)
    assert len(registry.rows()) == 1 and _states(store)[result_id] == ("done", 0)


def test_run_forever_until_stopped(
    registry: Registry, enrolled: Enrolled, store: ResultStore, keys: Keys, tmp_path: Path
) -> None:
    import contextlib
    import threading

    from workstation.sync.engine import run_forever

    client, site_id = enrolled
    ids = [store.save_result(new_result(i), sync=True) for i in range(5)]
    stop, reports = threading.Event(), []

    def seen(report: object) -> None:
        reports.append(report)
        if sum(r.delivered for r in reports) >= len(ids):
            stop.set()

    worker = threading.Thread(
        target=run_forever,
        args=(lambda: contextlib.nullcontext(store), client),
        kwargs={
            "stop": stop,
            "site_id": site_id,
            "interval": 0.05,
            "on_report": seen,
            "keys": keys,
            "spool": tmp_path / "spool",
            "limit": 2,
        },
    )
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive()
    assert sum(r.delivered for r in reports) == 5 and len(registry.rows()) == 5

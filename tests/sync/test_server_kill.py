"""kill -9 of the REGISTRY at random points while a workstation syncs: every result still
arrives exactly once, the registry's audit chain verifies and every stored blob is whole.

Each run restarts the registry on the same port and data folder, syncs in the test thread and
SIGKILLs the server from a timer after a random delay. The sync sees connection errors
(retryable): items stay queued with a backoff of 0 s (``rng`` returns 0), so nothing waits.

Orphan files in ``<data>/blobs`` (no row points at them) are allowed: the upload streams the
body to a temporary file there, renames it to ``blobs/<id>`` and only then commits the row, so
a kill between the rename and the commit (or while spooling) leaves an unreferenced file. The
retry then stores the result under a new id; nothing ever serves the orphan.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from pathlib import Path

import httpx
import sqlalchemy as sa
from registry_kit import login

from sync.conftest import MakeResults, Registry
from sync.sync_kit import Clock, Keys
from workstation.registry import audit
from workstation.registry.db import Database
from workstation.store import ResultStore
from workstation.sync.client import RegistryClient
from workstation.sync.engine import SyncReport, sync_once
from workstation.sync.payload import open_payload

RUNS = 30
FIRST = 20  # results queued before the first run
PER_RUN = 2  # more queued before each run, so that most kills land mid-sync
BUDGET_S = 150.0  # ~65 s here (2 cores); the bound only catches a hang or a crawl


def _stored(registry: Registry) -> list[tuple[str, str, str]]:
    """(registry id, idempotency key, sha256) of every stored result."""
    engine = sa.create_engine(registry.db_url())
    try:
        with engine.connect() as connection:
            query = sa.text("SELECT id, idempotency_key, sha256 FROM sealed_results")
            return [(str(a), str(b), str(c)) for a, b, c in connection.execute(query)]
    finally:
        engine.dispose()


def _sync(
    store: ResultStore, client: RegistryClient, site_id: str, keys: Keys, spool: Path
) -> SyncReport:
    return sync_once(store, client, site_id=site_id, keys=keys, spool=spool, rng=lambda: 0.0)


def _sync_and_kill(
    registry: Registry,
    store: ResultStore,
    client: RegistryClient,
    site_id: str,
    keys: Keys,
    spool: Path,
    delay: float,
) -> SyncReport:
    """Sync while a timer SIGKILLs the registry after ``delay`` seconds."""
    process = registry.server.process
    killer = threading.Timer(delay, process.kill)
    killer.start()
    try:
        report = _sync(store, client, site_id, keys, spool)
    finally:
        killer.join()
        process.wait(timeout=20)
    assert process.returncode == -9
    return report


def test_registry_killed_while_syncing(
    registry: Registry,
    store: ResultStore,
    keys: Keys,
    clock: Clock,
    save_results: MakeResults,
    tmp_path: Path,
) -> None:
    rng = random.Random(int(os.environ.get("SERVER_KILL_SEED", "20260106")))
    spool = tmp_path / "spool"
    client = RegistryClient(registry.url, signing_key=keys.signing)
    enrolment = client.enrol(
        registry.seeded.tokens["a"], "ws", keys.signing.public_key, keys.recipient.public_key()
    )
    site_id = enrolment.site_id
    ids = save_results(FIRST)
    interrupted = delivered = 0
    started = time.monotonic()
    try:
        for run in range(RUNS):
            ids += save_results(PER_RUN, start=len(ids))
            if run:
                registry.restart()  # same port, same data folder, right after the kill
            report = _sync_and_kill(
                registry, store, client, site_id, keys, spool, rng.uniform(0.0, 0.3)
            )
            assert report.failed == 0, report  # a kill is never a permanent refusal
            interrupted += report.unreachable
            delivered += report.delivered
            clock.advance(60)  # belt and braces: whatever backoff was set has passed
            elapsed = time.monotonic() - started
            assert elapsed < BUDGET_S, f"too slow: {elapsed:.0f} s after {run + 1} runs"
        assert interrupted >= RUNS // 3, f"only {interrupted} of {RUNS} kills interrupted a sync"
        assert delivered > 0 and registry.rows(), "nothing was delivered between the kills"

        # a final clean sync with the registry up
        registry.restart()
        for _ in range(20):
            report = _sync(store, client, site_id, keys, spool)
            assert report.error is None and report.failed == 0, report
            if not store.outbox.due():
                break
        with store.engine.connect() as connection:
            states = connection.execute(
                sa.text("SELECT state, count(*) FROM outbox GROUP BY state")
            )
            assert dict(states.all()) == {"done": len(ids)}
        assert not list(spool.iterdir())  # every spooled blob was confirmed and dropped
    finally:
        client.close()

    # exactly once, by idempotency key, all from this workstation
    rows = registry.rows()
    assert sorted(key for _ws, key, _sha in rows) == sorted(f"result:{i}" for i in ids)
    assert {ws for ws, _key, _sha in rows} == {enrolment.workstation_id}

    # every row's blob is on disk, whole (its sha256 matches the row)
    stored = _stored(registry)
    blobs = registry.data / "blobs"
    for registry_id, _key, sha256 in stored:
        assert hashlib.sha256((blobs / registry_id).read_bytes()).hexdigest() == sha256
    orphans = {p.name for p in blobs.iterdir()} - {registry_id for registry_id, _, _ in stored}
    print(f"{interrupted}/{RUNS} syncs interrupted, {delivered} delivered between kills,")
    print(f"{len(stored)} rows, {len(orphans)} orphan blob file(s)")

    # the audit chain survived the kills
    db = Database(registry.db_url())
    try:
        with db.sessions() as session:
            assert audit.verify(session) == []
    finally:
        db.dispose()

    # downloads through the API are whole and open to the site's recipient key
    by_id = {registry_id: sha256 for registry_id, _key, sha256 in stored}
    with httpx.Client(base_url=registry.url, timeout=30) as http:
        admin = login(http, "admin")
        verdict = http.get("/admin/audit/verify", headers=admin).json()
        assert verdict["ok"] is True, verdict["problems"]
        clinician = login(http, "clinician-a")
        for registry_id in rng.sample(sorted(by_id), 5):
            response = http.get(f"/results/{registry_id}/blob", headers=clinician)
            assert response.status_code == 200, response.text
            assert hashlib.sha256(response.content).hexdigest() == by_id[registry_id]
            assert response.headers["X-Content-SHA256"] == by_id[registry_id]
            assert open_payload(response.content, keys.recipient).document["result_id"] in ids

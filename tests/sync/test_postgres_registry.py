"""The sync path end to end against a registry backed by a real PostgreSQL: exactly once (a
lost response is retried as a duplicate from the spool), site isolation on downloads, and no
patient identifier anywhere in the registry's database."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from registry_kit import RunningRegistry, Seeded, login, seed, start_registry

from sync.conftest import MakeResults
from sync.sync_kit import SECRET_IDENTIFIERS, Clock, Keys
from workstation.registry import audit
from workstation.registry.db import Database
from workstation.store import ResultStore
from workstation.sync.client import RegistryClient, RegistryUnavailable, Upload
from workstation.sync.engine import SyncReport, sync_once
from workstation.sync.payload import open_payload


@dataclass
class PgRegistry:
    server: RunningRegistry
    seeded: Seeded
    db_url: str

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(registry id, workstation id, idempotency key, sha256) of every stored result."""
        engine = sa.create_engine(self.db_url)
        try:
            with engine.connect() as connection:
                query = sa.text(
                    "SELECT id, workstation_id, idempotency_key, sha256 FROM sealed_results"
                )
                return [tuple(map(str, row)) for row in connection.execute(query)]  # type: ignore[misc]
        finally:
            engine.dispose()


@pytest.fixture
def pg_registry(postgres_url: str, tmp_path: Path) -> Iterator[PgRegistry]:
    data = tmp_path / "registry-data"
    data.mkdir()
    server = start_registry(data, db_url=postgres_url)  # migrates the empty database
    db = Database(postgres_url)
    try:
        seeded = seed(db)
    finally:
        db.dispose()
    try:
        yield PgRegistry(server, seeded, postgres_url)
    finally:
        server.stop()


class _LosesFirstResponse(RegistryClient):
    """The first upload reaches the registry, but its answer is lost on the way back."""

    lost = False

    def upload_result(self, idempotency_key: str, blob: bytes, *, kind: str = "analysis") -> Upload:
        upload = super().upload_result(idempotency_key, blob, kind=kind)
        if not self.lost:
            self.lost = True
            raise RegistryUnavailable("connection reset (simulated)")
        return upload


def _sync(
    store: ResultStore, client: RegistryClient, site_id: str, keys: Keys, spool: Path
) -> SyncReport:
    return sync_once(store, client, site_id=site_id, keys=keys, spool=spool, rng=lambda: 0.5)


def _every_value(url: str) -> Iterator[tuple[str, bytes]]:
    """(table.column, value as bytes) for every non-null value of every table in ``url``."""
    engine = sa.create_engine(url)
    try:
        tables = sa.inspect(engine).get_table_names()
        assert {"sealed_results", "audit_events", "workstations"} <= set(tables)
        with engine.connect() as connection:
            for table in tables:
                result = connection.execute(sa.text(f'SELECT * FROM "{table}"'))
                columns = list(result.keys())
                for row in result:
                    for column, value in zip(columns, row, strict=True):
                        if value is None:
                            continue
                        if isinstance(value, memoryview):
                            value = value.tobytes()
                        raw = value if isinstance(value, bytes) else str(value).encode()
                        yield f"{table}.{column}", raw
    finally:
        engine.dispose()


def test_sync_to_a_postgres_registry(
    pg_registry: PgRegistry,
    store: ResultStore,
    keys: Keys,
    clock: Clock,
    save_results: MakeResults,
    tmp_path: Path,
) -> None:
    spool = tmp_path / "spool"
    url = pg_registry.server.url
    with RegistryClient(url, signing_key=keys.signing) as enroller:
        token = pg_registry.seeded.tokens["a"]
        enrolment = enroller.enrol(
            token, "ws", keys.signing.public_key, keys.recipient.public_key()
        )
    assert enrolment.site_id == pg_registry.seeded.sites["a"]
    site_id, ws_id = enrolment.site_id, enrolment.workstation_id
    ids = save_results(5)
    expected = sorted(f"result:{i}" for i in ids)

    with (
        _LosesFirstResponse(url, signing_key=keys.signing, workstation_id=ws_id) as lossy,
        RegistryClient(url, signing_key=keys.signing, workstation_id=ws_id) as client,
    ):
        # the first upload arrives, its answer is lost: retried later, from the spool
        report = _sync(store, lossy, site_id, keys, spool)
        assert (report.retried, report.delivered, report.unreachable) == (1, 0, True)
        assert len(pg_registry.rows()) == 1
        clock.advance(3600)
        report = _sync(store, client, site_id, keys, spool)
        assert (report.sent, report.duplicates, report.failed, report.error) == (4, 1, 0, None)
        assert sorted(report.results) == sorted(ids)
        rows = pg_registry.rows()
        assert sorted(key for _id, _ws, key, _sha in rows) == expected  # exactly once
        assert {ws for _id, ws, _key, _sha in rows} == {ws_id}
        assert _sync(store, client, site_id, keys, spool).delivered == 0
        assert not list(spool.iterdir())

        # an entry sent again with the bytes the registry holds (a crash before "done" whose
        # spool survived): a duplicate, still one row
        registry_id, _ws, _key, sha256 = next(r for r in rows if r[2] == f"result:{ids[2]}")
        with httpx.Client(base_url=url, timeout=30) as http:
            blob = http.get(
                f"/results/{registry_id}/blob", headers=login(http, "clinician-a")
            ).content
        assert hashlib.sha256(blob).hexdigest() == sha256
        with store.engine.begin() as connection:
            entry_id = connection.execute(
                sa.text("SELECT id FROM outbox WHERE object_id = :id"), {"id": ids[2]}
            ).scalar_one()
            connection.execute(
                sa.text("UPDATE outbox SET state = 'pending' WHERE id = :id"), {"id": entry_id}
            )
        (spool / f"{entry_id}.sealed").write_bytes(blob)
        report = _sync(store, client, site_id, keys, spool)
        assert (report.sent, report.duplicates, report.failed) == (0, 1, 0)
        assert sorted(key for _id, _ws, key, _sha in pg_registry.rows()) == expected

    with httpx.Client(base_url=url, timeout=30) as http:
        # site isolation: another site's clinician may not fetch the blob; viewers never may
        for user, status in (("clinician-b", 403), ("viewer-a", 403), ("clinician-a", 200)):
            response = http.get(f"/results/{registry_id}/blob", headers=login(http, user))
            assert response.status_code == status, (user, response.text)
        assert open_payload(response.content, keys.recipient).document["result_id"] == ids[2]
        other = http.get("/results", headers=login(http, "clinician-b")).json()
        assert (other["items"] if isinstance(other, dict) else other) == []
        verdict = http.get("/admin/audit/verify", headers=login(http, "admin")).json()
        assert verdict["ok"] is True, verdict["problems"]

    db = Database(pg_registry.db_url)
    try:
        with db.sessions() as session:
            assert audit.verify(session) == []
    finally:
        db.dispose()

    # no patient identifier in any column of any table, nor in the blobs on disk
    seen = 0
    for where, raw in _every_value(pg_registry.db_url):
        seen += 1
        for secret in SECRET_IDENTIFIERS:
            assert secret.encode() not in raw, f"{secret!r} found in {where}"
    assert seen > 50  # the scan did read the database
    for path in (pg_registry.server.data / "blobs").iterdir():
        content = path.read_bytes()
        assert all(secret.encode() not in content for secret in SECRET_IDENTIFIERS), path.name

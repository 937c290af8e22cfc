"""ResultStore on SQLite and PostgreSQL: round trip, atomic saves, audited reads, outbox, users."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import replace

import pytest
import sqlalchemy as sa

from store.store_kit import FINDING_TEXT, PATIENT_ID, STUDY_UID, MakeStore, pseudonym, sample_result
from workstation.store import (
    CHUNK_SIZE,
    ConflictError,
    NewMap,
    NotFoundError,
    Role,
    StoreError,
    StudyRef,
)


def _count(store, table: str) -> int:  # type: ignore[no-untyped-def]
    with store.engine.connect() as connection:
        return int(connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_save_and_read_back(db_url: str, make_store: MakeStore) -> None:
    store = make_store(db_url)
    big = os.urandom(2 * CHUNK_SIZE + 123)  # three chunks, the last one short
    new = replace(sample_result(), maps=[NewMap("gradcam", big, {"shape": [3]}), NewMap("ig", b"")])
    result_id = store.save_result(new)

    result = store.get_result(result_id)
    assert result.study == pseudonym(STUDY_UID)
    assert (result.model_name, result.model_version) == ("brain-lesion", "1.2.0")
    assert result.parameters == dict(new.parameters)
    assert [f.text for f in result.findings] == [FINDING_TEXT, FINDING_TEXT]
    assert result.findings[1].values == {"volume_ml": 2.25, "patient": PATIENT_ID}
    assert [(m.method, m.size, dict(m.meta)) for m in result.maps] == [
        ("gradcam", len(big), {"shape": [3]}),
        ("ig", 0, {}),
    ]
    assert store.read_map(result.maps[0].id) == big
    assert store.read_map(result.maps[1].id) == b""

    [summary] = store.list_results()
    assert (summary.id, summary.finding_count, summary.map_count) == (result_id, 2, 2)
    assert store.list_results(study="ps-other") == []
    actions = [e["action"] for e in store.audit.export()]
    assert actions == [
        "result.save",
        "result.view",
        "map.view",
        "map.view",
        "result.list",
        "result.list",
    ]
    assert store.audit.verify().ok


def test_the_same_study_is_stored_once(db_url: str, make_store: MakeStore) -> None:
    store = make_store(db_url)
    first = store.save_result(sample_result(maps=0))
    second = store.save_result(replace(sample_result(maps=0), study=StudyRef(pseudonym(STUDY_UID))))
    assert _count(store, "studies") == 1
    assert {s.id for s in store.list_results(study=pseudonym(STUDY_UID))} == {first, second}


def test_a_failed_save_leaves_nothing(db_url: str, make_store: MakeStore) -> None:
    """The study and findings are inserted before the analysis fails (NOT NULL): all undone."""
    store = make_store(db_url)
    broken = replace(sample_result(), input_hash=None)  # type: ignore[arg-type]
    with pytest.raises(ConflictError, match="saving a result failed"):
        store.save_result(broken)
    for table in ("studies", "analyses", "findings", "explanation_maps", "map_chunks", "outbox"):
        assert _count(store, table) == 0, table
    assert store.audit.head()[0] == 0


def test_unknown_ids(db_url: str, make_store: MakeStore) -> None:
    store = make_store(db_url)
    with pytest.raises(NotFoundError):
        store.get_result("0b6b3c66-0000-0000-0000-000000000000")
    with pytest.raises(NotFoundError):
        store.read_map("nope")
    with pytest.raises(ValueError, match="purpose"):
        store.get_result("x", purpose="peek")


def test_export_purpose_is_audited(sqlite_url: str, make_store: MakeStore) -> None:
    store = make_store(sqlite_url)
    result_id = store.save_result(sample_result())
    store.get_result(result_id, purpose="export")
    events = list(store.audit.export())
    assert events[-1]["action"] == "result.export"
    assert events[-1]["object_id"] == result_id
    assert events[-1]["study"] == pseudonym(STUDY_UID)


def test_outbox_is_written_with_the_result(db_url: str, make_store: MakeStore) -> None:
    now = [dt.datetime(2026, 1, 1, tzinfo=dt.UTC)]
    store = make_store(db_url, clock=lambda: now[0])
    result_id = store.save_result(sample_result(maps=0), sync=True)
    [item] = store.outbox.due()
    assert (item.idempotency_key, item.object_id, item.attempts) == (
        f"result:{result_id}",
        result_id,
        0,
    )
    store.outbox.failed(item.id, "registry unreachable", retry_in=dt.timedelta(minutes=5))
    assert store.outbox.due() == []
    now[0] += dt.timedelta(minutes=6)
    [again] = store.outbox.due()
    assert again.attempts == 1
    store.outbox.done(again.id)
    assert store.outbox.due() == []


def test_users_and_roles(db_url: str, make_store: MakeStore) -> None:
    store = make_store(db_url)
    store.users.add("dr.house", Role.RADIOLOGIST)
    store.users.add("ada", "researcher")
    assert [(u.username, u.role) for u in store.users.list()] == [
        ("ada", Role.RESEARCHER),
        ("dr.house", Role.RADIOLOGIST),
    ]
    with pytest.raises(ConflictError):
        store.users.add("ada", "admin")
    with pytest.raises(ValueError):
        store.users.add("eve", "superuser")
    assert store.users.get("ada").role is Role.RESEARCHER
    assert [e["action"] for e in store.audit.export()] == ["user.add", "user.add"]


def test_store_errors_are_translated(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from workstation.store import StoreUnavailableError, create_engine, migrate

    folder = tmp_path / "not-a-folder"
    folder.write_text("a file")
    with pytest.raises(StoreUnavailableError, match="unavailable"):
        migrate(create_engine(f"sqlite:///{folder / 'results.db'}"))
    assert issubclass(StoreUnavailableError, StoreError)


def test_postgres_refused_connection_is_translated() -> None:
    pytest.importorskip("psycopg")
    from workstation.store import StoreUnavailableError, create_engine, migrate

    with pytest.raises(StoreUnavailableError):
        migrate(create_engine("postgresql+psycopg://postgres@127.0.0.1:1/none"))

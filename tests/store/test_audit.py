"""The audit chain: every kind of tampering is found and the event named (SQLite, PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from store.store_kit import MakeStore
from workstation.security.sign import HybridSigningKey
from workstation.store import AuditReport, ResultStore
from workstation.store._chain import EVENT_FIELDS, event_hash
from workstation.store.models import AuditCheckpoint, AuditEvent, AuditHead

EVENTS, HEAD, CHECKPOINTS = AuditEvent.__table__, AuditHead.__table__, AuditCheckpoint.__table__


def _trail(store: ResultStore, count: int = 10) -> None:
    for i in range(count):
        store.audit.record(
            actor="alice",
            action="result.view",
            object_type="analysis",
            object_id=f"id-{i}",
            study=f"ps-{i % 3}",
            details={"n": i},
        )


def _rows(store: ResultStore) -> list[dict[str, Any]]:
    with store.engine.connect() as connection:
        return [dict(r._mapping) for r in connection.execute(sa.select(EVENTS).order_by("seq"))]


def _rewrite(store: ResultStore, rows: list[dict[str, Any]], head: bool = False) -> None:
    """Replace the whole table by ``rows`` (what an attacker with the file can do)."""
    with store.engine.begin() as connection:
        connection.execute(EVENTS.delete())
        connection.execute(EVENTS.insert(), rows)
        if head:
            last = rows[-1]
            connection.execute(HEAD.update().values(seq=last["seq"], hash=last["hash"]))


def _rehash(row: dict[str, Any], prev: str) -> dict[str, Any]:
    row = {**row, "prev_hash": prev}
    row["hash"] = event_hash(prev, [row[name] for name in EVENT_FIELDS])
    return row


def _first(report: AuditReport) -> tuple[int, str]:
    assert not report.ok
    first = report.first_problem
    assert first is not None
    return first.seq, first.kind


@pytest.fixture
def store(db_url: str, make_store: MakeStore) -> ResultStore:
    made = make_store(db_url, checkpoint_every=4)
    _trail(made)
    return made


def test_an_untouched_chain_verifies(store: ResultStore, signer: HybridSigningKey) -> None:
    report = store.audit.verify(trusted=[signer.public_key], batch=3)
    assert report.ok, report.problems
    assert (report.events, report.last_seq, report.checkpoints) == (10, 10, 2)
    assert report.signatures_checked
    assert report.to_json()["first_bad_seq"] is None


def test_an_edited_field_is_named(store: ResultStore) -> None:
    with store.engine.begin() as connection:
        connection.execute(EVENTS.update().where(EVENTS.c.seq == 6).values(actor="mallory"))
    report = store.audit.verify()
    assert _first(report) == (6, "edited")
    assert len(report.problems) == 1
    assert "event 6 does not match its hash" in report.problems[0].message


def test_an_edit_with_a_recomputed_hash_is_named(store: ResultStore) -> None:
    rows = _rows(store)
    rows[6] = _rehash({**rows[6], "object_id": "other"}, rows[6]["prev_hash"])  # seq 7
    _rewrite(store, rows)
    assert _first(store.audit.verify()) == (7, "edited")


def test_a_deleted_event_is_named(store: ResultStore) -> None:
    with store.engine.begin() as connection:
        connection.execute(EVENTS.delete().where(EVENTS.c.seq == 3))
    report = store.audit.verify()
    assert _first(report) == (3, "deleted")
    assert "event 3 missing" in report.problems[0].message


def test_a_deleted_tail_is_named(store: ResultStore) -> None:
    with store.engine.begin() as connection:
        connection.execute(EVENTS.delete().where(EVENTS.c.seq >= 9))
    assert _first(store.audit.verify()) == (9, "deleted")


def test_deletion_with_renumbering_is_named(store: ResultStore) -> None:
    rows = _rows(store)
    del rows[4]  # seq 5
    for row in rows[4:]:
        row["seq"] -= 1
    _rewrite(store, rows, head=True)
    assert _first(store.audit.verify()) == (5, "deleted")


@pytest.mark.parametrize(("a", "b"), [(4, 7), (5, 6)], ids=["apart", "adjacent"])
def test_swapped_events_are_named(store: ResultStore, a: int, b: int) -> None:
    rows = _rows(store)
    ra, rb = rows[a - 1], rows[b - 1]
    rows[a - 1], rows[b - 1] = {**rb, "seq": a}, {**ra, "seq": b}
    _rewrite(store, rows)
    report = store.audit.verify()
    assert _first(report) == (a, "reordered")
    assert f"event {a} holds event {b}" in report.problems[0].message


def test_an_inserted_event_is_named(store: ResultStore) -> None:
    rows = _rows(store)
    forged = _rehash({**rows[4], "seq": 5, "actor": "mallory"}, rows[3]["hash"])
    shifted = [{**row, "seq": row["seq"] + 1} for row in rows[4:]]
    _rewrite(store, [*rows[:4], forged, *shifted], head=True)
    report = store.audit.verify()
    assert _first(report) == (5, "inserted")
    assert "event 5 was inserted" in report.problems[0].message


def test_an_event_appended_behind_the_stores_back_is_named(store: ResultStore) -> None:
    rows = _rows(store)
    forged = _rehash({**rows[-1], "seq": 11, "object_id": "x"}, rows[-1]["hash"])
    _rewrite(store, [*rows, forged])  # the head row is not updated
    assert _first(store.audit.verify()) == (11, "inserted")


def test_a_rebuilt_chain_is_caught_by_the_signed_checkpoint(
    store: ResultStore, signer: HybridSigningKey
) -> None:
    rows = _rows(store)
    rows[1]["actor"] = "mallory"  # seq 2, then every hash after it recomputed
    prev = rows[0]["hash"]
    for i in range(1, len(rows)):
        rows[i] = _rehash(rows[i], prev)
        prev = rows[i]["hash"]
    _rewrite(store, rows, head=True)
    report = store.audit.verify(trusted=[signer.public_key])
    assert _first(report) == (4, "edited")
    assert "signed checkpoint" in report.problems[0].message


def test_checkpoint_signatures_are_checked(store: ResultStore, signer: HybridSigningKey) -> None:
    other = HybridSigningKey.generate()
    report = store.audit.verify(trusted=[other.public_key])
    assert _first(report) == (4, "signature")
    assert "untrusted key" in report.problems[0].message
    with store.engine.begin() as connection:
        connection.execute(CHECKPOINTS.update().where(CHECKPOINTS.c.seq == 8).values(time="x"))
    report = store.audit.verify(trusted=[signer.public_key])
    assert _first(report) == (8, "signature")


def test_details_must_be_short_scalars(store: ResultStore) -> None:
    for bad in ({"text": "x" * 500}, {"nested": {"a": 1}}, {"": 1}):
        with pytest.raises(ValueError, match="audit detail"):
            store.audit.record(actor="a", action="x", object_type="t", object_id="1", details=bad)


def test_export_since(sqlite_url: str, make_store: MakeStore) -> None:
    import datetime as dt

    now = [dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)]
    store = make_store(sqlite_url, clock=lambda: now[0])
    _trail(store, 2)
    now[0] = dt.datetime(2026, 3, 3, 8, tzinfo=dt.UTC)
    _trail(store, 3)
    since = [e["seq"] for e in store.audit.export(dt.datetime(2026, 3, 2, tzinfo=dt.UTC))]
    assert since == [3, 4, 5]
    [event] = list(store.audit.export())[:1]
    assert event["details"] == {"n": 0} and event["time"] == "2026-03-01T12:00:00.000000Z"

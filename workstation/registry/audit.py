"""The registry's own audit trail: append-only, hash-chained, without PHI.

Each event's hash covers its fields and the previous event's hash, so an edited, deleted or
reordered event breaks the chain at that point (:func:`verify`). Events are appended inside the
caller's transaction (the chain and the change commit together); concurrent writers are
serialised by the unique ``seq`` and retried by the caller's transaction on conflict.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from workstation.registry.db import stamp
from workstation.registry.models import AuditEvent

__all__ = ["GENESIS", "record", "verify"]

GENESIS = "0" * 64
_FIELDS = ("seq", "time", "actor", "action", "object_type", "object_id", "details")


def _digest(prev: str, values: Mapping[str, Any]) -> str:
    payload = json.dumps([prev, *(values[f] for f in _FIELDS)], separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    details: Mapping[str, str | int | bool | None] | None = None,
) -> AuditEvent:
    """Append one event in ``session``'s transaction (flushed, not committed)."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        session.execute(sa.text("LOCK TABLE audit_events IN SHARE ROW EXCLUSIVE MODE"))
    last = session.execute(
        sa.select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
    ).first()
    seq, prev = (int(last[0]) + 1, str(last[1])) if last else (1, GENESIS)
    values = {
        "seq": seq,
        "time": stamp(),
        "actor": actor[:100],
        "action": action[:50],
        "object_type": object_type[:50],
        "object_id": object_id[:100],
        "details": json.dumps(dict(details or {}), sort_keys=True, separators=(",", ":")),
    }
    event = AuditEvent(**values, prev_hash=prev, hash=_digest(prev, values))
    session.add(event)
    session.flush()
    return event


def verify(session: Session) -> list[str]:
    """Problems in the chain (empty when intact), each naming its event."""
    problems: list[str] = []
    prev, expected = GENESIS, 1
    for event in session.scalars(sa.select(AuditEvent).order_by(AuditEvent.seq)):
        values = {f: getattr(event, f) for f in _FIELDS}
        if event.seq != expected:
            problems.append(f"event {expected}: missing (next is {event.seq})")
        if event.prev_hash != prev:
            problems.append(f"event {event.seq}: does not follow the event before it")
        if event.hash != _digest(event.prev_hash, values):
            problems.append(f"event {event.seq}: edited")
        prev, expected = event.hash, event.seq + 1
    return problems

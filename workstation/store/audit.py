"""The tamper-evident audit trail: append-only, hash-chained, with signed checkpoints.

Each event stores the hash of the one before it (``prev_hash``) and its own hash over a
canonical encoding (:mod:`workstation.store._chain`); the ``audit_head`` row holds the last seq
and hash, and appending locks it (``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE``
on SQLite), so concurrent writers get consecutive seqs. Every ``checkpoint_every`` events the
workstation's hybrid key (Ed25519 + ML-DSA-65) signs the head.

Events carry no PHI: the actor, an action (``"result.view"``), the object's type and random id,
the study's pseudonym, and ``details`` limited to short scalar values (counts, model names).

Limits (stated, not hidden): anyone able to write the database can append well-formed events,
or cut and rebuild the chain after the last signed checkpoint; a checkpoint pins everything
before it. Verification reads the events once, in batches, in ``seq`` order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from workstation.store._chain import (
    CHECKPOINT_CONTEXT,
    EVENT_FIELDS,
    GENESIS,
    AuditProblem,
    AuditReport,
    ChainVerifier,
    checkpoint_message,
    event_hash,
)
from workstation.store._time import Clock, format_time, utcnow
from workstation.store.errors import StoreError, translated
from workstation.store.models import AuditCheckpoint, AuditEvent, AuditHead

if TYPE_CHECKING:
    import datetime as dt

    from workstation.security.sign import HybridPublicKey, HybridSigningKey

__all__ = ["AuditProblem", "AuditReport", "AuditTrail"]

DEFAULT_CHECKPOINT_EVERY = 256
_MAX_DETAIL = 200
_EVENTS = AuditEvent.__table__
_HEAD = AuditHead.__table__
_CHECKPOINTS = AuditCheckpoint.__table__
_COLUMNS = [_EVENTS.c[name] for name in (*EVENT_FIELDS, "prev_hash", "hash")]


def _details_json(details: Mapping[str, Any] | None) -> str:
    """Canonical JSON of short scalar details (free text is where PHI hides: refused)."""
    clean: dict[str, Any] = {}
    for key, value in (details or {}).items():
        if not isinstance(key, str) or not key or len(key) > 64:
            raise ValueError(f"audit detail keys are short strings, not {key!r}")
        if isinstance(value, str) and len(value) > _MAX_DETAIL:
            raise ValueError(f"audit detail {key!r} is longer than {_MAX_DETAIL} characters")
        if value is not None and not isinstance(value, str | int | bool):
            raise ValueError(f"audit detail {key!r} must be a string, integer or boolean")
        clean[key] = value
    return json.dumps(clean, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class AuditTrail:
    """Appends, verifies and exports audit events of one store.

    Parameters
    ----------
    engine
        The store's engine (the schema migrated).
    signer
        The workstation's signing key (``KeyStore.signing_key()``); without one no checkpoints
        are written.
    checkpoint_every
        Sign the head after every this many events.
    clock
        Returns the current time (timezone-aware); injected for tests.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        signer: HybridSigningKey | None = None,
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
        clock: Clock = utcnow,
    ) -> None:
        if checkpoint_every < 1:
            raise ValueError("checkpoint_every must be at least 1")
        self._engine = engine
        self._signer = signer
        self._every = checkpoint_every
        self._clock = clock

    @staticmethod
    def lock(connection: Connection) -> None:
        """Take the chain's write lock now (it is held to the end of the transaction).

        A writer that reads before it writes (``save_result`` looks its study up) locks first,
        so concurrent writers on PostgreSQL queue instead of racing; on SQLite ``BEGIN
        IMMEDIATE`` already did.
        """
        connection.execute(sa.select(_HEAD.c.seq).where(_HEAD.c.id == 1).with_for_update())

    def append(
        self,
        connection: Connection,
        *,
        actor: str,
        action: str,
        object_type: str,
        object_id: str,
        study: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> int:
        """Append one event inside the caller's transaction (so it commits with the work it
        records, or not at all); returns its seq."""
        head = connection.execute(
            sa.select(_HEAD.c.seq, _HEAD.c.hash).where(_HEAD.c.id == 1).with_for_update()
        ).one_or_none()
        if head is None:
            raise StoreError("the audit head is missing: the store's schema is incomplete")
        seq, time = head.seq + 1, format_time(self._clock())
        values = (seq, time, actor, action, object_type, object_id, study, _details_json(details))
        digest = event_hash(head.hash, values)
        connection.execute(
            sa.insert(_EVENTS).values(
                {
                    **dict(zip(EVENT_FIELDS, values, strict=True)),
                    "prev_hash": head.hash,
                    "hash": digest,
                }
            )
        )
        connection.execute(sa.update(_HEAD).where(_HEAD.c.id == 1).values(seq=seq, hash=digest))
        if self._signer is not None and seq % self._every == 0:
            signature = self._signer.sign(
                checkpoint_message(seq, digest, time), context=CHECKPOINT_CONTEXT
            )
            connection.execute(
                sa.insert(_CHECKPOINTS).values(
                    seq=seq,
                    hash=digest,
                    time=time,
                    key_id=signature.key_id,
                    signature=json.dumps(signature.to_json(), sort_keys=True),
                )
            )
        return seq

    def record(
        self,
        *,
        actor: str,
        action: str,
        object_type: str,
        object_id: str,
        study: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> int:
        """Append one event in its own transaction (sign-in, model change, plugin install...)."""
        with translated("writing the audit trail"), self._engine.begin() as connection:
            return self.append(
                connection,
                actor=actor,
                action=action,
                object_type=object_type,
                object_id=object_id,
                study=study,
                details=details,
            )

    def head(self) -> tuple[int, str]:
        """The last seq and its hash (``(0, GENESIS)`` for an empty trail)."""
        with translated("reading the audit head"), self._engine.connect() as connection:
            row = connection.execute(sa.select(_HEAD.c.seq, _HEAD.c.hash)).first()
        return (0, GENESIS) if row is None else (row.seq, row.hash)

    def verify(
        self, *, trusted: Iterable[HybridPublicKey] = (), batch: int = 10_000
    ) -> AuditReport:
        """Check the whole chain, the head and the checkpoints; name every problem's event.

        Parameters
        ----------
        trusted
            Public keys whose checkpoint signatures are accepted (the workstation's own,
            ``KeyStore.signing_key().public_key``). Without any, signatures are not checked
            (``signatures_checked`` is false) but checkpoint hashes still are.
        batch
            Rows fetched per round trip.
        """
        keys = {key.key_id: key for key in trusted}
        with translated("verifying the audit trail"), self._engine.connect() as connection:
            checkpoints = connection.execute(
                sa.select(_CHECKPOINTS).order_by(_CHECKPOINTS.c.seq)
            ).all()
            verifier = ChainVerifier(frozenset(row.seq for row in checkpoints))
            result = connection.execution_options(yield_per=batch).execute(
                sa.select(*_COLUMNS).order_by(_EVENTS.c.seq)
            )
            for row in result:
                verifier.feed(row)
            head = connection.execute(sa.select(_HEAD.c.seq, _HEAD.c.hash)).first()
        extra = [self._check_checkpoint(row, verifier, keys) for row in checkpoints]
        problems = verifier.finish(
            None if head is None else (head.seq, head.hash), [p for p in extra if p]
        )
        return AuditReport(
            events=verifier.events,
            last_seq=verifier.last_seq,
            checkpoints=len(checkpoints),
            signatures_checked=bool(keys),
            problems=tuple(problems),
        )

    @staticmethod
    def _check_checkpoint(
        row: Any, verifier: ChainVerifier, keys: Mapping[str, HybridPublicKey]
    ) -> AuditProblem | None:
        from workstation.security.errors import SignatureError
        from workstation.security.sign import HybridSignature

        stored = verifier.stored_hash_at(row.seq)
        if stored is None:
            return AuditProblem(
                row.seq, "deleted", f"event {row.seq} is missing but a signed checkpoint names it"
            )
        if stored != row.hash:
            return AuditProblem(
                row.seq,
                "edited",
                f"event {row.seq} differs from its signed checkpoint: the chain was rewritten",
            )
        if not keys:
            return None
        key = keys.get(row.key_id)
        if key is None:
            return AuditProblem(
                row.seq, "signature", f"checkpoint {row.seq} is signed by an untrusted key"
            )
        try:
            key.verify(
                HybridSignature.from_json(json.loads(row.signature)),
                checkpoint_message(row.seq, row.hash, row.time),
                context=CHECKPOINT_CONTEXT,
            )
        except (SignatureError, ValueError) as error:
            return AuditProblem(
                row.seq, "signature", f"checkpoint {row.seq} signature is invalid: {error}"
            )
        return None

    def export(self, since: dt.datetime | None = None, *, batch: int = 10_000) -> Iterator[dict]:
        """Events at or after ``since`` (all when ``None``) as JSON-ready dictionaries."""
        query = sa.select(*_COLUMNS).order_by(_EVENTS.c.seq)
        if since is not None:
            query = query.where(_EVENTS.c.time >= format_time(since))
        with translated("exporting the audit trail"), self._engine.connect() as connection:
            for row in connection.execution_options(yield_per=batch).execute(query):
                event = dict(row._mapping)
                event["details"] = json.loads(event["details"])
                yield event

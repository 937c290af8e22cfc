"""The store's tables (SQLAlchemy 2 typed declarative). Alembic migrations mirror this file.

What is encrypted (:class:`~workstation.store.crypto.EncryptedBytes`, bound to table, row and
column) and why:

- ``studies.identifiers``: the study's real identifiers (StudyInstanceUID, patient id/name,
  accession), kept so a radiologist can find the study again; only the pseudonym is in clear.
- ``analyses.parameters``: model parameters may carry free text or identifying values.
- ``findings.content``: the finding's label, text, values and location.
- ``explanation_maps.meta`` and ``map_chunks.data``: map geometry / provenance and voxels.
- ``outbox.payload``: what a sync will send.

Clear columns hold no PHI: random UUIDs, pseudonyms, model names and versions, input hashes,
counts, times, states. Times are UTC text ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (the same bytes on
SQLite and PostgreSQL, sortable, hashed by the audit chain as stored).
"""

from __future__ import annotations

import enum

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from workstation.store.crypto import EncryptedBytes, EncryptedJSON, Sealed

UUID_LEN = 36
HASH_LEN = 64
TIME_LEN = 27


class Role(enum.StrEnum):
    """Local user roles."""

    RADIOLOGIST = "radiologist"
    RESEARCHER = "researcher"
    ADMIN = "admin"


class OutboxState(enum.StrEnum):
    """Where a sync outbox entry stands."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"  # gave up after the last attempt


class Base(DeclarativeBase):
    """Declarative base of the store's tables."""


class Study(Base):
    """A study the workstation has analysed, known by its pseudonym."""

    __tablename__ = "studies"
    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    pseudonym: Mapped[str] = mapped_column(String(128), unique=True)
    identifiers: Mapped[Sealed | None] = mapped_column(EncryptedJSON())
    first_seen: Mapped[str] = mapped_column(String(TIME_LEN))
    analyses: Mapped[list[Analysis]] = relationship(back_populates="study")


class Analysis(Base):
    """One model run on one study: the result's root."""

    __tablename__ = "analyses"
    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    study_id: Mapped[str] = mapped_column(ForeignKey("studies.id"), index=True)
    model_name: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str] = mapped_column(String(100))
    input_hash: Mapped[str] = mapped_column(String(128))
    parameters: Mapped[Sealed] = mapped_column(EncryptedJSON())
    created: Mapped[str] = mapped_column(String(TIME_LEN), index=True)
    created_by: Mapped[str] = mapped_column(String(200))
    finding_count: Mapped[int] = mapped_column(Integer)
    map_count: Mapped[int] = mapped_column(Integer)
    study: Mapped[Study] = relationship(back_populates="analyses")
    findings: Mapped[list[Finding]] = relationship(order_by="Finding.ordinal")
    maps: Mapped[list[ExplanationMap]] = relationship(order_by="ExplanationMap.ordinal")


class Finding(Base):
    """One finding of an analysis (everything about it encrypted)."""

    __tablename__ = "findings"
    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    analysis_id: Mapped[str] = mapped_column(ForeignKey("analyses.id"), index=True)
    ordinal: Mapped[int] = mapped_column(Integer)
    content: Mapped[Sealed] = mapped_column(EncryptedJSON())


class ExplanationMap(Base):
    """An explanation map's header; its voxels are in :class:`MapChunk` rows."""

    __tablename__ = "explanation_maps"
    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    analysis_id: Mapped[str] = mapped_column(ForeignKey("analyses.id"), index=True)
    ordinal: Mapped[int] = mapped_column(Integer)
    method: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    chunk_count: Mapped[int] = mapped_column(Integer)
    meta: Mapped[Sealed] = mapped_column(EncryptedJSON())
    chunks: Mapped[list[MapChunk]] = relationship(order_by="MapChunk.index")


class MapChunk(Base):
    """Up to ``CHUNK_SIZE`` bytes of a map; the row id is ``"<map id>/<index>"``."""

    __tablename__ = "map_chunks"
    id: Mapped[str] = mapped_column(String(UUID_LEN + 12), primary_key=True)
    map_id: Mapped[str] = mapped_column(ForeignKey("explanation_maps.id"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    data: Mapped[Sealed] = mapped_column(EncryptedBytes())


class User(Base):
    """A local user of this workstation."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('radiologist', 'researcher', 'admin')"),)
    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    created: Mapped[str] = mapped_column(String(TIME_LEN))
    active: Mapped[bool] = mapped_column(default=True)


class AuditEvent(Base):
    """One audit event, hash-chained to the one before (see :mod:`workstation.store.audit`)."""

    __tablename__ = "audit_events"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    time: Mapped[str] = mapped_column(String(TIME_LEN))
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    object_type: Mapped[str] = mapped_column(String(100))
    object_id: Mapped[str] = mapped_column(String(200))
    study: Mapped[str | None] = mapped_column(String(128))
    details: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(HASH_LEN))
    hash: Mapped[str] = mapped_column(String(HASH_LEN))


Index("ix_audit_events_time", AuditEvent.time)


class AuditHead(Base):
    """The chain's head (one row): serialises appends and shows truncation of the tail."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(HASH_LEN))


class AuditCheckpoint(Base):
    """A hybrid signature over the chain head at ``seq``."""

    __tablename__ = "audit_checkpoints"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(HASH_LEN))
    time: Mapped[str] = mapped_column(String(TIME_LEN))
    key_id: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(Text)


class OutboxEntry(Base):
    """Something to send to the registry, written in the same transaction as what it sends."""

    __tablename__ = "outbox"
    __table_args__ = (CheckConstraint("state IN ('pending', 'done', 'failed')"),)
    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(50))
    object_id: Mapped[str] = mapped_column(String(UUID_LEN))
    payload: Mapped[Sealed | None] = mapped_column(EncryptedJSON())
    state: Mapped[str] = mapped_column(String(10), default=OutboxState.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt: Mapped[str] = mapped_column(String(TIME_LEN), index=True)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created: Mapped[str] = mapped_column(String(TIME_LEN))


ENCRYPTED_COLUMNS: tuple[tuple[type[Base], str], ...] = (
    (Study, "identifiers"),
    (Analysis, "parameters"),
    (Finding, "content"),
    (ExplanationMap, "meta"),
    (MapChunk, "data"),
    (OutboxEntry, "payload"),
)
"""Every encrypted column, for re-wrapping and for :meth:`ResultStore.blobs`."""

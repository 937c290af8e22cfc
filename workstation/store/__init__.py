"""The encrypted result store and the tamper-evident audit trail.

- :class:`ResultStore`: results (analysis, findings, explanation maps) saved in one
  transaction, every sensitive column sealed with AES-256-GCM bound to (table, row, column),
  every read audited; the key store's ``CiphertextSource`` for rotation (:meth:`~ResultStore.
  blobs`, :meth:`~ResultStore.rewrap`).
- :class:`AuditTrail`: append-only, hash-chained events with signed checkpoints; ``verify``
  names the first bad event.
- :func:`create_engine` / :func:`migrate`: SQLite (WAL, ``synchronous=FULL``) under the home by
  default, any SQLAlchemy URL by configuration; Alembic migrations run at open.

Errors: :mod:`workstation.store.errors` (``StoreError`` and its branches). Qt-free.
"""

from __future__ import annotations

from workstation.store._chain import AuditProblem, AuditReport
from workstation.store._time import format_time, parse_since
from workstation.store.audit import AuditTrail
from workstation.store.engine import create_engine, current_revision, default_url, migrate
from workstation.store.errors import (
    ConflictError,
    NotFoundError,
    RecordCorruptError,
    SchemaError,
    StoreError,
    StoreUnavailableError,
)
from workstation.store.local import LocalUser, OutboxItem
from workstation.store.models import Role
from workstation.store.records import (
    NewFinding,
    NewMap,
    NewResult,
    Result,
    ResultSummary,
    StoredFinding,
    StoredMap,
    StudyRef,
)
from workstation.store.results import CHUNK_SIZE, ResultStore

__all__ = [
    "CHUNK_SIZE",
    "AuditProblem",
    "AuditReport",
    "AuditTrail",
    "ConflictError",
    "LocalUser",
    "NewFinding",
    "NewMap",
    "NewResult",
    "NotFoundError",
    "OutboxItem",
    "RecordCorruptError",
    "Result",
    "ResultStore",
    "ResultSummary",
    "Role",
    "SchemaError",
    "StoreError",
    "StoreUnavailableError",
    "StoredFinding",
    "StoredMap",
    "StudyRef",
    "create_engine",
    "current_revision",
    "default_url",
    "format_time",
    "migrate",
    "parse_since",
]

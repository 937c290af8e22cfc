"""The registry's tables (SQLAlchemy 2). Nothing here can identify a patient: results are
ciphertext the registry cannot open, with routing metadata only (site, workstation, sizes)."""

from __future__ import annotations

import enum

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "ApiKey",
    "AuditEvent",
    "Base",
    "Challenge",
    "EnrolmentToken",
    "ModelAssignment",
    "ModelMetadata",
    "ModelRelease",
    "ModelReport",
    "RevokedToken",
    "Role",
    "SealedResult",
    "Site",
    "User",
    "Webhook",
    "WebhookDelivery",
    "Workstation",
]


class Role(enum.StrEnum):
    """What an identity may do (see :mod:`workstation.registry.identity`)."""

    ADMIN = "admin"
    CLINICIAN = "clinician"
    VIEWER = "viewer"
    WORKSTATION = "workstation"


class Base(DeclarativeBase):
    pass


_ID = sa.String(36)
_TIME = sa.String(32)  # ISO 8601 UTC, sortable (as in the workstation's store)


class Site(Base):
    __tablename__ = "sites"
    id: Mapped[str] = mapped_column(_ID, primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    # Sealing recipients of the site's results (RecipientPublicKey JSON list) and, optionally,
    # a research recipient that also receives them.
    recipients: Mapped[str] = mapped_column(sa.Text, default="[]")
    created: Mapped[str] = mapped_column(_TIME)


class User(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(_ID, primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(100), unique=True)
    role: Mapped[str] = mapped_column(sa.String(20))
    site_id: Mapped[str | None] = mapped_column(sa.ForeignKey("sites.id"), nullable=True)
    password_hash: Mapped[str] = mapped_column(sa.String(200))
    failed_attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    locked_until: Mapped[str | None] = mapped_column(_TIME, nullable=True)
    created: Mapped[str] = mapped_column(_TIME)


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(_ID, primary_key=True)
    user_id: Mapped[str] = mapped_column(sa.ForeignKey("users.id"))
    key_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)  # SHA-256 hex of the key
    name: Mapped[str] = mapped_column(sa.String(100))
    created: Mapped[str] = mapped_column(_TIME)
    revoked: Mapped[bool] = mapped_column(sa.Boolean, default=False)


class RevokedToken(Base):
    __tablename__ = "revoked_tokens"
    jti: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    expires: Mapped[str] = mapped_column(_TIME)


class EnrolmentToken(Base):
    __tablename__ = "enrolment_tokens"
    id: Mapped[str] = mapped_column(_ID, primary_key=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    site_id: Mapped[str] = mapped_column(sa.ForeignKey("sites.id"))
    expires: Mapped[str] = mapped_column(_TIME)
    used_by: Mapped[str | None] = mapped_column(_ID, nullable=True)
    created_by: Mapped[str] = mapped_column(sa.String(100))


class Workstation(Base):
    __tablename__ = "workstations"
    id: Mapped[str] = mapped_column(_ID, primary_key=True)
    site_id: Mapped[str] = mapped_column(sa.ForeignKey("sites.id"))
    name: Mapped[str] = mapped_column(sa.String(200))
    signing_key: Mapped[str] = mapped_column(sa.Text)  # HybridPublicKey JSON
    recipient_key: Mapped[str] = mapped_column(sa.Text)  # RecipientPublicKey JSON
    enrolled: Mapped[str] = mapped_column(_TIME)
    revoked: Mapped[bool] = mapped_column(sa.Boolean, default=False)


class Challenge(Base):
    __tablename__ = "challenges"
    nonce: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    workstation_id: Mapped[str] = mapped_column(_ID)
    expires: Mapped[str] = mapped_column(_TIME)


class SealedResult(Base):
    __tablename__ = "sealed_results"
    __table_args__ = (sa.UniqueConstraint("workstation_id", "idempotency_key"),)
    id: Mapped[str] = mapped_column(_ID, primary_key=True)
    site_id: Mapped[str] = mapped_column(sa.ForeignKey("sites.id"), index=True)
    workstation_id: Mapped[str] = mapped_column(sa.ForeignKey("workstations.id"))
    idempotency_key: Mapped[str] = mapped_column(sa.String(200))
    kind: Mapped[str] = mapped_column(sa.String(50))
    size: Mapped[int] = mapped_column(sa.BigInteger)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    recipients: Mapped[str] = mapped_column(sa.Text)  # key ids the blob is sealed to (JSON)
    received: Mapped[str] = mapped_column(_TIME, index=True)


class ModelRelease(Base):
    __tablename__ = "model_releases"
    __table_args__ = (sa.UniqueConstraint("name", "version", "channel", "site_id"),)
    id: Mapped[str] = mapped_column(_ID, primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100), index=True)
    version: Mapped[str] = mapped_column(sa.String(50))
    channel: Mapped[str] = mapped_column(sa.String(20))  # shadow | canary | stable
    site_id: Mapped[str | None] = mapped_column(sa.ForeignKey("sites.id"), nullable=True)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    size: Mapped[int] = mapped_column(sa.BigInteger)
    published: Mapped[str] = mapped_column(_TIME)
    published_by: Mapped[str] = mapped_column(sa.String(100))


class Webhook(Base):
    __tablename__ = "webhooks"
    id: Mapped[str] = mapped_column(_ID, primary_key=True)
    url: Mapped[str] = mapped_column(sa.String(500))
    secret: Mapped[str] = mapped_column(sa.String(100))
    events: Mapped[str] = mapped_column(sa.String(200))  # comma-separated event names
    site_id: Mapped[str | None] = mapped_column(sa.ForeignKey("sites.id"), nullable=True)
    created: Mapped[str] = mapped_column(_TIME)


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"
    id: Mapped[str] = mapped_column(_ID, primary_key=True)
    webhook_id: Mapped[str] = mapped_column(sa.ForeignKey("webhooks.id"))
    event: Mapped[str] = mapped_column(sa.String(50))
    body: Mapped[str] = mapped_column(sa.Text)
    state: Mapped[str] = mapped_column(sa.String(20), default="pending")  # pending|done|failed
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    next_attempt: Mapped[str] = mapped_column(_TIME, index=True)
    last_error: Mapped[str | None] = mapped_column(sa.String(500), nullable=True)


class AuditEvent(Base):
    __tablename__ = "audit_events"
    seq: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    time: Mapped[str] = mapped_column(_TIME)
    actor: Mapped[str] = mapped_column(sa.String(100))
    action: Mapped[str] = mapped_column(sa.String(50))
    object_type: Mapped[str] = mapped_column(sa.String(50))
    object_id: Mapped[str] = mapped_column(sa.String(100))
    details: Mapped[str] = mapped_column(sa.Text, default="{}")
    prev_hash: Mapped[str] = mapped_column(sa.String(64))
    hash: Mapped[str] = mapped_column(sa.String(64))


class ModelMetadata(Base):
    """The current signed model metadata documents (``timestamp``, ``snapshot``, ``targets``),
    stored as the exact bytes that were signed and are served."""

    __tablename__ = "model_metadata"
    role: Mapped[str] = mapped_column(sa.String(20), primary_key=True)
    version: Mapped[int] = mapped_column(sa.Integer)
    raw: Mapped[bytes] = mapped_column(sa.LargeBinary)
    updated: Mapped[str] = mapped_column(_TIME)


class ModelAssignment(Base):
    """Which version of a model runs at which stage, for one site (or all: ``site_id`` null)."""

    __tablename__ = "model_assignments"
    __table_args__ = (sa.UniqueConstraint("name", "site_id"),)
    id: Mapped[str] = mapped_column(_ID, primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100), index=True)
    site_id: Mapped[str | None] = mapped_column(sa.ForeignKey("sites.id"), nullable=True)
    version: Mapped[str] = mapped_column(sa.String(50))
    stage: Mapped[str] = mapped_column(sa.String(20))  # shadow | canary | active
    share: Mapped[float] = mapped_column(sa.Float)
    updated: Mapped[str] = mapped_column(_TIME)
    updated_by: Mapped[str] = mapped_column(sa.String(100))


class ModelReport(Base):
    """One aggregate report from a workstation about a model (counts and rates; no PHI)."""

    __tablename__ = "model_reports"
    id: Mapped[str] = mapped_column(_ID, primary_key=True)
    site_id: Mapped[str] = mapped_column(sa.ForeignKey("sites.id"), index=True)
    workstation_id: Mapped[str] = mapped_column(sa.ForeignKey("workstations.id"))
    name: Mapped[str] = mapped_column(sa.String(100), index=True)
    version: Mapped[str] = mapped_column(sa.String(50))
    stage: Mapped[str] = mapped_column(sa.String(20))
    event: Mapped[str] = mapped_column(sa.String(30))
    n: Mapped[int] = mapped_column(sa.Integer)
    agreement: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    latency_p95_s: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    error_rate: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    detail: Mapped[str] = mapped_column(sa.String(200))
    time: Mapped[str] = mapped_column(_TIME)

"""The first schema: studies, analyses, findings, maps, users, audit chain, sync outbox.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.String(36)
TIME = sa.String(27)
HASH = sa.String(64)


def upgrade() -> None:
    op.create_table(
        "studies",
        sa.Column("id", ID, primary_key=True),
        sa.Column("pseudonym", sa.String(128), nullable=False, unique=True),
        sa.Column("identifiers", sa.LargeBinary(), nullable=True),
        sa.Column("first_seen", TIME, nullable=False),
    )
    op.create_table(
        "analyses",
        sa.Column("id", ID, primary_key=True),
        sa.Column("study_id", ID, sa.ForeignKey("studies.id"), nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(100), nullable=False),
        sa.Column("input_hash", sa.String(128), nullable=False),
        sa.Column("parameters", sa.LargeBinary(), nullable=False),
        sa.Column("created", TIME, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("finding_count", sa.Integer(), nullable=False),
        sa.Column("map_count", sa.Integer(), nullable=False),
    )
    op.create_index("ix_analyses_study_id", "analyses", ["study_id"])
    op.create_index("ix_analyses_created", "analyses", ["created"])
    op.create_table(
        "findings",
        sa.Column("id", ID, primary_key=True),
        sa.Column("analysis_id", ID, sa.ForeignKey("analyses.id"), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_findings_analysis_id", "findings", ["analysis_id"])
    op.create_table(
        "explanation_maps",
        sa.Column("id", ID, primary_key=True),
        sa.Column("analysis_id", ID, sa.ForeignKey("analyses.id"), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(100), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("meta", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_explanation_maps_analysis_id", "explanation_maps", ["analysis_id"])
    op.create_table(
        "map_chunks",
        sa.Column("id", sa.String(48), primary_key=True),
        sa.Column("map_id", ID, sa.ForeignKey("explanation_maps.id"), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_map_chunks_map_id", "map_chunks", ["map_id"])
    op.create_table(
        "users",
        sa.Column("id", ID, primary_key=True),
        sa.Column("username", sa.String(100), nullable=False, unique=True),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("created", TIME, nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.CheckConstraint("role IN ('radiologist', 'researcher', 'admin')"),
    )
    op.create_table(
        "audit_events",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("time", TIME, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("object_type", sa.String(100), nullable=False),
        sa.Column("object_id", sa.String(200), nullable=False),
        sa.Column("study", sa.String(128), nullable=True),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("prev_hash", HASH, nullable=False),
        sa.Column("hash", HASH, nullable=False),
    )
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", HASH, nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": "0" * 64}])
    op.create_table(
        "audit_checkpoints",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("hash", HASH, nullable=False),
        sa.Column("time", TIME, nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
    )
    op.create_table(
        "outbox",
        sa.Column("id", ID, primary_key=True),
        sa.Column("idempotency_key", sa.String(100), nullable=False, unique=True),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("object_id", ID, nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=True),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt", TIME, nullable=False),
        sa.Column("created", TIME, nullable=False),
        sa.CheckConstraint("state IN ('pending', 'done', 'failed')"),
    )
    op.create_index("ix_outbox_next_attempt", "outbox", ["next_attempt"])


def downgrade() -> None:
    for table in (
        "outbox",
        "audit_checkpoints",
        "audit_head",
        "audit_events",
        "users",
        "map_chunks",
        "explanation_maps",
        "findings",
        "analyses",
        "studies",
    ):
        op.drop_table(table)

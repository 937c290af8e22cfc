"""Model updates: the signed model metadata (timestamp, snapshot, targets), model assignments
per site and stage, and the workstations' aggregate model reports.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06 21:05:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_metadata",
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("updated", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("role"),
    )
    op.create_table(
        "model_assignments",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("site_id", sa.String(length=36), nullable=True),
        sa.Column("version", sa.String(length=50), nullable=False),
        sa.Column("stage", sa.String(length=20), nullable=False),
        sa.Column("share", sa.Float(), nullable=False),
        sa.Column("updated", sa.String(length=32), nullable=False),
        sa.Column("updated_by", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", "site_id"),
    )
    op.create_index(op.f("ix_model_assignments_name"), "model_assignments", ["name"], unique=False)
    op.create_table(
        "model_reports",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("site_id", sa.String(length=36), nullable=False),
        sa.Column("workstation_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("version", sa.String(length=50), nullable=False),
        sa.Column("stage", sa.String(length=20), nullable=False),
        sa.Column("event", sa.String(length=30), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("agreement", sa.Float(), nullable=True),
        sa.Column("latency_p95_s", sa.Float(), nullable=True),
        sa.Column("error_rate", sa.Float(), nullable=True),
        sa.Column("detail", sa.String(length=200), nullable=False),
        sa.Column("time", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"]),
        sa.ForeignKeyConstraint(["workstation_id"], ["workstations.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_model_reports_name"), "model_reports", ["name"], unique=False)
    op.create_index(op.f("ix_model_reports_site_id"), "model_reports", ["site_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_model_reports_site_id"), table_name="model_reports")
    op.drop_index(op.f("ix_model_reports_name"), table_name="model_reports")
    op.drop_table("model_reports")
    op.drop_index(op.f("ix_model_assignments_name"), table_name="model_assignments")
    op.drop_table("model_assignments")
    op.drop_table("model_metadata")

"""Index audit events by time (``audit export --since``); keep the outbox's last error.

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_audit_events_time", "audit_events", ["time"])
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("last_error", sa.String(500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("last_error")
    op.drop_index("ix_audit_events_time", table_name="audit_events")

"""Alembic environment: always run programmatically (see ``workstation.registry.migrate``)."""

from __future__ import annotations

from alembic import context

from workstation.registry.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "the registry's migrations run through workstation.registry.migrate.upgrade(), "
        "not the alembic command line"
    )
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()

"""The registry's schema migrations (Alembic, ``migrations/`` beside this file), run
programmatically: :func:`upgrade` brings a database to ``head`` in one transaction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

__all__ = ["MIGRATIONS", "current_revision", "upgrade"]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_PG_LOCK = 0x6D777265676973  # "mwregis": serialises concurrent migrations (several workers)


def _config(connection: sa.Connection) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to ``revision`` (default the newest)."""
    from alembic import command

    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text(f"SELECT pg_advisory_xact_lock({_PG_LOCK})"))
        command.upgrade(_config(connection), revision)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (``None`` when empty)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()

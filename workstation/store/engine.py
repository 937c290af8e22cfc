"""Opening the database: the engine (SQLite in WAL mode by default) and its migrations.

The default database is ``<home>/store/results.db`` (``paths().home``). SQLite connections use
``journal_mode=WAL`` (readers never block the writer), ``synchronous=FULL`` (a commit survives
power loss, not only a crash), ``foreign_keys=ON`` and a busy timeout, and every transaction
starts with ``BEGIN IMMEDIATE`` so two writers queue instead of failing on a lock upgrade. Any
other SQLAlchemy URL (``postgresql+psycopg://...``) is used as given.

Migrations (Alembic, ``migrations/`` beside this file) run programmatically; :func:`migrate`
brings a database to ``head`` and is what :meth:`ResultStore.open` calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from workstation.store.errors import SchemaError, translated

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
DB_NAME = "results.db"
BUSY_TIMEOUT_MS = 10_000
_PG_MIGRATION_LOCK = 0x6D7773746F7265  # "mwstore": serialises concurrent migrations


def default_url(home: Path | None = None) -> str:
    """``sqlite:///<home>/store/results.db``, creating the folder (mode 0700).

    Parameters
    ----------
    home
        The workstation home; ``paths().home`` (``$WORKSTATION_HOME`` honoured) when ``None``.
    """
    from workstation.config import Paths, paths

    layout = paths() if home is None else Paths(Path(home))
    folder = layout.ensure(layout.home / "store")
    return f"sqlite:///{folder / DB_NAME}"


def create_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """An engine for ``url`` (default: :func:`default_url`), with the SQLite settings above.

    Extra keyword arguments go to :func:`sqlalchemy.create_engine`.
    """
    with translated("opening the result store"):
        engine = sa.create_engine(url or default_url(), **kwargs)
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (below)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = FULL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _alembic_config(connection: sa.Connection) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to ``revision`` (default the newest) in one transaction.

    Raises
    ------
    SchemaError
        The database is at a revision this program does not know (made by a newer version),
        or a migration failed (nothing is changed then).
    StoreUnavailableError
        The database cannot be opened or written.
    """
    from alembic import command

    with translated("migrating the result store"), engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})"))
        command.upgrade(_alembic_config(connection), revision)


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at (``None`` for an empty database)."""
    from alembic.runtime.migration import MigrationContext

    with translated("reading the schema revision"), engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    """The newest schema revision this program knows."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    if head is None:
        raise SchemaError("the store's migrations are missing")
    return head

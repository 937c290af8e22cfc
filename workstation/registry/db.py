"""The registry's database: engine (SQLite in WAL mode or any SQLAlchemy URL) and sessions."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["Database", "new_id", "now", "stamp"]


def new_id() -> str:
    return str(uuid.uuid4())


def now() -> datetime:
    return datetime.now(UTC)


def stamp(moment: datetime | None = None, *, plus: float = 0.0) -> str:
    """ISO 8601 UTC with microseconds: sorts as text, like the workstation's store."""
    value = (moment or now()) + timedelta(seconds=plus)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Database:
    """An engine and a session factory for one registry database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def create_all(self) -> None:
        """Bring the schema to head with the Alembic migrations."""
        from workstation.registry.migrate import upgrade

        upgrade(self.engine)

    def session(self) -> Iterator[Session]:
        """A FastAPI dependency: one session per request, closed afterwards."""
        with self.sessions() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def _engine(url: str) -> Engine:
    """SQLite: WAL, ``synchronous=FULL``, foreign keys, a busy timeout and ``BEGIN IMMEDIATE``
    (concurrent writers queue instead of failing on a lock upgrade), as the workstation's store.
    """
    if not url.startswith("sqlite"):
        return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @sa.event.listens_for(engine, "connect")
    def _pragmas(connection: Any, _record: object) -> None:
        connection.isolation_level = None  # BEGIN is issued below
        cursor = connection.cursor()
        try:
            for pragma in (
                "busy_timeout = 30000",
                "journal_mode = WAL",
                "synchronous = FULL",
                "foreign_keys = ON",
            ):
                cursor.execute(f"PRAGMA {pragma}")
        finally:
            cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine

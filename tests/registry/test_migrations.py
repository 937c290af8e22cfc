"""Alembic migrations on empty SQLite and PostgreSQL databases: head is reached, the schema
matches the models exactly, a second upgrade is a no-op; readiness fails without a database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient
from registry_kit import free_port

from workstation.registry.db import Database
from workstation.registry.migrate import MIGRATIONS, current_revision, upgrade
from workstation.registry.models import Base


def _head() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def _differences(engine: sa.Engine) -> list[Any]:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def _snapshot(engine: sa.Engine) -> dict[str, Any]:
    inspector = sa.inspect(engine)
    return {
        table: (
            [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
            sorted(str(i) for i in inspector.get_indexes(table)),
        )
        for table in sorted(inspector.get_table_names())
    }


def _check_upgrade(url: str) -> None:
    db = Database(url)
    try:
        assert current_revision(db.engine) is None
        upgrade(db.engine)
        assert current_revision(db.engine) == _head()
        assert _differences(db.engine) == []
        before = _snapshot(db.engine)
        assert set(Base.metadata.tables) <= set(before)
        db.create_all()  # again: nothing to do
        assert current_revision(db.engine) == _head()
        assert _snapshot(db.engine) == before
        assert _differences(db.engine) == []
    finally:
        db.dispose()


def test_sqlite_upgrade_to_head(tmp_path: Path) -> None:
    _check_upgrade(f"sqlite:///{tmp_path / 'registry.db'}")


def test_postgresql_upgrade_to_head(postgres_url: str) -> None:
    _check_upgrade(postgres_url)


def test_head_is_a_single_revision() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert len(ScriptDirectory.from_config(config).get_heads()) == 1


def test_ready_is_503_when_the_database_is_unreachable(app: Any) -> None:
    client = TestClient(app)  # no lifespan: the webhook dispatcher keeps its own database
    assert client.get("/health/ready").status_code == 200
    working = app.state.db
    closed = Database(f"postgresql+psycopg://nobody:secret@127.0.0.1:{free_port()}/none")
    app.state.db = closed
    try:
        response = client.get("/health/ready")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "not ready"
        assert body["database"] == "unavailable"
        assert "secret" not in response.text  # the URL's password is never echoed
        assert client.get("/health").status_code == 200  # liveness does not depend on it
    finally:
        app.state.db = working
        closed.dispose()
    assert client.get("/health/ready").status_code == 200


def test_ready_is_503_when_the_data_folder_is_unusable(app: Any, tmp_path: Path) -> None:
    from dataclasses import replace

    client = TestClient(app)
    working = app.state.settings
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    app.state.settings = replace(working, data_dir=not_a_folder)
    try:
        response = client.get("/health/ready")
        assert response.status_code == 503
        assert response.json()["database"] == "ok"
        assert "data folder" in response.json()["reason"]
    finally:
        app.state.settings = working


def test_serve_on_postgresql_with_two_workers(postgres_url: str, tmp_path: Path) -> None:
    """The service migrates an empty PostgreSQL database once and both workers start."""
    from registry_kit import start_registry

    data = tmp_path / "registry-data"
    data.mkdir()
    server = start_registry(data, db_url=postgres_url, workers=2)
    try:
        import httpx

        assert httpx.get(f"{server.url}/health/ready", timeout=5).json()["database"] == "ok"
    finally:
        server.stop()
    db = Database(postgres_url)
    try:
        assert current_revision(db.engine) == _head()
    finally:
        db.dispose()

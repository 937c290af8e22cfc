"""Alembic migrations: an old database upgrades with its data readable; models match head."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from store.store_kit import MakeStore, sample_result
from workstation.security.aead import DataKeyRing
from workstation.store import ResultStore, SchemaError, create_engine, current_revision, migrate
from workstation.store.audit import AuditTrail
from workstation.store.crypto import Cipher
from workstation.store.engine import head_revision
from workstation.store.models import Base

ANALYSIS = "7d4a3c2e-0000-4000-8000-000000000001"
STUDY = "7d4a3c2e-0000-4000-8000-000000000002"
FINDING = "7d4a3c2e-0000-4000-8000-000000000003"


def test_upgrade_from_the_first_revision_keeps_data(db_url: str, ring: DataKeyRing) -> None:
    engine = create_engine(db_url)
    migrate(engine, "0001")
    assert current_revision(engine) == "0001"
    cipher, time = Cipher(ring), "2026-01-01T00:00:00.000000Z"
    tables = sa.MetaData()
    tables.reflect(engine)
    assert "last_error" not in tables.tables["outbox"].c
    with engine.begin() as connection:
        connection.execute(
            tables.tables["studies"].insert(),
            {"id": STUDY, "pseudonym": "ps-1", "identifiers": None, "first_seen": time},
        )
        connection.execute(
            tables.tables["analyses"].insert(),
            {
                "id": ANALYSIS,
                "study_id": STUDY,
                "model_name": "m",
                "model_version": "1",
                "input_hash": "h",
                "parameters": cipher.seal_json({"p": 1}, "analyses", ANALYSIS, "parameters").blob,
                "created": time,
                "created_by": "alice",
                "finding_count": 1,
                "map_count": 0,
            },
        )
        content = {"label": "l", "text": "old", "values": {}}
        connection.execute(
            tables.tables["findings"].insert(),
            {
                "id": FINDING,
                "analysis_id": ANALYSIS,
                "ordinal": 0,
                "content": cipher.seal_json(content, "findings", FINDING, "content").blob,
            },
        )
        AuditTrail(engine).append(
            connection,
            actor="alice",
            action="result.save",
            object_type="analysis",
            object_id=ANALYSIS,
        )

    store = ResultStore(engine, ring, actor="bob")  # upgrades to head on open
    assert current_revision(engine) == head_revision() == "0002"
    result = store.get_result(ANALYSIS)
    assert (result.parameters, result.findings[0].text) == ({"p": 1}, "old")
    assert store.audit.verify().ok
    store.save_result(sample_result(maps=0), sync=True)  # the new column is usable
    [item] = store.outbox.due()
    store.outbox.failed(item.id, "boom", retry_in=None)
    store.close()


def test_models_match_the_migrations(db_url: str, make_store: MakeStore) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    store = make_store(db_url)
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_a_newer_database_is_refused(sqlite_url: str, make_store: MakeStore) -> None:
    store = make_store(sqlite_url)
    with store.engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(SchemaError, match="9999"):
        migrate(store.engine)

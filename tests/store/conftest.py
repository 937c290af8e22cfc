"""Store fixtures: a real PostgreSQL server for the session, stores on SQLite and PostgreSQL.

PostgreSQL is started as the ``postgres`` user on a free port (see ENVIRONMENT.md); without
``initdb`` or ``psycopg`` the PostgreSQL cases skip, unless ``MEDWS_REQUIRE_POSTGRES=1`` makes
that a failure (CI).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from store.store_kit import MakeStore
from workstation.security.aead import DataKeyRing
from workstation.security.sign import HybridSigningKey
from workstation.store import ResultStore, create_engine


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL on each backend: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'results.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite store file under the test's folder."""
    return f"sqlite:///{tmp_path / 'results.db'}"


@pytest.fixture(scope="session")
def signer() -> HybridSigningKey:
    """The workstation's signing key for audit checkpoints."""
    return HybridSigningKey.generate()


@pytest.fixture
def ring() -> DataKeyRing:
    """A data key ring with one version."""
    return DataKeyRing.generate()


@pytest.fixture
def make_store(ring: DataKeyRing, signer: HybridSigningKey) -> Iterator[MakeStore]:
    """Open stores (closed after the test): ``make_store(url, keys=..., **kwargs)``."""
    opened: list[ResultStore] = []

    def make(url: str, **kwargs: object) -> ResultStore:
        kwargs.setdefault("keys", ring)
        kwargs.setdefault("signer", signer)
        kwargs.setdefault("actor", "alice")
        keys = kwargs.pop("keys")
        store = ResultStore(create_engine(url), keys, **kwargs)  # type: ignore[arg-type]
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()

"""Sync fixtures: a workstation store with a controllable clock, its keys, results that carry
fake identifiers, and a real registry (``workstation-registry serve`` on loopback) seeded with
two sites."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from registry_kit import RunningRegistry, Seeded, seed, start_registry

from sync.sync_kit import Clock, Keys, new_result
from workstation.security.aead import DataKeyRing
from workstation.security.seal import RecipientKey
from workstation.security.sign import HybridSigningKey
from workstation.store import ResultStore, create_engine


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys(DataKeyRing.generate(), HybridSigningKey.generate(), RecipientKey.generate())


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'results.db'}"


@pytest.fixture
def store(store_url: str, keys: Keys, clock: Clock) -> Iterator[ResultStore]:
    opened = ResultStore(
        create_engine(store_url), keys.ring, actor="tester", signer=keys.signing, clock=clock
    )
    yield opened
    opened.close()


@dataclass
class Registry:
    """A running registry, its seed, and a way to restart it on the same data and port."""

    server: RunningRegistry
    seeded: Seeded
    data: Path

    @property
    def url(self) -> str:
        return self.server.url

    def db_url(self) -> str:
        return f"sqlite:///{self.data / 'registry.db'}"

    def restart(self) -> None:
        port = int(self.server.url.rsplit(":", 1)[1])
        self.server = start_registry(self.data, port=port)

    def rows(self) -> list[tuple[str, str, str]]:
        """(workstation id, idempotency key, sha256) of every stored result."""
        import sqlalchemy as sa

        engine = sa.create_engine(self.db_url())
        try:
            with engine.connect() as connection:
                query = sa.text(
                    "SELECT workstation_id, idempotency_key, sha256 FROM sealed_results"
                )
                return [tuple(row) for row in connection.execute(query)]
        finally:
            engine.dispose()


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    from workstation.registry.db import Database

    data = tmp_path / "registry-data"
    data.mkdir()
    server = start_registry(data)
    db = Database(f"sqlite:///{data / 'registry.db'}")
    try:
        seeded = seed(db)
    finally:
        db.dispose()
    running = Registry(server, seeded, data)
    try:
        yield running
    finally:
        running.server.stop()


MakeResults = Callable[..., list[str]]


@pytest.fixture
def save_results(store: ResultStore) -> MakeResults:
    """``save_results(n)``: n results saved with ``sync=True``; their ids."""

    def save(n: int, *, start: int = 0) -> list[str]:
        return [store.save_result(new_result(start + i), sync=True) for i in range(n)]

    return save

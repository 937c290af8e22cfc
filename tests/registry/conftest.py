"""Registry fixtures: the real app on a temporary data folder (in-process through
``TestClient``, or as ``workstation-registry serve`` on loopback), two sites with a user of
every role each, and workstation keys."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from registry_kit import PASSWORD, RunningRegistry, Seeded, login, seed, start_registry

from workstation.registry.settings import RegistrySettings

__all__ = ["PASSWORD", "Seeded", "login", "seed", "start_registry"]


@pytest.fixture
def registry_settings(tmp_path: Path) -> RegistrySettings:
    return RegistrySettings(tmp_path / "registry", rate_per_minute=100_000)


@pytest.fixture
def app(registry_settings: RegistrySettings) -> Any:
    from workstation.registry.app import create_app

    return create_app(registry_settings)


@pytest.fixture
def client(app: Any) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    with TestClient(app) as test_client:  # runs the lifespan (webhook dispatcher)
        yield test_client


@pytest.fixture
def seeded(app: Any) -> Seeded:
    return seed(app.state.db)


@dataclass
class WorkstationKeys:
    signing: Any
    recipient: Any


@pytest.fixture(scope="session")
def workstation_keys() -> WorkstationKeys:
    from workstation.security.seal import RecipientKey
    from workstation.security.sign import HybridSigningKey

    return WorkstationKeys(HybridSigningKey.generate(), RecipientKey.generate())


@pytest.fixture
def registry_server(tmp_path: Path) -> Iterator[RunningRegistry]:
    """A registry on loopback with its own SQLite database."""
    data = tmp_path / "registry-data"
    data.mkdir()
    server = start_registry(data)
    try:
        yield server
    finally:
        server.stop()

"""Property-based API testing with schemathesis against the real app's OpenAPI document:
every operation, called as an admin with generated (often invalid) input, answers without a
server error (no 5xx) and within its documented responses' shape where it succeeds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from registry_kit import login, seed

from workstation.registry.settings import RegistrySettings

SLOW_OK = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much]


@pytest.fixture(scope="module")
def shared_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One seeded app for the whole module (building one per operation would be slow)."""
    from workstation.registry.app import create_app

    data = Path(tmp_path_factory.mktemp("schemathesis")) / "registry"
    app = create_app(RegistrySettings(data, rate_per_minute=1_000_000))
    seed(app.state.db)
    yield app
    app.state.db.dispose()


@pytest.fixture(scope="module")
def api_schema(shared_app: Any) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", shared_app)


@pytest.fixture
def admin_headers(shared_app: Any) -> dict[str, str]:
    """A fresh admin token per operation (a generated ``/auth/logout`` may revoke one)."""
    return login(TestClient(shared_app), "admin")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=5, deadline=None, suppress_health_check=SLOW_OK, database=None)
def test_no_server_errors(case: Any, admin_headers: dict[str, str]) -> None:
    response = case.call(headers=admin_headers)
    assert response.status_code < 500, (
        f"{case.method} {case.path} -> {response.status_code}: {response.text[:500]}"
    )


def test_operations_were_exercised(shared_app: Any) -> None:
    """Runs after the generated tests: the app's own metrics show they reached most routes,
    and no request ended in a server error."""
    client = TestClient(shared_app)
    paths = client.get("/openapi.json").json()["paths"]
    for expected in ("/health", "/health/ready", "/metrics", "/auth/login"):
        assert expected in paths
    from prometheus_client.parser import text_string_to_metric_families

    samples = [
        sample
        for family in text_string_to_metric_families(client.get("/metrics").text)
        for sample in family.samples
        if sample.name == "medws_registry_requests_total"
    ]
    routes = {sample.labels["route"] for sample in samples}
    if len(routes) < 3:
        pytest.skip("the generated tests did not run in this session (selected alone)")
    assert len(routes & set(paths)) >= len(paths) // 2, sorted(routes)
    assert not [s.labels for s in samples if s.labels["status"].startswith("5")]

"""``workstation-registry serve`` as a subprocess on loopback: health, readiness, Prometheus
metrics with route templates, JSON access logs, several workers, usage errors."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from registry_kit import RunningRegistry, start_registry

from workstation.registry import metrics


def _samples(text: str, name: str) -> list[Any]:
    return [
        sample
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def _templated_get_path(url: str) -> str | None:
    """A GET path with a path parameter from the service's own OpenAPI document."""
    paths = httpx.get(f"{url}/openapi.json", timeout=5).json()["paths"]
    for path, operations in sorted(paths.items()):
        if "{" in path and "get" in operations:
            return str(path)
    return None


def test_health_ready_and_metrics(registry_server: RunningRegistry) -> None:
    url = registry_server.url
    for path in ("/health", "/health/live"):
        response = httpx.get(url + path, timeout=5)
        assert response.status_code == 200
        assert response.json()["status"] == "ok"
        assert response.json()["version"]
    ready = httpx.get(f"{url}/health/ready", timeout=5)
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "database": "ok"}
    for _ in range(3):
        httpx.get(f"{url}/health?secret=should-not-appear", timeout=5)
    template = _templated_get_path(url)
    raw = re.sub(r"\{[^}]+\}", "0f0f0f0f-id-in-url", template) if template else None
    if raw:
        assert httpx.get(url + raw, timeout=5).status_code < 500

    metrics = httpx.get(f"{url}/metrics", timeout=5)
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    counts = {
        (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
        for s in _samples(metrics.text, "medws_registry_requests_total")
    }
    assert counts[("GET", "/health", "200")] == 4
    assert counts[("GET", "/health/live", "200")] == 1
    assert ("GET", "/health/ready", "200") in counts
    routes = {route for _method, route, _status in counts}
    if template:
        assert template in routes
    assert "0f0f0f0f-id-in-url" not in metrics.text
    assert "secret" not in metrics.text
    durations = _samples(metrics.text, "medws_registry_request_seconds_count")
    assert any(s.labels["route"] == "/health" and s.value == 4 for s in durations)
    assert _samples(metrics.text, "medws_registry_requests_in_progress")

    registry_server.stop()
    log = registry_server.data.parent / f"registry-{url.rsplit(':', 1)[1]}.log"
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("logger") == "workstation.registry.access"]
    assert any(line["route"] == "/health" and line["status"] == 200 for line in access)
    assert all("duration_ms" in line and "method" in line for line in access)
    assert "should-not-appear" not in log.read_text()
    assert "0f0f0f0f-id-in-url" not in log.read_text()


def test_access_log_in_process(client: Any, seeded: Any, caplog: pytest.LogCaptureFixture) -> None:
    from registry_kit import login

    headers = login(client, "admin")
    with caplog.at_level(logging.INFO, logger="workstation.registry.access"):
        client.get("/health/ready?x=1")
        client.get(f"/admin/sites/{seeded.sites['a']}/recipients", headers=headers)
    records = [r for r in caplog.records if r.name == "workstation.registry.access"]
    routes = [r.route for r in records]  # type: ignore[attr-defined]
    assert routes == ["/health/ready", "/admin/sites/{site_id}/recipients"]
    assert all(isinstance(r.duration_ms, float) for r in records)  # type: ignore[attr-defined]
    assert not hasattr(records[0], "actor")
    assert records[1].actor == "user:admin"  # type: ignore[attr-defined]
    assert all("x=1" not in r.getMessage() for r in records)
    assert all(seeded.sites["a"] not in r.getMessage() for r in records)


def test_metrics_middleware_alone(caplog: pytest.LogCaptureFixture) -> None:
    """Route templates, the caller in the access log, and 500s from unhandled errors."""
    app = FastAPI()

    @app.get("/things/{thing_id}")
    def thing(thing_id: str, request: Request) -> dict[str, str]:
        request.state.identity = SimpleNamespace(actor="user:alice")
        return {"id": thing_id}

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("boom")

    installed = metrics.install(app)
    other = metrics.install(FastAPI())  # a second app has its own registry
    with caplog.at_level(logging.INFO, logger="workstation.registry.access"):
        client = TestClient(app, raise_server_exceptions=False)
        assert client.get("/things/12345").status_code == 200
        assert client.get("/boom").status_code == 500
        assert client.get("/no/such/path").status_code == 404
    assert "/metrics" in client.get("/openapi.json").json()["paths"]
    text = client.get("/metrics").text
    counts = {
        (s.labels["route"], s.labels["status"]): s.value
        for s in _samples(text, "medws_registry_requests_total")
    }
    assert counts == {
        ("/things/{thing_id}", "200"): 1,
        ("/boom", "500"): 1,
        ("<unmatched>", "404"): 1,
        ("/openapi.json", "200"): 1,
    }
    assert "12345" not in text
    assert other.registry is not installed.registry
    records = {r.route: r for r in caplog.records if r.name == "workstation.registry.access"}
    assert records["/things/{thing_id}"].actor == "user:alice"  # type: ignore[attr-defined]
    assert not hasattr(records["/boom"], "actor")
    assert records["/boom"].status == 500  # type: ignore[attr-defined]


def test_two_workers_answer(tmp_path: Path) -> None:
    data = tmp_path / "registry-data"
    data.mkdir()
    server = start_registry(data, workers=2)
    try:
        for _ in range(6):
            response = httpx.get(f"{server.url}/health/ready", timeout=5)
            assert response.status_code == 200
        assert httpx.get(f"{server.url}/metrics", timeout=5).status_code == 200
    finally:
        server.stop()
    assert server.process.returncode is not None


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["serve", "--workers", "0"],
        ["serve", "--port", "70000"],
        ["serve", "--bogus"],
        ["admin"],
        ["admin", "create-user", "someone", "--role", "superuser"],
        ["serve", "--trust-root", "/no/such/trust-root.json"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "workstation.registry.cli", *argv],
        capture_output=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr.decode()
    assert b"error" in result.stderr


def test_version_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    from workstation.registry.cli import main

    assert main(["--version"]) == 0
    assert "workstation-registry" in capsys.readouterr().out


def test_grafana_dashboard_uses_the_metrics() -> None:
    path = Path(__file__).parents[2] / "packaging" / "grafana" / "registry-dashboard.json"
    dashboard = json.loads(path.read_text())
    assert dashboard["schemaVersion"] >= 36
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert all(p["datasource"]["uid"] == "${DS_PROMETHEUS}" for p in dashboard["panels"])
    names = set(re.findall(r"medws_registry_\w+", " ".join(exprs)))
    assert names == {
        "medws_registry_requests_total",
        "medws_registry_request_seconds_bucket",
        "medws_registry_requests_in_progress",
    }
    quantiles = " ".join(exprs)
    assert all(f"histogram_quantile({q}," in quantiles for q in ("0.5", "0.95", "0.99"))
    assert 'status=~"5.."' in quantiles

"""``pull`` error mapping and offline behaviour against an ``httpx.MockTransport`` registry.

Only failure paths are here; the main paths run against a real registry in
``test_update_integration.py``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from security.bundle_kit import DAY, Publisher

from workstation.models._registry_models import ModelRegistryClient, registry_reporter
from workstation.models.lifecycle import ModelLifecycle
from workstation.models.update import _for_site, pull
from workstation.security.model_metadata import (
    ModelMetadataStore,
    sign_metadata,
    snapshot_signed,
    targets_signed,
    timestamp_signed,
)
from workstation.security.sign import HybridSigningKey
from workstation.sync.client import PermanentError, RegistryUnavailable

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
NAME = "demo-lesion-seg"
Handler = Callable[[httpx.Request], httpx.Response]


def signed_set(pub: Publisher, targets: dict[str, Any], version: int) -> dict[str, bytes]:
    """Targets (model key), snapshot and timestamp (registry key), all ``version``."""
    expires = NOW + 30 * DAY
    t = sign_metadata(targets_signed(targets, version=version, expires=expires), [pub.key("model")])
    s = sign_metadata(snapshot_signed(t, version=version, expires=expires), [pub.key("registry")])
    ts = sign_metadata(timestamp_signed(s, version=version, expires=expires), [pub.key("registry")])
    return {"timestamp": ts, "snapshot": s, "targets": t}


def target(raw: bytes, sites: list[str] | None = None) -> dict[str, Any]:
    return {
        "sha256": hashlib.sha256(raw).hexdigest(),
        "size": len(raw),
        "channel": "stable",
        "sites": sites,
    }


class FakeRegistry:
    """Sign-in plus whatever ``routes`` answers; every request is logged."""

    def __init__(self, routes: dict[str, Handler]) -> None:
        self.routes = routes
        self.seen: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.seen.append(f"{request.method} {path}")
        if path == "/auth/challenge":
            return httpx.Response(200, json={"nonce": "00" * 32})
        if path == "/auth/workstation":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 300})
        handler = self.routes.get(f"{request.method} {path}")
        return handler(request) if handler else httpx.Response(404, json={"detail": "none"})


def client_for(transport: httpx.BaseTransport) -> ModelRegistryClient:
    return ModelRegistryClient(
        "http://registry.test",
        signing_key=HybridSigningKey.generate(),
        workstation_id="ws-1",
        transport=transport,
    )


def serving(docs: dict[str, bytes]) -> dict[str, Handler]:
    def doc(role: str) -> Handler:
        return lambda request: httpx.Response(200, content=docs[role])

    return {f"GET /models/metadata/{r}.json": doc(r) for r in docs}


@pytest.fixture(scope="module")
def pub() -> Publisher:
    return Publisher.make()


@pytest.fixture
def stores(tmp_path: Path, pub: Publisher) -> tuple[ModelMetadataStore, ModelLifecycle]:
    roots = pub.roots(NOW)
    metadata = ModelMetadataStore(tmp_path / "metadata", roots)
    docs = signed_set(pub, {f"{NAME}/0.1.0": target(b"x")}, 1)
    metadata.update(docs["timestamp"], docs["snapshot"], docs["targets"], now=NOW)
    return metadata, ModelLifecycle(tmp_path / "models", trust=roots)


def test_offline_changes_nothing(stores: tuple[ModelMetadataStore, ModelLifecycle]) -> None:
    metadata, life = stores
    before = metadata.path.read_bytes()

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with client_for(httpx.MockTransport(refuse)) as client:
        report = pull(client, metadata, life, site_id="a", gates=None, now=NOW)
    assert not report.ok and not report.updated_metadata
    assert "unreachable" in report.errors[0] and "last good" in report.errors[0]
    assert (report.installed, report.promoted, report.blocked) == ([], [], [])
    assert metadata.path.read_bytes() == before and life.list() == []
    assert metadata.versions() == {"timestamp": 1, "snapshot": 1, "targets": 1}


def test_no_metadata_published_yet(stores: tuple[ModelMetadataStore, ModelLifecycle]) -> None:
    metadata, life = stores
    fake = FakeRegistry({})
    with client_for(httpx.MockTransport(fake)) as client:
        report = pull(client, metadata, life, site_id="a", now=NOW)
    assert report.errors == ["metadata: the registry has published no model metadata yet"]
    assert not any("/models/assignments" in s for s in fake.seen)


def test_tampered_metadata_is_refused_and_nothing_is_fetched(
    stores: tuple[ModelMetadataStore, ModelLifecycle], pub: Publisher
) -> None:
    metadata, life = stores
    before = metadata.path.read_bytes()
    docs = signed_set(pub, {f"{NAME}/0.2.0": target(b"y", ["a"])}, 2)
    docs["targets"] = docs["targets"].replace(b'"a"', b'"b"')  # re-aimed at another site
    fake = FakeRegistry(serving(docs))
    with client_for(httpx.MockTransport(fake)) as client:
        report = pull(client, metadata, life, site_id="a", now=NOW)
    assert len(report.errors) == 1 and "metadata refused" in report.errors[0]
    assert metadata.path.read_bytes() == before and life.list() == []
    assert [s for s in fake.seen if "/auth/" not in s] == [
        f"GET /models/metadata/{r}.json" for r in ("timestamp", "snapshot", "targets")
    ]


def test_server_errors_map_and_keep_the_last_good(
    stores: tuple[ModelMetadataStore, ModelLifecycle],
) -> None:
    metadata, life = stores
    fake = FakeRegistry(
        {"GET /models/metadata/timestamp.json": lambda r: httpx.Response(503, json={})}
    )
    with client_for(httpx.MockTransport(fake)) as client:
        report = pull(client, metadata, life, site_id="a", now=NOW)
    assert "HTTP 503" in report.errors[0] and metadata.versions()["targets"] == 1


def test_a_listed_release_missing_from_the_registry_is_an_error(
    stores: tuple[ModelMetadataStore, ModelLifecycle], pub: Publisher
) -> None:
    metadata, life = stores
    docs = signed_set(pub, {f"{NAME}/0.2.0": target(b"y"), "other/1.0.0": target(b"z", ["b"])}, 2)
    routes = serving(docs)
    routes["GET /models"] = lambda r: httpx.Response(200, json={"items": [], "next_cursor": None})
    routes["GET /models/assignments"] = lambda r: httpx.Response(200, json={"items": []})
    with client_for(httpx.MockTransport(FakeRegistry(routes))) as client:
        report = pull(client, metadata, life, site_id="a", now=NOW)
    assert report.updated_metadata and report.installed == []
    assert report.errors == [f"{NAME}/0.2.0: not installed: the registry has no release with "
                             "the listed SHA-256 of 0.2.0"]  # fmt: skip


def test_download_hash_mismatch_leaves_no_file(tmp_path: Path) -> None:
    routes = {"GET /models/r1/bundle": lambda r: httpx.Response(200, content=b"bundle" * 1000)}
    with client_for(httpx.MockTransport(FakeRegistry(routes))) as client:
        dest = tmp_path / "b.mwb"
        with pytest.raises(PermanentError, match="SHA-256"):
            client.download("r1", dest, expected_sha256="0" * 64)
        assert list(tmp_path.iterdir()) == []
        good = hashlib.sha256(b"bundle" * 1000).hexdigest()
        assert client.download("r1", dest, expected_sha256=good) == dest
        assert client.last_download_sha256 == good and dest.read_bytes() == b"bundle" * 1000
        with pytest.raises(PermanentError, match="404"):
            client.download("missing", tmp_path / "c.mwb")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["b.mwb"]


def test_download_reconnects_after_an_expired_token(tmp_path: Path) -> None:
    calls: list[str] = []

    def bundle(request: httpx.Request) -> httpx.Response:
        calls.append(request.headers["Authorization"])
        return httpx.Response(401 if len(calls) == 1 else 200, content=b"ok")

    with client_for(httpx.MockTransport(FakeRegistry({"GET /models/r/bundle": bundle}))) as c:
        assert c.download("r", tmp_path / "r.mwb").read_bytes() == b"ok"
    assert len(calls) == 2


def test_unreachable_download_is_retryable(tmp_path: Path) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/auth"):
            return FakeRegistry({})(request)
        raise httpx.ReadTimeout("slow", request=request)

    with client_for(httpx.MockTransport(refuse)) as client, pytest.raises(RegistryUnavailable):
        client.download("r", tmp_path / "r.mwb")
    assert list(tmp_path.iterdir()) == []


def test_reports_are_best_effort_and_shaped() -> None:
    bodies: list[dict[str, Any]] = []

    def post(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(500 if len(bodies) == 2 else 201, json={})

    with client_for(httpx.MockTransport(FakeRegistry({"POST /models/reports": post}))) as c:
        tell = registry_reporter(c)
        tell(NAME, "0.2.0", "canary.rollback", {"reason": "disagreement", "took_ms": 3.0, "n": 10})
        tell(NAME, "0.2.0", "installed", {})  # a 500: logged, not raised
    assert bodies[0] == {
        "name": NAME,
        "version": "0.2.0",
        "stage": "canary",
        "event": "canary.rollback",
        "n": 10,
        "detail": "reason: disagreement; took_ms: 3.0",
    }
    assert bodies[1]["stage"] == "shadow" and "detail" not in bodies[1]


def test_site_assignment_wins_over_global() -> None:
    items = [
        {"name": "m", "version": "1.0.0", "site_id": None, "stage": "active", "share": 0.1},
        {"name": "m", "version": "2.0.0", "site_id": "a", "stage": "canary", "share": 0.5},
        {"name": "m", "version": "3.0.0", "site_id": "b", "stage": "active", "share": 0.5},
        {"name": "n", "version": "1.0.0", "site_id": None, "stage": "shadow", "share": 0.1},
    ]
    chosen = _for_site(items, "a")
    assert chosen["m"]["version"] == "2.0.0" and chosen["n"]["version"] == "1.0.0"
    assert _for_site(list(reversed(items)), "a")["m"]["version"] == "2.0.0"

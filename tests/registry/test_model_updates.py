"""Model updates on the registry: signed metadata publishing and serving (checked end to end
with the workstation's own verifier), per-site assignments, and aggregate model reports."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from registry_kit import enrol_workstation, login
from security.bundle_kit import Publisher

from workstation.registry import model_metadata
from workstation.registry.model_metadata import NO_KEY
from workstation.registry.settings import RegistrySettings
from workstation.security.model_metadata import (
    MetadataError,
    ModelMetadataStore,
    sign_metadata,
    targets_signed,
)
from workstation.security.sign import HybridSigningKey
from workstation.security.trust import TrustRoots

SHA = "ab" * 32


@pytest.fixture(scope="module")
def publisher() -> Publisher:
    return Publisher.make()


@pytest.fixture
def registry_settings(tmp_path: Path, publisher: Publisher) -> RegistrySettings:
    root = publisher.write_root(tmp_path / "root.json")
    key = tmp_path / "registry.key"
    key.write_bytes(publisher.key("registry").private_bytes())
    return RegistrySettings(
        tmp_path / "registry", rate_per_minute=100_000, trust_root=root, registry_key=key
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def targets(
    publisher: Publisher,
    version: int,
    entries: dict[str, Any] | None = None,
    *,
    keys: list[HybridSigningKey] | None = None,
    expires: dt.timedelta = dt.timedelta(days=30),
) -> bytes:
    if entries is None:
        entries = {"chest/1.0.0": {"sha256": SHA, "size": 10, "channel": "stable"}}
    signed = targets_signed(entries, version=version, expires=_now() + expires)
    return sign_metadata(signed, keys=keys or [publisher.key("model")])


def publish(client: Any, headers: dict[str, str], raw: bytes) -> Any:
    return client.put("/models/metadata/targets", content=raw, headers=headers)


def fetch(client: Any, headers: dict[str, str], role: str) -> bytes:
    response = client.get(f"/models/metadata/{role}.json", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.content


def workstation(client: Any, app: Any, site_id: str, name: str) -> dict[str, str]:
    from workstation.registry.bootstrap import issue_enrolment_token
    from workstation.security.seal import RecipientKey

    with app.state.db.sessions.begin() as session:
        token = issue_enrolment_token(session, site_id)
    keys = SimpleNamespace(signing=HybridSigningKey.generate(), recipient=RecipientKey.generate())
    return enrol_workstation(client, token, keys, name)[1]


def audit_actions(app: Any) -> list[str]:
    from workstation.registry.models import AuditEvent

    with app.state.db.sessions() as session:
        return list(session.scalars(sa.select(AuditEvent.action).order_by(AuditEvent.seq)))


# -- metadata ----------------------------------------------------------------------------------


def test_publish_and_serve_end_to_end(
    client: Any, app: Any, seeded: Any, publisher: Publisher, tmp_path: Path
) -> None:
    admin = login(client, "admin")
    ws = workstation(client, app, seeded.sites["a"], "ws-a1")
    for role in ("timestamp", "snapshot", "targets"):
        assert client.get(f"/models/metadata/{role}.json", headers=ws).status_code == 404
    assert client.get("/models/metadata/root.json", headers=ws).status_code == 404

    first = targets(publisher, 1)
    response = publish(client, admin, first)
    assert response.status_code == 201, response.text
    assert response.json() == {"targets_version": 1, "snapshot_version": 1, "timestamp_version": 1}
    assert fetch(client, ws, "targets") == first  # the exact bytes the model role signed

    trust = TrustRoots.from_bytes(publisher.root_bytes())
    store = ModelMetadataStore(tmp_path / "ws-store", trust)
    docs = [fetch(client, ws, r) for r in ("timestamp", "snapshot", "targets")]
    result = store.update(*docs)
    assert (result.timestamp_version, result.snapshot_version, result.targets_version) == (1, 1, 1)
    assert result.added == ["chest/1.0.0"]
    snapshot = json.loads(docs[1])["signed"]
    assert dt.timedelta(days=6) < _expiry(snapshot) - _now() <= dt.timedelta(days=7)
    assert _expiry(json.loads(docs[0])["signed"]) - _now() <= dt.timedelta(days=1)

    entries = {
        "chest/1.0.0": {"sha256": SHA, "size": 10, "channel": "stable"},
        "chest/1.1.0": {"sha256": "cd" * 32, "size": 11, "channel": "canary", "sites": ["a"]},
    }
    response = publish(client, admin, targets(publisher, 2, entries))
    assert response.json() == {"targets_version": 2, "snapshot_version": 2, "timestamp_version": 2}
    result = store.update(*[fetch(client, ws, r) for r in ("timestamp", "snapshot", "targets")])
    assert result.targets_version == 2 and result.added == ["chest/1.1.0"]
    assert audit_actions(app).count("metadata.publish") == 2


def _expiry(signed: dict[str, Any]) -> dt.datetime:
    return dt.datetime.strptime(signed["expires"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def test_rollback_is_refused(client: Any, seeded: Any, publisher: Publisher) -> None:
    admin = login(client, "admin")
    assert publish(client, admin, targets(publisher, 3)).status_code == 201
    for version in (3, 2):
        response = publish(client, admin, targets(publisher, version))
        assert response.status_code == 409
        assert response.json()["detail"].startswith("rollback")
    # A higher targets version whose newest chest goes back is a rollback too.
    older = {"chest/0.9.0": {"sha256": SHA, "size": 10, "channel": "stable"}}
    response = publish(client, admin, targets(publisher, 4, older))
    assert response.status_code == 409
    assert "rollback" in response.json()["detail"]
    viewer = login(client, "viewer-b")
    assert json.loads(fetch(client, viewer, "targets"))["signed"]["version"] == 3


def test_untrusted_expired_or_malformed_targets_are_422(
    client: Any, seeded: Any, publisher: Publisher
) -> None:
    admin = login(client, "admin")
    cases = [
        targets(publisher, 1, keys=[HybridSigningKey.generate()]),  # not a model key
        targets(publisher, 1, keys=[publisher.key("registry")]),  # the wrong role
        targets(publisher, 1, expires=-dt.timedelta(minutes=1)),
        b'{"signed": {}, "signatures": []}',
        b"not json",
        b"",
    ]
    for raw in cases:
        response = publish(client, admin, raw)
        assert response.status_code == 422, response.text
        assert response.json()["detail"].startswith("the targets were refused")
    assert client.get("/models/metadata/targets.json", headers=admin).status_code == 404


def test_no_registry_key_is_503(client: Any, app: Any, seeded: Any, publisher: Publisher) -> None:
    admin = login(client, "admin")
    app.state.settings = replace(app.state.settings, registry_key=None)
    response = publish(client, admin, targets(publisher, 1))
    assert response.status_code == 503
    assert response.json()["detail"] == NO_KEY
    assert client.get("/models/metadata/targets.json", headers=admin).status_code == 404


def test_untrusted_registry_key_is_503(
    client: Any, app: Any, seeded: Any, publisher: Publisher, tmp_path: Path
) -> None:
    stranger = tmp_path / "stranger.key"
    stranger.write_bytes(HybridSigningKey.generate().private_bytes())
    app.state.settings = replace(app.state.settings, registry_key=stranger)
    response = publish(client, login(client, "admin"), targets(publisher, 1))
    assert response.status_code == 503
    assert "not a trusted registry key" in response.json()["detail"]


def test_roles(client: Any, app: Any, seeded: Any, publisher: Publisher) -> None:
    raw = targets(publisher, 1)
    ws = workstation(client, app, seeded.sites["a"], "ws-a1")
    for headers in (login(client, "clinician-a"), login(client, "viewer-a"), ws):
        assert publish(client, headers, raw).status_code == 403
        body = {"name": "chest", "version": "1.0.0", "stage": "active"}
        assert (
            client.put("/admin/models/assignments", json=body, headers=headers).status_code == 403
        )
        assert client.get("/admin/models/metrics", headers=headers).status_code == 403
    assert publish(client, {}, raw).status_code == 401
    assert client.get("/models/metadata/targets.json").status_code == 401
    assert publish(client, login(client, "admin"), raw).status_code == 201
    for headers in (login(client, "viewer-b"), login(client, "clinician-a"), ws):
        assert fetch(client, headers, "targets") == raw  # metadata is not secret


def test_timestamp_and_snapshot_are_renewed_before_they_expire(
    client: Any, app: Any, seeded: Any, publisher: Publisher, tmp_path: Path, monkeypatch: Any
) -> None:
    admin = login(client, "admin")
    assert publish(client, admin, targets(publisher, 1)).status_code == 201
    store = ModelMetadataStore(tmp_path / "ws", TrustRoots.from_bytes(publisher.root_bytes()))
    store.update(*[fetch(client, admin, r) for r in ("timestamp", "snapshot", "targets")])
    ts = fetch(client, admin, "timestamp")
    assert fetch(client, admin, "timestamp") == ts  # a fresh timestamp is served as it is

    monkeypatch.setattr(model_metadata, "TIMESTAMP_RENEW", dt.timedelta(days=2))
    renewed = fetch(client, admin, "timestamp")
    assert json.loads(renewed)["signed"]["version"] == 2
    assert fetch(client, admin, "snapshot") == store_doc(store, "snapshot")
    result = store.update(renewed)  # the snapshot and targets are unchanged
    assert (result.timestamp_version, result.snapshot_version, result.changed) == (2, 1, False)

    monkeypatch.setattr(model_metadata, "SNAPSHOT_RENEW", dt.timedelta(days=8))
    renewed = fetch(client, admin, "timestamp")
    snapshot = fetch(client, admin, "snapshot")
    result = store.update(renewed, snapshot)
    assert (result.timestamp_version, result.snapshot_version, result.targets_version) == (3, 2, 1)

    app.state.settings = replace(app.state.settings, registry_key=None)  # served as stored
    assert fetch(client, admin, "timestamp") == fetch(client, admin, "timestamp")


def store_doc(store: ModelMetadataStore, role: str) -> bytes:
    import base64

    return base64.b64decode(json.loads(store.path.read_bytes())[role])


def test_store_refuses_a_mismatched_set(
    client: Any, seeded: Any, publisher: Publisher, tmp_path: Path
) -> None:
    """The served documents chain: an old snapshot with a new timestamp is refused."""
    admin = login(client, "admin")
    publish(client, admin, targets(publisher, 1))
    old_snapshot = fetch(client, admin, "snapshot")
    publish(client, admin, targets(publisher, 2))
    store = ModelMetadataStore(tmp_path / "ws", TrustRoots.from_bytes(publisher.root_bytes()))
    with pytest.raises(MetadataError) as error:
        store.update(
            fetch(client, admin, "timestamp"), old_snapshot, fetch(client, admin, "targets")
        )
    assert error.value.kind == "mix-and-match"


# -- assignments -------------------------------------------------------------------------------


def test_assignments_site_override(client: Any, app: Any, seeded: Any) -> None:
    admin = login(client, "admin")
    a, b = seeded.sites["a"], seeded.sites["b"]

    def put(body: dict[str, Any]) -> Any:
        return client.put("/admin/models/assignments", json=body, headers=admin)

    assert put({"name": "chest", "version": "1.0.0", "stage": "active"}).status_code == 200
    response = put(
        {"name": "chest", "version": "1.1.0", "site_id": a, "stage": "canary", "share": 0.1}
    )
    assert response.status_code == 200
    assert response.json()["share"] == 0.1 and response.json()["site_id"] == a
    assert put({"name": "brain", "version": "2.0.0", "stage": "shadow"}).status_code == 200
    # Upsert by (name, site): the global chest moves on, nothing is added.
    assert put({"name": "chest", "version": "1.0.1", "stage": "active"}).status_code == 200

    def listed(headers: dict[str, str], **params: str) -> list[tuple[Any, ...]]:
        response = client.get("/models/assignments", headers=headers, params=params)
        assert response.status_code == 200, response.text
        return [
            (i["name"], i["version"], i["site_id"], i["stage"]) for i in response.json()["items"]
        ]

    ws_a = workstation(client, app, a, "ws-a1")
    site_a = [("brain", "2.0.0", None, "shadow"), ("chest", "1.1.0", a, "canary")]
    site_b = [("brain", "2.0.0", None, "shadow"), ("chest", "1.0.1", None, "active")]
    assert listed(ws_a) == site_a
    assert listed(login(client, "clinician-a")) == site_a
    assert listed(login(client, "viewer-b")) == site_b
    assert len(listed(admin)) == 3
    assert listed(admin, site_id=a) == site_a
    assert listed(admin, site_id=b) == site_b
    other = client.get("/models/assignments", headers=ws_a, params={"site_id": b})
    assert other.status_code == 403
    assert client.get("/models/assignments").status_code == 401

    bad = [
        {"name": "chest", "version": "1.0.0", "stage": "stable"},
        {"name": "chest", "version": "1.0.0", "stage": "canary", "share": 1.5},
        {"name": "chest", "version": "not-semver", "stage": "active"},
        {"name": "../x", "version": "1.0.0", "stage": "active"},
        {"name": "chest", "version": "1.0.0", "stage": "active", "site_id": "nope"},
        {"name": "chest", "version": "1.0.0", "stage": "active", "extra": 1},
    ]
    for body in bad:
        assert put(body).status_code == 422, body
    assert audit_actions(app).count("model.assign") == 4


# -- reports and metrics -----------------------------------------------------------------------


def test_reports_and_metrics(client: Any, app: Any, seeded: Any) -> None:
    a, b = seeded.sites["a"], seeded.sites["b"]
    ws_a1 = workstation(client, app, a, "ws-a1")
    ws_a2 = workstation(client, app, a, "ws-a2")
    ws_b1 = workstation(client, app, b, "ws-b1")
    base = {"name": "chest", "version": "1.1.0", "stage": "canary"}

    def report(headers: dict[str, str], **fields: Any) -> Any:
        return client.post("/models/reports", json={**base, **fields}, headers=headers)

    sent = [
        (ws_a1, {"event": "metrics", "n": 100, "agreement": 0.9, "latency_p95_s": 1.0,
                 "error_rate": 0.01}),
        (ws_a2, {"event": "shadow.agreement", "n": 300, "agreement": 0.8, "latency_p95_s": 2.5}),
        (ws_a2, {"event": "canary.rollback", "detail": "agreement below the gate"}),
        (ws_b1, {"event": "metrics", "n": 50, "agreement": 1.0, "error_rate": 0.0}),
        (ws_b1, {"event": "installed", "version": "1.0.0", "stage": "active"}),
    ]  # fmt: skip
    for headers, fields in sent:
        response = report(headers, **fields)
        assert response.status_code == 201, response.text
        assert set(response.json()) == {"id"}

    admin = login(client, "admin")
    response = client.get("/admin/models/metrics", headers=admin, params={"name": "chest"})
    assert response.status_code == 200
    items = {(i["version"], i["site_id"]): i for i in response.json()["items"]}
    assert set(items) == {("1.1.0", a), ("1.1.0", b), ("1.0.0", b)}
    at_a = items[("1.1.0", a)]
    assert at_a["name"] == "chest"
    assert (at_a["reports"], at_a["n"], at_a["rollbacks"]) == (3, 400, 1)
    assert at_a["agreement"] == pytest.approx((0.9 * 100 + 0.8 * 300) / 400)
    assert at_a["latency_p95_s"] == 2.5
    assert at_a["error_rate"] == pytest.approx(0.01)  # only the report that gave one counts
    assert at_a["last_event"] == "canary.rollback" and at_a["last_time"]
    at_b = items[("1.1.0", b)]
    assert (at_b["reports"], at_b["n"], at_b["agreement"], at_b["rollbacks"]) == (1, 50, 1.0, 0)
    assert at_b["latency_p95_s"] is None and at_b["error_rate"] == 0.0
    installed = items[("1.0.0", b)]
    assert installed["agreement"] is None and installed["last_event"] == "installed"
    assert client.get("/admin/models/metrics", headers=admin, params={"name": "x"}).json() == {
        "items": []
    }
    assert audit_actions(app).count("model.report") == len(sent)

    for headers in (admin, login(client, "clinician-a"), login(client, "viewer-a")):
        assert report(headers, event="metrics").status_code == 403
    bad = [
        {"event": "unknown"},
        {"event": "metrics", "n": -1},
        {"event": "metrics", "agreement": 1.5},
        {"event": "metrics", "error_rate": -0.1},
        {"event": "metrics", "detail": "x" * 201},
        {"event": "metrics", "patient_id": "12345"},  # no field can carry patient data
    ]
    for fields in bad:
        assert report(ws_a1, **fields).status_code == 422, fields


# -- configuration -----------------------------------------------------------------------------


def test_registry_key_from_the_environment_and_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workstation.registry import asgi, cli

    key = tmp_path / "registry.key"
    monkeypatch.setenv(asgi.ENV_DATA, str(tmp_path / "data"))
    monkeypatch.setenv(asgi.ENV_REGISTRY_KEY, str(key))
    assert asgi.settings_from_env().registry_key == key
    monkeypatch.delenv(asgi.ENV_REGISTRY_KEY)
    assert asgi.settings_from_env().registry_key is None
    args = cli._parser().parse_args(["serve", "--data", str(tmp_path), "--registry-key", str(key)])
    assert cli._settings(args).registry_key == key
    assert cli.main(["serve", "--data", str(tmp_path), "--registry-key", str(key)]) == 2

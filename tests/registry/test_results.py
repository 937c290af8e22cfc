"""Sealed results: exactly-once upload, site isolation, roles, limits, and no plaintext stored."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from registry_kit import enrol_workstation, login

from workstation.security.seal import open_sealed, seal

PURPOSE = "registry-result"
PATIENT = b"DOE^JANE-FAKE-PATIENT-4711"


def enrol(client: Any, seeded: Any, keys: Any, site: str = "a", name: str = "ws") -> dict[str, str]:
    """Enrol a workstation at ``site`` and sign in with the challenge; its auth header."""
    return enrol_workstation(client, seeded.tokens[site], keys, f"{name}-{site}")[1]


def upload(client: Any, ws: dict[str, str], body: bytes, key: str = "k1") -> Any:
    headers = {
        **ws,
        "Idempotency-Key": key,
        "X-Result-Kind": "analysis",
        "Content-Type": "application/octet-stream",
    }
    return client.post("/results", content=body, headers=headers)


@pytest.fixture
def sealed(workstation_keys: Any) -> bytes:
    payload = b'{"patient": "' + PATIENT + b'", "finding": "lesion 12 mm"}'
    return seal(payload, [workstation_keys.recipient.public_key()], purpose=PURPOSE)


@pytest.fixture
def ws_a(client: Any, seeded: Any, workstation_keys: Any) -> dict[str, str]:
    return enrol(client, seeded, workstation_keys, "a")


def test_upload_is_exactly_once(client: Any, app: Any, ws_a: Any, sealed: bytes) -> None:
    first = upload(client, ws_a, sealed)
    assert first.status_code == 201, first.text
    receipt = first.json()
    assert receipt["duplicate"] is False
    assert receipt["size"] == len(sealed)
    assert receipt["sha256"] == hashlib.sha256(sealed).hexdigest()

    again = upload(client, ws_a, sealed)
    assert again.status_code == 200
    assert again.json() == {**receipt, "duplicate": True}

    listing = client.get("/results", headers=ws_a).json()
    assert [item["id"] for item in listing["items"]] == [receipt["id"]]
    blobs = app.state.settings.blobs
    assert sorted(p.name for p in blobs.iterdir()) == [receipt["id"]]  # no temp files left

    conflict = upload(client, ws_a, sealed + b"x")
    assert conflict.status_code == 409
    assert sorted(p.name for p in blobs.iterdir()) == [receipt["id"]]


def test_blob_is_the_ciphertext_and_nothing_stores_plaintext(
    client: Any, app: Any, seeded: Any, ws_a: Any, sealed: bytes, workstation_keys: Any
) -> None:
    result_id = upload(client, ws_a, sealed).json()["id"]
    stored = app.state.settings.blobs / result_id
    assert stored.read_bytes() == sealed
    for path in Path(app.state.settings.data_dir).rglob("*"):  # blob, database, WAL
        if path.is_file():
            assert PATIENT not in path.read_bytes(), path

    clinician = login(client, "clinician-a")
    meta = client.get(f"/results/{result_id}", headers=clinician).json()
    assert meta["site_id"] == seeded.sites["a"]
    assert meta["recipients"] == [workstation_keys.recipient.key_id]
    blob = client.get(f"/results/{result_id}/blob", headers=clinician)
    assert blob.status_code == 200
    assert blob.content == sealed
    opened = open_sealed(blob.content, workstation_keys.recipient, purpose=PURPOSE)
    assert PATIENT in opened


def test_site_isolation_and_roles(client: Any, seeded: Any, ws_a: Any, sealed: bytes) -> None:
    result_id = upload(client, ws_a, sealed).json()["id"]
    other = login(client, "clinician-b")
    for path in (f"/results/{result_id}", f"/results/{result_id}/blob"):
        response = client.get(path, headers=other)
        assert response.status_code == 403
        assert "another site" in response.json()["detail"]
    assert client.get("/results", headers=other).json()["items"] == []
    params = {"site_id": seeded.sites["a"]}
    assert client.get("/results", headers=other, params=params).status_code == 403

    viewer = login(client, "viewer-a")
    assert client.get(f"/results/{result_id}", headers=viewer).status_code == 200
    assert len(client.get("/results", headers=viewer).json()["items"]) == 1
    assert client.get(f"/results/{result_id}/blob", headers=viewer).status_code == 403
    assert client.get(f"/results/{result_id}/blob", headers=ws_a).status_code == 200
    assert upload(client, login(client, "clinician-a"), sealed, "k9").status_code == 403
    assert client.get("/results/nope", headers=viewer).status_code == 404


def test_admin_lists_every_site_paginated(
    client: Any, seeded: Any, workstation_keys: Any, sealed: bytes
) -> None:
    ws_a = enrol(client, seeded, workstation_keys, "a")
    ws_b = enrol(client, seeded, workstation_keys, "b", name="other")
    for index in range(3):
        assert upload(client, ws_a, sealed, f"a{index}").status_code == 201
    assert upload(client, ws_b, sealed, "b0").status_code == 201
    admin = login(client, "admin")

    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = client.get("/results", headers=admin, params=params).json()
        seen += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 4 and len({item["id"] for item in seen}) == 4
    assert {item["site_id"] for item in seen} == set(seeded.sites.values())
    only_b = client.get("/results", headers=admin, params={"site_id": seeded.sites["b"]})
    assert [item["site_id"] for item in only_b.json()["items"]] == [seeded.sites["b"]]
    assert len(client.get("/results", headers=ws_b).json()["items"]) == 1


def test_refuses_what_is_not_a_sealed_result(client: Any, app: Any, ws_a: Any) -> None:
    response = upload(client, ws_a, b"plain text, not sealed")
    assert response.status_code == 422
    assert "not a sealed result" in response.json()["detail"]
    assert list(app.state.settings.blobs.iterdir()) == []
    headers = {**ws_a, "Content-Type": "application/octet-stream"}
    assert client.post("/results", content=b"x", headers=headers).status_code == 422  # no key
    assert upload(client, ws_a, b"x", key="k" * 201).status_code == 422


def test_oversize_is_413(tmp_path: Path, workstation_keys: Any) -> None:
    from fastapi.testclient import TestClient
    from registry_kit import seed

    from workstation.registry.app import create_app
    from workstation.registry.settings import RegistrySettings

    settings = RegistrySettings(tmp_path / "small", rate_per_minute=100_000, max_upload_bytes=4096)
    app = create_app(settings)
    with TestClient(app) as client:
        seeded = seed(app.state.db)
        ws = enrol(client, seeded, workstation_keys, "a")
        big = seal(b"x" * 5000, [workstation_keys.recipient.public_key()], purpose=PURPOSE)
        assert upload(client, ws, big).status_code == 413
        assert [p.name for p in app.state.settings.blobs.iterdir()] == []

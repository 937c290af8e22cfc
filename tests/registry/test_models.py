"""The model catalogue: verified publishing, channels, site scoping and downloads."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from registry_kit import enrol_workstation, login

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "resources" / "models" / "demo-lesion-seg-0.1.0.mwb"


def publish(client: Any, headers: dict[str, str], body: bytes, **params: str) -> Any:
    headers = {**headers, "Content-Type": "application/octet-stream"}
    return client.post("/models", content=body, headers=headers, params=params)


def workstation(client: Any, seeded: Any, keys: Any, site: str) -> dict[str, str]:
    return enrol_workstation(client, seeded.tokens[site], keys, f"ws-{site}")[1]


@pytest.fixture
def admin(client: Any, seeded: Any) -> dict[str, str]:
    return login(client, "admin")


def test_publish_verifies_and_stores(client: Any, app: Any, admin: Any) -> None:
    raw = DEMO.read_bytes()
    response = publish(client, admin, raw, channel="stable")
    assert response.status_code == 201, response.text
    release = response.json()
    assert release["name"] == "demo-lesion-seg" and release["version"] == "0.1.0"
    assert release["site_id"] is None and release["channel"] == "stable"
    digest = hashlib.sha256(raw).hexdigest()
    assert release["sha256"] == digest
    stored = app.state.settings.bundles / f"{digest}.mwb"
    assert stored.read_bytes() == raw
    assert sorted(p.name for p in app.state.settings.bundles.iterdir()) == [stored.name]

    assert publish(client, admin, raw, channel="stable").status_code == 409
    assert publish(client, admin, raw, channel="canary").status_code == 201
    assert publish(client, admin, raw, channel="nightly").status_code == 422

    downloaded = client.get(f"/models/{release['id']}/bundle", headers=admin)
    assert downloaded.status_code == 200 and downloaded.content == raw


def test_tampered_or_foreign_bundles_are_refused(client: Any, app: Any, admin: Any) -> None:
    raw = bytearray(DEMO.read_bytes())
    raw[len(raw) // 2] ^= 0x01  # a payload byte
    response = publish(client, admin, bytes(raw), channel="stable")
    assert response.status_code == 422
    assert "refused" in response.json()["detail"]
    assert publish(client, admin, b"not a zip at all", channel="stable").status_code == 422
    assert list(app.state.settings.bundles.iterdir()) == []
    assert client.get("/models", headers=admin).json()["items"] == []


def test_multipart_publish(client: Any, seeded: Any, admin: Any) -> None:
    response = client.post(
        "/models",
        headers=admin,
        files={"bundle": ("demo.mwb", DEMO.read_bytes(), "application/octet-stream")},
        data={"channel": "shadow", "site_id": seeded.sites["a"]},
    )
    assert response.status_code == 201, response.text
    assert response.json()["site_id"] == seeded.sites["a"]
    assert response.json()["channel"] == "shadow"


def test_site_scoping_and_roles(
    client: Any, seeded: Any, admin: Any, workstation_keys: Any
) -> None:
    raw = DEMO.read_bytes()
    only_a = publish(client, admin, raw, channel="canary", site_id=seeded.sites["a"]).json()
    everyone = publish(client, admin, raw, channel="stable").json()

    viewer_b = login(client, "viewer-b")
    listed = client.get("/models", headers=viewer_b).json()["items"]
    assert [item["id"] for item in listed] == [everyone["id"]]
    assert client.get(f"/models/{everyone['id']}/bundle", headers=viewer_b).status_code == 403

    clinician_b = login(client, "clinician-b")
    assert client.get(f"/models/{only_a['id']}/bundle", headers=clinician_b).status_code == 403
    assert client.get(f"/models/{everyone['id']}/bundle", headers=clinician_b).status_code == 200

    ws_a = workstation(client, seeded, workstation_keys, "a")
    ids = {item["id"] for item in client.get("/models", headers=ws_a).json()["items"]}
    assert ids == {only_a["id"], everyone["id"]}
    canary = client.get("/models", headers=ws_a, params={"channel": "canary"}).json()["items"]
    assert [item["id"] for item in canary] == [only_a["id"]]
    assert client.get(f"/models/{only_a['id']}/bundle", headers=ws_a).content == raw
    assert publish(client, ws_a, raw, channel="stable").status_code == 403
    assert publish(client, login(client, "clinician-a"), raw, channel="stable").status_code == 403
    assert len(client.get("/models", headers=admin).json()["items"]) == 2

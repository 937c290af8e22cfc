"""Enrolment: one-time tokens, expiry, and key validation."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from registry_kit import Seeded, login


def body(token: str, keys: Any, name: str = "ws-1") -> dict[str, Any]:
    return {
        "token": token,
        "name": name,
        "signing_key": keys.signing.public_key.to_json(),
        "recipient_key": keys.recipient.public_key().to_json(),
    }


def test_enrol_once(client: Any, seeded: Seeded, workstation_keys: Any) -> None:
    first = client.post("/enrol", json=body(seeded.tokens["a"], workstation_keys))
    assert first.status_code == 201, first.text
    ws = first.json()
    assert ws["site_id"] == seeded.sites["a"] and ws["site_name"] == "site a"
    again = client.post("/enrol", json=body(seeded.tokens["a"], workstation_keys, "ws-2"))
    assert again.status_code == 409 and "used already" in again.json()["detail"]
    admin = login(client, "admin")
    listed = client.get("/admin/workstations", headers=admin).json()["items"]
    assert [w["id"] for w in listed] == [ws["workstation_id"]]
    assert listed[0]["signing_key_id"] == workstation_keys.signing.key_id


def test_unknown_and_expired_tokens(
    client: Any, app: Any, seeded: Seeded, workstation_keys: Any
) -> None:
    from workstation.registry.models import EnrolmentToken

    unknown = client.post("/enrol", json=body("mwe_nope", workstation_keys))
    assert unknown.status_code == 401 and "unknown" in unknown.json()["detail"]
    with app.state.db.sessions.begin() as session:
        session.execute(sa.update(EnrolmentToken).values(expires="2000-01-01T00:00:00.000000Z"))
    expired = client.post("/enrol", json=body(seeded.tokens["b"], workstation_keys))
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]


def test_bad_keys_refused(client: Any, seeded: Seeded, workstation_keys: Any) -> None:
    bad_signing = body(seeded.tokens["a"], workstation_keys)
    bad_signing["signing_key"] = {"alg": "x", "ed25519": "AAAA", "ml_dsa_65": "AAAA"}
    response = client.post("/enrol", json=bad_signing)
    assert response.status_code == 422 and "signing_key" in response.json()["detail"]
    bad_recipient = body(seeded.tokens["a"], workstation_keys)
    bad_recipient["recipient_key"] = {"alg": "nope", "public": "AAAA"}
    response = client.post("/enrol", json=bad_recipient)
    assert response.status_code == 422 and "recipient_key" in response.json()["detail"]
    swapped = body(seeded.tokens["a"], workstation_keys)
    swapped["signing_key"] = swapped["recipient_key"]
    assert client.post("/enrol", json=swapped).status_code == 422
    # the refused attempts did not use up the token
    assert client.post("/enrol", json=body(seeded.tokens["a"], workstation_keys)).status_code == 201


def test_admin_issued_token(client: Any, seeded: Seeded, workstation_keys: Any) -> None:
    admin = login(client, "admin")
    issued = client.post(
        "/admin/enrolment-tokens",
        json={"site_id": seeded.sites["b"], "valid_s": 600},
        headers=admin,
    )
    assert issued.status_code == 201
    token = issued.json()["token"]
    assert token.startswith("mwe_") and issued.json()["expires"]
    response = client.post("/enrol", json=body(token, workstation_keys))
    assert response.status_code == 201 and response.json()["site_id"] == seeded.sites["b"]
    unknown_site = client.post("/admin/enrolment-tokens", json={"site_id": "nope"}, headers=admin)
    assert unknown_site.status_code == 404

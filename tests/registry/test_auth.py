"""Sign-in: passwords and lockout, sign-out, API keys, token expiry, workstation
challenge-response (real argon2, real JWTs, real hybrid signatures)."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from registry_kit import CONTEXT, PASSWORD, Seeded, enrol, login, workstation_token


def test_login_and_logout(client: Any, seeded: Seeded) -> None:
    response = client.post("/auth/login", json={"username": "admin", "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 900
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert client.get("/admin/sites", headers=headers).status_code == 200
    assert client.post("/auth/logout", headers=headers).status_code == 204
    refused = client.get("/admin/sites", headers=headers)
    assert refused.status_code == 401
    assert "revoked" in refused.json()["detail"]
    assert client.post("/auth/logout", headers=headers).status_code == 401


def test_unknown_user_and_wrong_password_look_alike(client: Any, seeded: Seeded) -> None:
    wrong = client.post("/auth/login", json={"username": "admin", "password": "x" * 20})
    unknown = client.post("/auth/login", json={"username": "nobody", "password": "x" * 20})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert "hash" not in wrong.text and "argon2" not in wrong.text


def test_lockout_and_unlock(client: Any, app: Any, seeded: Seeded) -> None:
    attempts = app.state.settings.lockout_attempts
    for _ in range(attempts - 1):
        bad = client.post("/auth/login", json={"username": "viewer-a", "password": "wrong" * 3})
        assert bad.status_code == 401
    locked = client.post("/auth/login", json={"username": "viewer-a", "password": "wrong" * 3})
    assert locked.status_code == 423
    assert "locked until" in locked.json()["detail"]
    # the right password does not help while locked
    still = client.post("/auth/login", json={"username": "viewer-a", "password": PASSWORD})
    assert still.status_code == 423
    admin = login(client, "admin")
    users = client.get("/admin/users", headers=admin).json()["items"]
    user = next(u for u in users if u["username"] == "viewer-a")
    assert user["locked_until"] is not None and "password_hash" not in user
    assert client.post(f"/admin/users/{user['id']}/unlock", headers=admin).status_code == 200
    login(client, "viewer-a")


def test_success_resets_failure_count(client: Any, app: Any, seeded: Seeded) -> None:
    attempts = app.state.settings.lockout_attempts
    for _ in range(2):
        for _ in range(attempts - 1):
            client.post("/auth/login", json={"username": "clinician-a", "password": "n" * 15})
        login(client, "clinician-a")  # resets the count: never locked


def test_expired_token_refused(client: Any, app: Any, seeded: Seeded) -> None:
    headers = login(client, "admin")
    claims = jwt.decode(
        headers["Authorization"][7:], app.state.settings.jwt_secret, algorithms=["HS256"]
    )
    claims.update(iat=claims["iat"] - 3600, exp=claims["iat"] - 1800)
    old = jwt.encode(claims, app.state.settings.jwt_secret, algorithm="HS256")
    response = client.get("/admin/sites", headers={"Authorization": f"Bearer {old}"})
    assert response.status_code == 401 and "expired" in response.json()["detail"]
    forged = jwt.encode(claims | {"exp": claims["exp"] + 7200}, b"x" * 32, algorithm="HS256")
    response = client.get("/admin/sites", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401


def test_api_keys(client: Any, seeded: Seeded) -> None:
    headers = login(client, "clinician-a")
    created = client.post("/auth/api-keys", json={"name": "nightly"}, headers=headers)
    assert created.status_code == 201
    key = created.json()["key"]
    assert key.startswith("mwk_")
    listed = client.get("/auth/api-keys", headers={"X-API-Key": key})
    assert listed.status_code == 200
    assert [k["name"] for k in listed.json()["items"]] == ["nightly"]
    assert "key" not in listed.json()["items"][0]
    # an API key cannot mint API keys; another user cannot revoke it
    assert (
        client.post("/auth/api-keys", json={"name": "x"}, headers={"X-API-Key": key}).status_code
        == 403
    )
    other = login(client, "clinician-b")
    key_id = created.json()["id"]
    assert client.delete(f"/auth/api-keys/{key_id}", headers=other).status_code == 404
    assert client.delete(f"/auth/api-keys/{key_id}", headers=headers).status_code == 200
    refused = client.get("/auth/api-keys", headers={"X-API-Key": key})
    assert refused.status_code == 401
    # an admin may revoke anyone's key
    second = client.post("/auth/api-keys", json={"name": "two"}, headers=headers).json()
    admin = login(client, "admin")
    assert client.delete(f"/auth/api-keys/{second['id']}", headers=admin).json()["revoked"]


def test_workstation_challenge_response(client: Any, seeded: Seeded, workstation_keys: Any) -> None:
    ws = enrol(client, seeded.tokens["a"], workstation_keys)
    response = workstation_token(client, ws["workstation_id"], workstation_keys.signing)
    assert response.status_code == 200, response.text
    headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
    recipients = client.get(f"/admin/sites/{seeded.sites['a']}/recipients", headers=headers)
    assert recipients.status_code == 200
    # a workstation is not an admin
    assert client.get("/admin/sites", headers=headers).status_code == 403


def test_replayed_nonce_refused(client: Any, seeded: Seeded, workstation_keys: Any) -> None:
    ws_id = enrol(client, seeded.tokens["a"], workstation_keys)["workstation_id"]
    nonce = client.get("/auth/challenge", params={"workstation_id": ws_id}).json()["nonce"]
    body = {
        "workstation_id": ws_id,
        "nonce": nonce,
        "signature": workstation_keys.signing.sign(bytes.fromhex(nonce), context=CONTEXT).to_json(),
    }
    assert client.post("/auth/workstation", json=body).status_code == 200
    replay = client.post("/auth/workstation", json=body)
    assert replay.status_code == 401 and "nonce" in replay.json()["detail"]


def test_wrong_key_and_wrong_context_refused(
    client: Any, seeded: Seeded, workstation_keys: Any
) -> None:
    from workstation.security.sign import HybridSigningKey

    ws_id = enrol(client, seeded.tokens["a"], workstation_keys)["workstation_id"]
    impostor = HybridSigningKey.generate()
    assert workstation_token(client, ws_id, impostor).status_code == 401
    nonce = client.get("/auth/challenge", params={"workstation_id": ws_id}).json()["nonce"]
    signature = workstation_keys.signing.sign(bytes.fromhex(nonce), context="other").to_json()
    body = {"workstation_id": ws_id, "nonce": nonce, "signature": signature}
    assert client.post("/auth/workstation", json=body).status_code == 401
    # the failed attempt consumed the nonce
    good = workstation_keys.signing.sign(bytes.fromhex(nonce), context=CONTEXT).to_json()
    body["signature"] = good
    assert client.post("/auth/workstation", json=body).status_code == 401
    # a malformed signature is a 401 too
    nonce = client.get("/auth/challenge", params={"workstation_id": ws_id}).json()["nonce"]
    body = {"workstation_id": ws_id, "nonce": nonce, "signature": {"alg": "nope"}}
    assert client.post("/auth/workstation", json=body).status_code == 401


def test_expired_challenge_refused(
    client: Any, app: Any, seeded: Seeded, workstation_keys: Any
) -> None:
    import sqlalchemy as sa

    from workstation.registry.models import Challenge

    ws_id = enrol(client, seeded.tokens["a"], workstation_keys)["workstation_id"]
    nonce = client.get("/auth/challenge", params={"workstation_id": ws_id}).json()["nonce"]
    with app.state.db.sessions.begin() as session:
        session.execute(
            sa.update(Challenge).where(Challenge.nonce == nonce).values(expires="2000-01-01")
        )
    signature = workstation_keys.signing.sign(bytes.fromhex(nonce), context=CONTEXT).to_json()
    body = {"workstation_id": ws_id, "nonce": nonce, "signature": signature}
    assert client.post("/auth/workstation", json=body).status_code == 401


def test_revoked_workstation_refused(client: Any, seeded: Seeded, workstation_keys: Any) -> None:
    ws_id = enrol(client, seeded.tokens["a"], workstation_keys)["workstation_id"]
    token = workstation_token(client, ws_id, workstation_keys.signing).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    site = seeded.sites["a"]
    assert client.get(f"/admin/sites/{site}/recipients", headers=headers).status_code == 200
    admin = login(client, "admin")
    assert client.post(f"/admin/workstations/{ws_id}/revoke", headers=admin).status_code == 200
    assert client.get(f"/admin/sites/{site}/recipients", headers=headers).status_code == 401
    challenge = client.get("/auth/challenge", params={"workstation_id": ws_id})
    assert challenge.status_code == 404
    unknown = client.get("/auth/challenge", params={"workstation_id": "no-such"})
    assert unknown.status_code == 404


def test_workstation_logout(client: Any, seeded: Seeded, workstation_keys: Any) -> None:
    ws_id = enrol(client, seeded.tokens["b"], workstation_keys)["workstation_id"]
    token = workstation_token(client, ws_id, workstation_keys.signing).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert client.post("/auth/logout", headers=headers).status_code == 204
    site = seeded.sites["b"]
    assert client.get(f"/admin/sites/{site}/recipients", headers=headers).status_code == 401


@pytest.mark.parametrize("ttl", [1])
def test_short_lived_token_expires(tmp_path: Any, ttl: int) -> None:
    from fastapi.testclient import TestClient
    from registry_kit import seed

    from workstation.registry.app import create_app
    from workstation.registry.settings import RegistrySettings

    app = create_app(RegistrySettings(tmp_path / "r", token_ttl_s=ttl, rate_per_minute=10_000))
    with TestClient(app) as client:
        seed(app.state.db)
        headers = login(client, "admin")
        assert client.get("/admin/sites", headers=headers).status_code == 200
        time.sleep(ttl + 1.1)
        response = client.get("/admin/sites", headers=headers)
        assert response.status_code == 401 and "expired" in response.json()["detail"]

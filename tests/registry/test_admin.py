"""Administration: admin-only access, sites and recipients (site isolation), users,
workstations, pagination and the audit chain."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from registry_kit import PASSWORD, Seeded, enrol, login, workstation_token

ADMIN_CALLS = [
    ("get", "/admin/sites", None),
    ("post", "/admin/sites", {"name": "x"}),
    ("get", "/admin/users", None),
    ("post", "/admin/users", {"username": "u", "password": PASSWORD, "role": "viewer"}),
    ("post", "/admin/users/nope/unlock", None),
    ("post", "/admin/enrolment-tokens", {"site_id": "x"}),
    ("get", "/admin/workstations", None),
    ("post", "/admin/workstations/nope/revoke", None),
    ("get", "/admin/audit/verify", None),
]


def call(client: Any, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
    if body is None:
        return client.request(method, path, headers=headers)
    return client.request(method, path, json=body, headers=headers)


def test_admin_only(client: Any, seeded: Seeded, workstation_keys: Any) -> None:
    ws_id = enrol(client, seeded.tokens["a"], workstation_keys)["workstation_id"]
    token = workstation_token(client, ws_id, workstation_keys.signing).json()["access_token"]
    callers = {name: login(client, name) for name in ("clinician-a", "viewer-b")}
    callers["workstation"] = {"Authorization": f"Bearer {token}"}
    for headers in callers.values():
        for method, path, body in ADMIN_CALLS:
            response = call(client, method, path, body, headers)
            assert response.status_code == 403, (method, path, response.text)
    for method, path, body in ADMIN_CALLS:
        assert call(client, method, path, body, {}).status_code == 401


def test_sites_and_recipients(client: Any, seeded: Seeded, workstation_keys: Any) -> None:
    from workstation.security.seal import RecipientKey

    admin = login(client, "admin")
    research = RecipientKey.generate().public_key().to_json()
    created = client.post(
        "/admin/sites", json={"name": "site c", "recipients": [research]}, headers=admin
    )
    assert created.status_code == 201
    site_c = created.json()["id"]
    duplicate = client.post("/admin/sites", json={"name": "site c"}, headers=admin)
    assert duplicate.status_code == 409
    bad = client.post("/admin/sites", json={"name": "d", "recipients": [{"x": 1}]}, headers=admin)
    assert bad.status_code == 422
    token = client.post("/admin/enrolment-tokens", json={"site_id": site_c}, headers=admin)
    ws_id = enrol(client, token.json()["token"], workstation_keys)["workstation_id"]
    ws = {
        "Authorization": "Bearer "
        + workstation_token(client, ws_id, workstation_keys.signing).json()["access_token"]
    }
    own = client.get(f"/admin/sites/{site_c}/recipients", headers=ws)
    assert own.status_code == 200
    ids = {r["key_id"] for r in own.json()}
    assert ids == {research["key_id"], workstation_keys.recipient.key_id}
    assert all(r["public"]["key_id"] == r["key_id"] for r in own.json())
    other = client.get(f"/admin/sites/{seeded.sites['a']}/recipients", headers=ws)
    assert other.status_code == 403
    clinician = login(client, "clinician-a")
    denied = client.get(f"/admin/sites/{seeded.sites['a']}/recipients", headers=clinician)
    assert denied.status_code == 403
    assert client.get(f"/admin/sites/{site_c}/recipients", headers=admin).status_code == 200
    assert client.get("/admin/sites/nope/recipients", headers=admin).status_code == 404
    # a revoked workstation is no longer a recipient
    client.post(f"/admin/workstations/{ws_id}/revoke", headers=admin)
    after = client.get(f"/admin/sites/{site_c}/recipients", headers=admin).json()
    assert [r["key_id"] for r in after] == [research["key_id"]]


def test_users(client: Any, seeded: Seeded) -> None:
    admin = login(client, "admin")
    new = {
        "username": "nurse",
        "password": PASSWORD,
        "role": "viewer",
        "site_id": seeded.sites["a"],
    }
    created = client.post("/admin/users", json=new, headers=admin)
    assert created.status_code == 201
    assert "password" not in created.text and "argon2" not in created.text
    assert client.post("/admin/users", json=new, headers=admin).status_code == 409
    short = {**new, "username": "short", "password": "short"}
    assert client.post("/admin/users", json=short, headers=admin).status_code == 422
    siteless = {**new, "username": "siteless", "site_id": None}
    assert client.post("/admin/users", json=siteless, headers=admin).status_code == 422
    robot = {**new, "username": "robot", "role": "workstation"}
    assert client.post("/admin/users", json=robot, headers=admin).status_code == 422
    login(client, "nurse")
    assert client.post("/admin/users/nope/unlock", headers=admin).status_code == 404


@pytest.mark.parametrize("limit", [3])
def test_pagination(client: Any, seeded: Seeded, limit: int) -> None:
    admin = login(client, "admin")
    for index in range(3):  # 2 seeded + 3 = 5 sites... plus users: 5 seeded + 3 = 8 users
        client.post(
            "/admin/users",
            json={"username": f"u{index}", "password": PASSWORD, "role": "admin"},
            headers=admin,
        )
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        body = client.get("/admin/users", params=params, headers=admin).json()
        pages += 1
        assert len(body["items"]) <= limit
        seen += [user["id"] for user in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert len(seen) == len(set(seen)) == 8 and seen == sorted(seen)
    assert client.get("/admin/users", params={"limit": 0}, headers=admin).status_code == 422
    assert client.get("/admin/users", params={"limit": 501}, headers=admin).status_code == 422


def test_audit_chain(client: Any, app: Any, seeded: Seeded, workstation_keys: Any) -> None:
    from workstation.registry.models import AuditEvent

    admin = login(client, "admin")
    client.post("/auth/login", json={"username": "viewer-a", "password": "wrong password!"})
    client.post("/auth/login", json={"username": "ghost", "password": "wrong password!"})
    ws_id = enrol(client, seeded.tokens["a"], workstation_keys)["workstation_id"]
    workstation_token(client, ws_id, workstation_keys.signing)
    client.post(f"/admin/workstations/{ws_id}/revoke", headers=admin)
    key = client.post("/auth/api-keys", json={"name": "k"}, headers=admin).json()
    client.delete(f"/auth/api-keys/{key['id']}", headers=admin)
    client.post("/auth/logout", headers=admin)
    admin = login(client, "admin")
    verified = client.get("/admin/audit/verify", headers=admin).json()
    assert verified["ok"] and verified["problems"] == []
    with app.state.db.sessions() as session:
        actions = list(session.scalars(sa.select(AuditEvent.action).order_by(AuditEvent.seq)))
        details = " ".join(session.scalars(sa.select(AuditEvent.details)))
    for action in (
        "auth.login", "auth.login_failed", "workstation.enrol", "auth.workstation",
        "workstation.revoke", "apikey.create", "apikey.revoke", "auth.logout",
    ):  # fmt: skip
        assert action in actions
    assert "wrong password" not in details and PASSWORD not in details
    with app.state.db.sessions.begin() as session:
        session.execute(sa.update(AuditEvent).where(AuditEvent.seq == 3).values(actor="mallory"))
    broken = client.get("/admin/audit/verify", headers=admin).json()
    assert not broken["ok"]
    assert any(problem.startswith("event 3") for problem in broken["problems"])

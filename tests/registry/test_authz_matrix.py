"""Every role × endpoint × own/other site gets exactly the answer it should.

One registry (module scope) with sites a and b: an admin, a clinician and a viewer per site,
an enrolled workstation per site, a sealed result uploaded by each workstation and a model
release for site a. Each case calls one endpoint as one identity: ``ok`` is any 2xx (or, for
writes whose body is deliberately unusable, the 4xx that proves the caller got past
authorisation), 401 is no or bad credentials, 403 is an identity not allowed there.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from registry_kit import enrol_workstation, login, seed

from workstation.registry.settings import RegistrySettings
from workstation.security.seal import RecipientKey, seal
from workstation.security.sign import HybridSigningKey

MODELS = Path(__file__).resolve().parents[2] / "resources" / "models"
IDENTITIES = ("admin", "clinician-a", "viewer-a", "ws-a", "clinician-b", "viewer-b", "ws-b", "anon")
OK = "ok"


@dataclass
class World:
    client: Any
    headers: dict[str, dict[str, str]]
    ids: dict[str, str]


@dataclass
class Keys:
    signing: Any
    recipient: Any


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from fastapi.testclient import TestClient

    from workstation.registry.app import create_app

    settings = RegistrySettings(tmp_path_factory.mktemp("registry"), rate_per_minute=100_000)
    app = create_app(settings)
    seeded = seed(app.state.db)
    with TestClient(app) as client:
        headers = {name: login(client, name) for name in seeded.users}
        headers["anon"] = {}
        ids = {f"site-{k}": v for k, v in seeded.sites.items()}
        for site in ("a", "b"):
            keys = Keys(HybridSigningKey.generate(), RecipientKey.generate())
            ids[f"ws-{site}"], headers[f"ws-{site}"] = enrol_workstation(
                client, seeded.tokens[site], keys, f"ws-{site}"
            )
            blob = seal(b"{}", [keys.recipient.public_key()], purpose="matrix")
            response = client.post(
                "/results",
                content=blob,
                headers={**headers[f"ws-{site}"], "Idempotency-Key": f"r-{site}"},
            )
            assert response.status_code == 201, response.text
            ids[f"result-{site}"] = response.json()["id"]
        response = client.post(
            "/models",
            content=(MODELS / "demo-lesion-cls-0.1.0.mwb").read_bytes(),
            params={"channel": "stable", "site_id": ids["site-a"]},
            headers=headers["admin"],
        )
        assert response.status_code == 201, response.text
        ids["model-a"] = response.json()["id"]
        yield World(client, headers, ids)


def expect(**overrides: Any) -> dict[str, Any]:
    """403 for everyone signed in, 401 for anonymous, except ``overrides``."""
    table: dict[str, Any] = {name: 403 for name in IDENTITIES}
    table["anon"] = 401
    table.update({k.replace("_", "-"): v for k, v in overrides.items()})
    return table


ADMIN_ONLY = expect(admin=OK)
ANY_SIGNED_IN = expect(**{n.replace("-", "_"): OK for n in IDENTITIES if n != "anon"})
SITE_A_READERS = expect(admin=OK, clinician_a=OK, viewer_a=OK, ws_a=OK)

# (method, path with {placeholders}, body kind, expected by identity)
CASES: list[tuple[str, str, str | None, dict[str, Any]]] = [
    ("GET", "/results", None, ANY_SIGNED_IN),
    ("GET", "/results?site_id={site-b}", None, expect(admin=OK, clinician_b=OK, viewer_b=OK,
                                                      ws_b=OK)),
    ("GET", "/results/{result-a}", None, SITE_A_READERS),
    ("GET", "/results/{result-a}/blob", None, expect(admin=OK, clinician_a=OK, ws_a=OK)),
    ("GET", "/results/{result-b}/blob", None, expect(admin=OK, clinician_b=OK, ws_b=OK)),
    ("POST", "/results", "not-sealed", expect(ws_a=422, ws_b=422)),
    ("GET", "/models", None, ANY_SIGNED_IN),
    ("GET", "/models/{model-a}", None, SITE_A_READERS),
    ("GET", "/models/{model-a}/bundle", None, expect(admin=OK, clinician_a=OK, ws_a=OK)),
    ("POST", "/models?channel=stable", "not-a-bundle", expect(admin=422)),
    ("GET", "/admin/sites", None, ADMIN_ONLY),
    ("POST", "/admin/sites", "json:{}", expect(admin=422)),
    ("GET", "/admin/sites/{site-a}/recipients", None, expect(admin=OK, ws_a=OK)),
    ("GET", "/admin/users", None, ADMIN_ONLY),
    ("POST", "/admin/users", "json:{}", expect(admin=422)),
    ("POST", "/admin/enrolment-tokens", "json:{}", expect(admin=422)),
    ("GET", "/admin/workstations", None, ADMIN_ONLY),
    ("GET", "/admin/audit/verify", None, ADMIN_ONLY),
    ("GET", "/admin/webhooks", None, ADMIN_ONLY),
    ("POST", "/admin/webhooks", "json:{}", expect(admin=422)),
    ("GET", "/auth/api-keys", None, expect(admin=OK, clinician_a=OK, viewer_a=OK,
                                           clinician_b=OK, viewer_b=OK)),
]  # fmt: skip


def _call(world: World, method: str, path: str, body: str | None, who: str) -> Any:
    url = path.format(**world.ids) if "{" in path else path
    kwargs: dict[str, Any] = {"headers": dict(world.headers[who])}
    if body == "not-sealed":
        kwargs["content"] = b"plain text, not a sealed result"
        kwargs["headers"]["Idempotency-Key"] = f"matrix-{who}"
    elif body == "not-a-bundle":
        kwargs["content"] = b"not a bundle"
    elif body is not None and body.startswith("json:"):
        kwargs["content"] = body[5:].encode()
        kwargs["headers"]["Content-Type"] = "application/json"
    return world.client.request(method, url, **kwargs)


@pytest.mark.parametrize(
    ("method", "path", "body", "who", "expected"),
    [
        pytest.param(m, p, b, who, table[who], id=f"{m} {p} as {who}")
        for m, p, b, table in CASES
        for who in IDENTITIES
    ],
)
def test_authorisation(
    world: World, method: str, path: str, body: str | None, who: str, expected: Any
) -> None:
    response = _call(world, method, path, body, who)
    if expected == OK:
        assert 200 <= response.status_code < 300, (response.status_code, response.text)
    else:
        assert response.status_code == expected, (response.status_code, response.text)

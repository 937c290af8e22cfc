"""The per-identity rate limit: 429 with Retry-After, buckets per identity, exemptions."""

from __future__ import annotations

from pathlib import Path

from registry_kit import seed

from workstation.registry.ratelimit import RateLimiter


def test_bucket_refills() -> None:
    moment = [0.0]
    limiter = RateLimiter(60, clock=lambda: moment[0])
    assert all(limiter.take("k") == 0.0 for _ in range(60))
    wait = limiter.take("k")
    assert 0.9 < wait <= 1.0
    assert limiter.take("other") == 0.0
    moment[0] += 1.0
    assert limiter.take("k") == 0.0
    assert limiter.take("k") > 0.0


def test_429_with_retry_after(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from workstation.registry.app import create_app
    from workstation.registry.settings import RegistrySettings

    app = create_app(RegistrySettings(tmp_path / "r", rate_per_minute=3))
    with TestClient(app) as client:
        seed(app.state.db)
        body = {"username": "admin", "password": "correct horse battery staple"}
        login = client.post("/auth/login", json=body)  # 1 (by address)
        assert login.status_code == 200
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        codes = [client.get("/admin/sites", headers=headers).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]  # the token's subject has its own bucket
        refused = client.get("/admin/sites", headers=headers)
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.json()["detail"].startswith("rate limit:")
        # another caller (by address) still has two requests left, then is limited
        anonymous = [client.get("/admin/sites").status_code for _ in range(3)]
        assert anonymous == [401, 401, 429]
        # health is never limited
        assert all(client.get("/health").status_code != 429 for _ in range(10))

"""Per-identity rate limit: a token bucket per caller, as ASGI middleware.

The bucket key is the Bearer token's ``sub`` (the JWT is decoded *without* verification, only to
pick a bucket: a forged token just gets its own bucket and is refused later by authentication),
else the SHA-256 of the ``X-API-Key``, else the client address. Each bucket holds
``settings.rate_per_minute`` requests (the burst) and refills at that rate per minute; an empty
bucket answers 429 with ``Retry-After``. ``/health*`` and ``/metrics`` are not limited.

The buckets live in memory: each uvicorn worker (process) limits on its own, so with N workers
a caller may get up to N times the rate. Behind a reverse proxy, the client address is the
proxy's unless uvicorn is told to trust ``X-Forwarded-For`` (``--forwarded-allow-ips``).
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from typing import Any

__all__ = ["RateLimitMiddleware", "RateLimiter", "install"]

_MAX_BUCKETS = 50_000


class RateLimiter:
    """Token buckets by key: ``rate_per_minute`` capacity, refilled continuously."""

    def __init__(self, rate_per_minute: int, *, clock: Any = time.monotonic) -> None:
        self.capacity = float(max(1, rate_per_minute))
        self.per_second = self.capacity / 60.0
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last time)
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0.0 if a request for ``key`` may go ahead, else the seconds until it may."""
        with self._lock:
            moment = self._clock()
            tokens, last = self._buckets.get(key, (self.capacity, moment))
            tokens = min(self.capacity, tokens + (moment - last) * self.per_second)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, moment)
                if len(self._buckets) > _MAX_BUCKETS:
                    self._forget_full(moment)
                return 0.0
            self._buckets[key] = (tokens, moment)
            return (1.0 - tokens) / self.per_second

    def _forget_full(self, moment: float) -> None:
        """Drop buckets that have refilled completely (idle callers): they start full anyway."""
        for key, (tokens, last) in list(self._buckets.items()):
            if tokens + (moment - last) * self.per_second >= self.capacity:
                del self._buckets[key]


def bucket_key(scope: dict[str, Any]) -> str:
    """Which bucket a request draws from (never used for authentication)."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        subject = _unverified_subject(auth[7:].strip())
        if subject:
            return f"sub:{subject}"
    key = headers.get("x-api-key")
    if key:
        return "key:" + hashlib.sha256(key.encode("utf-8")).hexdigest()
    client = scope.get("client")
    return f"ip:{client[0] if client else 'unknown'}"


def _unverified_subject(token: str) -> str | None:
    import jwt

    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        return None
    subject = claims.get("sub") if isinstance(claims, dict) else None
    return str(subject)[:100] if subject else None


def _exempt(path: str) -> bool:
    return path == "/metrics" or path == "/health" or path.startswith("/health/")


class RateLimitMiddleware:
    """ASGI middleware applying a :class:`RateLimiter` to HTTP requests."""

    def __init__(self, app: Any, rate_per_minute: int) -> None:
        self.app = app
        self.limiter = RateLimiter(rate_per_minute)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or _exempt(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        wait = self.limiter.take(bucket_key(scope))
        if wait <= 0.0:
            await self.app(scope, receive, send)
            return
        retry = max(1, math.ceil(wait))
        body = json.dumps({"detail": f"rate limit: too many requests; retry after {retry} s"})
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(retry).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body.encode()})


def install(app: Any, settings: Any) -> None:
    """Add the rate limit to ``app`` (``settings.rate_per_minute`` per identity)."""
    app.add_middleware(RateLimitMiddleware, rate_per_minute=settings.rate_per_minute)

"""Request metrics (Prometheus) and the JSON access log.

:func:`install` adds an ASGI middleware and ``GET /metrics`` (text exposition format) to an
app. Each app has its own :class:`~prometheus_client.CollectorRegistry` (tests build many apps):

* ``medws_registry_requests_total{method, route, status}``: requests answered;
* ``medws_registry_request_seconds{method, route}``: latency histogram (1 ms to 5 s buckets);
* ``medws_registry_requests_in_progress{method}``: requests being handled now.

``route`` is the matched route's path template (``/results/{result_id}``), never the raw URL,
so no ids end up in labels; unmatched paths (404s, and requests refused by a middleware
before routing, e.g. rate-limited ones) are ``<unmatched>``.

Each request also logs one JSON line (logger ``workstation.registry.access``): method, route
template, status, duration in ms and the caller (``actor``) when authenticated. Query strings,
bodies and headers are never logged.

``/metrics`` has no authentication: firewall it so only the Prometheus server reaches it.

Several workers (``serve --workers N``): each process keeps its own metrics, so a scrape sees
one worker at a time. Set ``PROMETHEUS_MULTIPROC_DIR`` to an empty, writable folder before
starting (the CLI empties it) to aggregate all workers (prometheus_client multiprocess mode).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["BUCKETS", "MetricsMiddleware", "install"]

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
UNMATCHED = "<unmatched>"
access_log = logging.getLogger("workstation.registry.access")


def _multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class RegistryMetrics:
    """The metric objects of one app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "medws_registry_requests_total",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "medws_registry_request_seconds",
            "HTTP request duration in seconds, by method and route template.",
            ["method", "route"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        gauge_options: dict[str, Any] = {"multiprocess_mode": "livesum"} if _multiprocess() else {}
        self.in_progress = Gauge(
            "medws_registry_requests_in_progress",
            "HTTP requests being handled now.",
            ["method"],
            registry=self.registry,
            **gauge_options,
        )

    def exposition(self) -> bytes:
        """The text exposition: this process's metrics, or every worker's in multiprocess mode."""
        if _multiprocess():
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


def _route_of(scope: dict[str, Any], routes: list[Any]) -> str:
    """The matched route's path template; plain Starlette routes (the docs) set no
    ``scope["route"]``, so they are matched again here (404s only fall through)."""
    path = getattr(scope.get("route"), "path", None)
    if path:
        return str(path)
    from starlette.routing import Match, Route

    for route in routes:
        if isinstance(route, Route) and route.matches(scope)[0] is Match.FULL:
            return route.path
    return UNMATCHED


def _actor_of(scope: dict[str, Any]) -> str | None:
    state = scope.get("state")
    identity = state.get("identity") if isinstance(state, dict) else None
    actor = getattr(identity, "actor", None)
    return str(actor) if actor else None


class MetricsMiddleware:
    """Pure ASGI middleware: counts, times and logs every HTTP request."""

    def __init__(self, app: Any, metrics: RegistryMetrics, routes: list[Any]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = str(scope.get("method", "GET"))
        status = 500
        started = time.perf_counter()

        async def send_wrapper(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        gauge = self.metrics.in_progress.labels(method)
        gauge.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        except BaseException:
            status = 500
            raise
        finally:
            gauge.dec()
            elapsed = time.perf_counter() - started
            route = _route_of(scope, self.routes)
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.seconds.labels(method, route).observe(elapsed)
            extra: dict[str, Any] = {
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": round(elapsed * 1000, 2),
            }
            actor = _actor_of(scope)
            if actor:
                extra["actor"] = actor
            access_log.info("%s %s %d", method, route, status, extra=extra)


def install(app: Any) -> RegistryMetrics:
    """Add the metrics middleware (outermost so far) and ``GET /metrics`` to ``app``."""
    metrics = RegistryMetrics()
    app.state.metrics = metrics

    def metrics_endpoint() -> Response:
        """Prometheus text exposition (no authentication: firewall it)."""
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route(
        "/metrics",
        metrics_endpoint,
        methods=["GET"],
        tags=["operations"],
        summary="Prometheus metrics",
        response_class=Response,
        response_model=None,
        responses={200: {"content": {"text/plain": {}}, "description": "Text exposition"}},
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics, routes=app.router.routes)
    return metrics

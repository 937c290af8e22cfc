"""The registry's ASGI application: :func:`create_app` wires the routers and middleware.

Routers (each module's ``router``): operations (``/health``, ``/health/live``,
``/health/ready``; ``/metrics`` from :mod:`~workstation.registry.metrics`), sign-in
(``/auth/*``), enrolment (``/enrol``), administration (``/admin/*``), sealed results
(``/results``), the model catalogue (``/models``) and webhooks (``/admin/webhooks``).
Middleware: request metrics and the JSON access log, then the per-identity rate limit. The
webhook dispatcher runs beside the app for its lifetime.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from workstation import __version__
from workstation.registry.settings import RegistrySettings

__all__ = ["create_app"]


def create_app(settings: RegistrySettings | None = None) -> Any:
    """Build the FastAPI application for ``settings`` (default: data in ``./registry-data``)."""
    from fastapi import FastAPI

    from workstation.registry import (
        metrics,
        ratelimit,
        routes_admin,
        routes_auth,
        routes_enrol,
        routes_model_updates,
        routes_models,
        routes_ops,
        routes_results,
        routes_webhooks,
        webhooks,
    )
    from workstation.registry.db import Database

    settings = (settings or RegistrySettings(Path("registry-data"))).prepared()
    db = Database(settings.url)
    db.create_all()
    dispatcher = webhooks.Dispatcher(db, settings)

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        dispatcher.start()
        try:
            yield
        finally:
            dispatcher.stop()
            db.dispose()

    app = FastAPI(
        title="Medical Workstation registry",
        version=__version__,
        description="Sealed results and signed models for Medical Workstation sites. The "
        "registry stores ciphertext it cannot open and routing metadata only.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.dispatcher = dispatcher
    for module in (
        routes_ops,
        routes_auth,
        routes_enrol,
        routes_admin,
        routes_results,
        routes_model_updates,  # before routes_models: /models/assignments is not a release id
        routes_models,
        routes_webhooks,
    ):
        app.include_router(module.router)
    ratelimit.install(app, settings)
    metrics.install(app)  # outermost: times every request, rate-limited ones included
    return app

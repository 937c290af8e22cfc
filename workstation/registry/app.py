"""The registry's ASGI application."""

from __future__ import annotations

from typing import Any

from workstation import __version__


def create_app() -> Any:
    """Build the FastAPI application."""
    from fastapi import FastAPI

    app = FastAPI(title="Medical Workstation registry", version=__version__)

    @app.get("/health")
    def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok", "version": __version__}

    return app

"""Operations endpoints, without authentication: liveness (``/health``, ``/health/live``) and
readiness (``/health/ready``: the database answers ``SELECT 1`` and the data folder is
writable). ``/metrics`` is served by :mod:`workstation.registry.metrics`."""

from __future__ import annotations

import logging
import os
import tempfile
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from workstation import __version__

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter(tags=["operations"])


def _liveness() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


@router.get("/health", summary="Liveness (the process answers)")
def health() -> dict[str, str]:
    """The process is up; says nothing about the database."""
    return _liveness()


@router.get("/health/live", summary="Liveness (alias of /health)")
def health_live() -> dict[str, str]:
    """The process is up (for orchestrators that expect ``/health/live``)."""
    return _liveness()


def _check_database(db: Any) -> str | None:
    try:
        with db.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except Exception as error:  # noqa: BLE001 (any failure means not ready)
        log.warning("readiness: database check failed: %s", type(error).__name__)
        return f"database unavailable ({type(error).__name__})"
    return None


def _check_data_dir(settings: Any) -> str | None:
    try:
        fd, name = tempfile.mkstemp(prefix=".ready-", dir=settings.data_dir)
        os.close(fd)
        os.unlink(name)
    except OSError as error:
        log.warning("readiness: data folder not writable: %s", type(error).__name__)
        return f"data folder not writable ({type(error).__name__})"
    return None


@router.get(
    "/health/ready",
    summary="Readiness (database and data folder usable)",
    responses={503: {"description": "Not ready; ``reason`` says why"}},
)
def health_ready(request: Request) -> JSONResponse:
    """200 ``{"status": "ready", "database": "ok"}`` when the database answers and the data
    folder is writable; otherwise 503 with the reason."""
    state = request.app.state
    problem = _check_database(state.db)
    database = "ok" if problem is None else "unavailable"
    problem = problem or _check_data_dir(state.settings)
    if problem is not None:
        return JSONResponse(
            {"status": "not ready", "database": database, "reason": problem}, status_code=503
        )
    return JSONResponse({"status": "ready", "database": "ok"})

"""The ASGI entry point for ``uvicorn --factory`` (and ``workstation-registry serve``, whose
workers import it): :func:`create` builds the app from environment variables.

``MEDWS_REGISTRY_DATA`` (data folder, default ``registry-data``), ``MEDWS_REGISTRY_DB``
(SQLAlchemy URL, default SQLite in the data folder), ``MEDWS_REGISTRY_TRUST_ROOT`` (trust root
file), ``MEDWS_REGISTRY_KEY`` (the registry role's private signing key file, for the model
metadata), ``MEDWS_REGISTRY_LOG_LEVEL`` (when set, JSON logs go to stderr at that level)::

    MEDWS_REGISTRY_DATA=/srv/registry uvicorn --factory workstation.registry.asgi:create
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from workstation.registry.settings import RegistrySettings

__all__ = [
    "ENV_DATA",
    "ENV_DB",
    "ENV_LOG_LEVEL",
    "ENV_REGISTRY_KEY",
    "ENV_TRUST_ROOT",
    "create",
    "settings_from_env",
]

ENV_DATA = "MEDWS_REGISTRY_DATA"
ENV_DB = "MEDWS_REGISTRY_DB"
ENV_TRUST_ROOT = "MEDWS_REGISTRY_TRUST_ROOT"
ENV_LOG_LEVEL = "MEDWS_REGISTRY_LOG_LEVEL"
ENV_REGISTRY_KEY = "MEDWS_REGISTRY_KEY"


def settings_from_env() -> RegistrySettings:
    """The settings the environment describes."""
    trust_root = os.environ.get(ENV_TRUST_ROOT)
    registry_key = os.environ.get(ENV_REGISTRY_KEY)
    return RegistrySettings(
        Path(os.environ.get(ENV_DATA) or "registry-data"),
        db_url=os.environ.get(ENV_DB) or None,
        trust_root=Path(trust_root) if trust_root else None,
        registry_key=Path(registry_key) if registry_key else None,
    )


def configure_logs(level: str) -> None:
    """JSON lines on stderr through the PHI filter (each worker process calls this)."""
    from workstation.logs import configure_logging

    setup = configure_logging(level=level.upper(), json_path=None, stream=sys.stderr)
    for handler in setup.handlers:
        handler.addFilter(_drop_color)
    if level.lower() != "debug":
        logging.getLogger("alembic").setLevel(logging.WARNING)  # a line per migration plugin


def _drop_color(record: logging.LogRecord) -> bool:
    """uvicorn's ANSI-coloured copy of each message is noise in JSON."""
    record.__dict__.pop("color_message", None)
    return True


def create() -> Any:
    """The registry app for the settings in the environment."""
    from workstation.registry.app import create_app

    level = os.environ.get(ENV_LOG_LEVEL)
    if level:
        configure_logs(level)
    return create_app(settings_from_env())

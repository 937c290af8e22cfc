"""The Models panel's worker functions (lifecycle calls touch disk: never on the GUI thread)."""

from __future__ import annotations

import getpass
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["NOT_RECORDED", "change_task", "list_task", "next_stage"]

NOT_RECORDED = (
    "not recorded: {error}; model changes are recorded in the audit trail: unlock the key "
    "store without a prompt ($WORKSTATION_PASSPHRASE or a keyring key store)"
)

_NEXT = {"installed": "shadow", "shadow": "canary", "canary": "active"}


def next_stage(stage: str) -> str | None:
    """The stage a version in ``stage`` is promoted to (as the lifecycle counts steps: a
    blocked, retired or rolled-back version starts again at shadow); ``None`` when active."""
    if stage == "active":
        return None
    return _NEXT.get(stage, "shadow")


def _models_folder() -> Path:
    from workstation.config import paths

    return Path(paths().models)


def list_task(folder: Path | None = None, *, progress: Any, cancel: Any) -> dict[str, Any]:
    """The worker: the rows of ``list()`` and each version's history, by ``(name, version)``."""
    from workstation.models.lifecycle import ModelLifecycle

    lifecycle = ModelLifecycle(folder or _models_folder())
    rows = lifecycle.list()
    history: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for name in sorted({row["name"] for row in rows}):
        for version in lifecycle.versions(name):
            history[(name, version.version)] = list(version.history)
    return {"rows": rows, "history": history, "folder": str(lifecycle.folder)}


def change_task(
    change: Callable[[Any], tuple[str, tuple[str, str] | None]],
    folder: Path | None = None,
    *,
    progress: Any,
    cancel: Any,
) -> tuple[bool, str, tuple[str, str] | None]:
    """The worker: open the audited store (as the CLI does), run ``change(lifecycle)``.

    ``change`` returns ``(message, (name, version) to select)``. ``(False, "not recorded: ...",
    None)`` when the key store does not unlock without a prompt;
    lifecycle errors (refusals) propagate to the runner's ``failed``.
    """
    from workstation.models.lifecycle import ModelLifecycle
    from workstation.security.errors import KeyStoreError
    from workstation.workflow.analysis_store import open_default_store

    try:
        store = open_default_store(actor=f"ui:{getpass.getuser()}")
    except KeyStoreError as error:
        return False, NOT_RECORDED.format(error=error), None
    try:
        return (True, *change(ModelLifecycle(folder or _models_folder(), audit=store)))
    finally:
        store.close()

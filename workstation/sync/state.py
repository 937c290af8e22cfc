"""The enrolment state file ``<home>/sync/registry.json`` (mode 0600, written atomically).

::

    {"schema": 1, "url", "workstation_id", "site_id", "site_name", "enrolled"}

No secrets: sign-in uses the key store's signing key, tokens live in memory only.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from workstation.core.files import write_atomic

__all__ = ["EnrolmentState", "load_state", "save_state", "spool_dir", "state_path", "sync_dir"]

SCHEMA = 1
FILE_NAME = "registry.json"


@dataclass(frozen=True)
class EnrolmentState:
    """Which registry this workstation is enrolled with, and as whom."""

    url: str
    workstation_id: str
    site_id: str
    site_name: str = ""
    enrolled: str = ""


def sync_dir(home: Path | None = None) -> Path:
    """``<home>/sync``."""
    if home is None:
        from workstation.config import home_dir

        home = home_dir()
    return Path(home) / "sync"


def state_path(home: Path | None = None) -> Path:
    """``<home>/sync/registry.json``."""
    return sync_dir(home) / FILE_NAME


def spool_dir(home: Path | None = None) -> Path:
    """``<home>/sync/spool``: sealed blobs awaiting a confirmed upload (see the engine)."""
    return sync_dir(home) / "spool"


def save_state(state: EnrolmentState, path: Path | None = None) -> Path:
    """Write the state file (mode 0600, folder 0700) atomically; returns its path."""
    path = Path(path) if path is not None else state_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if os.name == "posix":
        os.chmod(path.parent, 0o700)
    data = json.dumps({"schema": SCHEMA, **asdict(state)}, indent=2, sort_keys=True) + "\n"
    write_atomic(path, data.encode("utf-8"), mode=0o600)
    return path


def load_state(path: Path | None = None) -> EnrolmentState | None:
    """The saved state, or ``None`` when not enrolled; ``ValueError`` if the file is corrupt."""
    path = Path(path) if path is not None else state_path()
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read the enrolment state {path}: {error}") from error
    try:
        return EnrolmentState(
            url=str(doc["url"]),
            workstation_id=str(doc["workstation_id"]),
            site_id=str(doc["site_id"]),
            site_name=str(doc.get("site_name", "")),
            enrolled=str(doc.get("enrolled", "")),
        )
    except (KeyError, TypeError) as error:
        raise ValueError(f"the enrolment state {path} is incomplete") from error


def is_enrolled() -> bool:
    """Whether this workstation is enrolled with a registry (results saved then also sync)."""
    try:
        return load_state() is not None
    except ValueError:
        return False

"""The lifecycle's state file: ``lifecycle.json`` (schema 1), read and written under a lock.

::

    {"schema": 1, "models": {NAME: {"canary_share": 0.1, "versions": {VERSION: {
        "stage", "bundle", "sha256", "installed", "trusted_by", "gates", "history": [
            {"time", "from", "to", "reason", "actor", ...}]}}}}}

Writes are atomic (a reader sees the old file or the new one); a file that cannot be read is a
clear error and is never reset silently.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from workstation.core.errors import WorkstationError
from workstation.core.files import write_atomic

__all__ = [
    "MAX_REASON",
    "SCHEMA",
    "STAGES",
    "GateReportLike",
    "LifecycleError",
    "ModelVersion",
    "PromotionBlocked",
    "Routing",
    "UnverifiedModel",
    "audit_event",
    "bucket",
    "check_new",
    "default_monitor",
    "failed_gates",
    "file_sha256",
    "gate_document",
    "locked",
    "read_state",
    "summarize",
    "transition",
    "utcnow",
    "verified_copy",
    "vkey",
    "write_state",
]

SCHEMA = 1
STATE_FILE = "lifecycle.json"
LOCK_FILE = ".lifecycle.lock"
MAX_REASON = 200  # the audit trail's limit on a detail
STAGES = ("installed", "shadow", "canary", "active", "retired", "rolled-back", "blocked")


class LifecycleError(WorkstationError):
    """A lifecycle operation was refused or the state cannot be read."""


@dataclass(frozen=True)
class ModelVersion:
    """One installed version of a model and where it stands."""

    name: str
    version: str
    stage: str
    bundle: str  # file name inside the lifecycle folder
    sha256: str
    installed: str
    trusted_by: str = ""
    gates: dict[str, Any] | None = None
    history: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    @classmethod
    def from_json(cls, name: str, version: str, raw: dict[str, Any]) -> ModelVersion:
        """The version recorded as ``raw`` in the state file."""
        return cls(
            name=name,
            version=version,
            stage=str(raw["stage"]),
            bundle=str(raw["bundle"]),
            sha256=str(raw["sha256"]),
            installed=str(raw["installed"]),
            trusted_by=str(raw.get("trusted_by", "")),
            gates=raw.get("gates"),
            history=tuple(raw.get("history", ())),
        )

    @property
    def gates_passed(self) -> bool | None:
        """Whether the last gate report passed (``None``: never gated)."""
        return None if self.gates is None else bool(self.gates.get("passed"))

    def to_summary(self) -> dict[str, Any]:
        """A row for ``workstation models list`` and the GUI."""
        last = self.history[-1] if self.history else {}
        return {
            "name": self.name,
            "version": self.version,
            "stage": self.stage,
            "installed": self.installed,
            "trusted_by": self.trusted_by,
            "sha256": self.sha256,
            "history": len(self.history),
            "last_change": last.get("time"),
            "last_reason": last.get("reason", ""),
            "gates": {None: None, True: "passed", False: "failed"}[self.gates_passed],
        }


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, streamed."""
    sha = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()


def read_state(folder: Path) -> dict[str, Any]:
    """The state in ``folder`` (an empty one when there is no file yet)."""
    path = folder / STATE_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {"schema": SCHEMA, "models": {}}
    except OSError as error:
        raise LifecycleError(f"cannot read {path}: {error.strerror}", path=path) from None
    try:
        state = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise LifecycleError(
            f"{path} is corrupt ({error}); it was not reset: restore it from a backup or move "
            "it away to start over (installed bundles stay in the folder)",
            path=path,
        ) from None
    if not isinstance(state, dict) or not isinstance(state.get("models"), dict):
        raise LifecycleError(f"{path} is not a model lifecycle file; it was not reset", path=path)
    if state.get("schema") != SCHEMA:
        raise LifecycleError(
            f"{path} has schema {state.get('schema')!r}; this workstation reads schema "
            f"{SCHEMA} (a newer workstation wrote it?)",
            path=path,
        )
    try:
        for name, entry in state["models"].items():
            for version, raw_version in entry["versions"].items():
                if ModelVersion.from_json(name, version, raw_version).stage not in STAGES:
                    raise ValueError(f"unknown stage for {name} {version}")
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise LifecycleError(f"{path} is corrupt ({error}); it was not reset", path=path) from None
    return state


def write_state(folder: Path, state: dict[str, Any]) -> None:
    """Replace the state file atomically."""
    text = json.dumps(state, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    write_atomic(folder / STATE_FILE, text.encode("utf-8"), mode=0o644)


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold the folder's lock (POSIX ``flock``) so that the GUI and the CLI take turns."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: one writer at a time is the user's to keep
        yield
        return
    fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


class PromotionBlocked(LifecycleError):
    """A gate failed: the version is now ``blocked``; ``failed`` names the failing gates."""

    def __init__(self, message: str, failed: list[str]) -> None:
        super().__init__(message)
        self.failed = failed


class UnverifiedModel(LifecycleError):
    """A bundle on disk no longer matches the SHA-256 recorded when it was verified."""


class GateReportLike(Protocol):
    """What a gate runner returns (``workstation.models.gates.GateReport``)."""

    passed: bool

    def to_json(self) -> Any: ...  # a dict, or its JSON text


@dataclass(frozen=True)
class Routing:
    """Which versions process one study: ``shown`` (its output is shown; ``canary`` when it is
    the canary, to be marked so) and ``hidden`` (shadow: run, output kept out of sight)."""

    name: str
    shown: ModelVersion
    canary: bool
    hidden: tuple[ModelVersion, ...]
    folder: Path

    def path(self, version: ModelVersion) -> Path:
        """The verified bundle of ``version`` (load it with ``load_model(path, trust=...)``)."""
        return self.folder / version.bundle


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def bucket(study_key: str) -> float:
    """A study's place in [0, 1): the same study always falls in the same place."""
    digest = hashlib.sha256(study_key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def vkey(version: str) -> Any:
    from workstation.security.bundle import Version

    return Version.parse(version)


def check_new(
    name: str, version: str, entry: dict[str, Any], downgrade: bool, activate: bool
) -> None:
    """Refuse a downgrade, a reinstall, or an activation at install over an active version."""
    versions = entry["versions"]
    active = next((v for v, raw in versions.items() if raw["stage"] == "active"), None)
    if active is not None and vkey(version) <= vkey(active) and not downgrade:
        raise LifecycleError(
            f"{name} {version} is not newer than the active version {active}: refused as a "
            "downgrade (allow_downgrade / --allow-downgrade to install it anyway)"
        )
    if version in versions:
        raise LifecycleError(
            f"{name} {version} is already installed ({versions[version]['stage']})"
        )
    if activate and active is not None:
        raise LifecycleError(
            f"{name} {active} is active: promote {version} through shadow and canary, or "
            "activate it once installed"
        )


def gate_document(report: Any) -> tuple[dict[str, Any], list[str]]:
    """The report as stored in the state file, and the names of the gates that failed."""
    raw = report.to_json()
    document = dict(json.loads(raw) if isinstance(raw, str | bytes) else raw)
    document["passed"] = bool(report.passed)
    failed = [] if report.passed else failed_gates(report)
    return document, failed


def failed_gates(report: Any) -> list[str]:
    """The names of a report's failed gates (``report.failed`` or its ``results``)."""
    named = getattr(report, "failed", None)
    if isinstance(named, list | tuple):
        return [str(n) for n in named]
    names = []
    for result in getattr(report, "results", ()) or ():
        if not getattr(result, "passed", True):
            names.append(str(getattr(result, "name", None) or result))
    return names


def default_monitor(name: str, version: str) -> Any:
    """The canary monitor used unless one is injected: over the last 50 studies (from 10 on),
    roll back above 20 % disagreement, 1.5× the active's median latency or 5 % errors."""
    from workstation.models.gates import CanaryMonitor

    return CanaryMonitor(
        window=50, max_disagreement=0.2, max_latency_ratio=1.5, max_error_rate=0.05, min_samples=10
    )


def transition(
    record: dict[str, Any],
    old: str | None,
    new: str,
    reason: str,
    actor: str,
    time: str,
    *,
    forced: bool = False,
) -> None:
    """Move a version's ``record`` to ``new`` and append the step to its history."""
    step: dict[str, Any] = {"time": time, "from": old, "to": new, "reason": reason[:MAX_REASON]}
    step["actor"] = actor
    if forced:
        step["forced"] = True
    record["stage"] = new
    record["history"].append(step)


def audit_event(
    audit: Any,
    actor: str,
    action: str,
    name: str,
    version: str,
    stage: str,
    reason: str,
    **extra: Any,
) -> None:
    """Record a transition in ``audit`` (a ``ResultStore``, an ``AuditTrail`` or ``None``)."""
    trail = getattr(audit, "audit", audit)
    if trail is None:
        return
    details = {"name": name, "version": version, "stage": stage}
    details |= {"reason": reason[:MAX_REASON], **extra}
    trail.record(
        actor=actor,
        action=action,
        object_type="model",
        object_id=f"{name}@{version}",
        details=details,
    )


def verified_copy(source: Path, folder: Path, trust: Any) -> tuple[Path, str, str, str]:
    """Copy ``source`` into ``folder`` and verify the copy completely (signatures, every payload
    byte): the copy's path (the caller renames or removes it), name, version and signer."""
    from workstation.security.bundle import open_bundle

    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".install-", suffix=".mwb.partial", dir=folder)
    os.close(fd)
    copy = Path(tmp)
    try:
        try:
            shutil.copyfile(source, copy)
        except OSError as error:
            raise LifecycleError(f"cannot read {source}: {error.strerror}", path=source) from None
        with open_bundle(copy, trust=trust, kind="model") as verified:
            verified.verify_payload()
            return copy, verified.name, str(verified.version), verified.trusted_by
    except BaseException:
        copy.unlink(missing_ok=True)
        raise


def summarize(state: dict[str, Any]) -> list[dict[str, Any]]:
    """A row per version, by name then version (the canary's row has its share)."""
    rows = []
    for name, entry in sorted(state["models"].items()):
        found = [ModelVersion.from_json(name, v, raw) for v, raw in entry["versions"].items()]
        for version in sorted(found, key=lambda m: vkey(m.version)):
            row = version.to_summary()
            if version.stage == "canary":
                row["canary_share"] = float(entry.get("canary_share", 0.1))
            rows.append(row)
    return rows

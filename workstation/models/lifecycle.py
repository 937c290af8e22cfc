"""The lifecycle of each model: installed → shadow → canary → active, earlier versions kept.

A version is *installed* from a bundle verified completely against the trust roots (signatures,
every payload byte) and copied into the lifecycle folder as ``<name>-<version>.mwb``. It then
runs in *shadow* beside the active version (output hidden, agreement recorded), then as the
*canary* (shown, marked, for ``canary_share`` of studies), then becomes *active*; the previous
active version is *retired* and kept for :meth:`ModelLifecycle.rollback`. A failed gate makes a
version *blocked*; a degrading canary is *rolled-back* automatically
(:meth:`ModelLifecycle.observe_canary`). Every transition is recorded in the version's history
and, when an audit trail is given, in the workstation's audit trail (``model.install``,
``model.promote``, ``model.activate``, ``model.block``, ``model.rollback``, ``model.refuse``).

:meth:`ModelLifecycle.route` says which versions process a study, and re-checks each bundle's
SHA-256 on disk first: no study is processed by a model that is not the verified one.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workstation.models._lifecycle_store import (
    MAX_REASON,
    STAGES,
    GateReportLike,
    LifecycleError,
    ModelVersion,
    PromotionBlocked,
    Routing,
    UnverifiedModel,
    audit_event,
    bucket,
    check_new,
    default_monitor,
    file_sha256,
    gate_document,
    locked,
    read_state,
    summarize,
    transition,
    utcnow,
    verified_copy,
    vkey,
    write_state,
)

__all__ = [
    "STAGES",
    "GateReportLike",
    "LifecycleError",
    "ModelLifecycle",
    "ModelVersion",
    "PromotionBlocked",
    "Routing",
    "UnverifiedModel",
]

_ORDER = {"installed": 0, "shadow": 1, "canary": 2, "active": 3}


class ModelLifecycle:
    """The model versions installed in ``folder`` and their stages (``folder/lifecycle.json``).

    ``trust`` verifies bundles (default: :meth:`TrustRoots.load_default`, loaded on first use);
    ``audit`` is a ``ResultStore`` (or anything with ``.audit.record``, or an ``AuditTrail``);
    ``report(name, version, event, details)`` is told of automatic rollbacks (the registry).
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        trust: Any = None,
        audit: Any = None,
        actor: str | None = None,
        report: Callable[[str, str, str, dict[str, Any]], None] | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.folder = Path(folder)
        self._trust = trust
        self._audit = audit
        self.actor = actor or str(getattr(audit, "actor", "") or "workstation")
        self._report = report
        self._clock = clock
        self._monitors: dict[tuple[str, str], Any] = {}
        self.last_rollback_s: float | None = None
        read_state(self.folder)  # a corrupt file is an error now, not at the first change

    def versions(self, name: str) -> list[ModelVersion]:
        """Every recorded version of ``name``, oldest version first."""
        entry = read_state(self.folder)["models"].get(name, {"versions": {}})
        found = [ModelVersion.from_json(name, v, raw) for v, raw in entry["versions"].items()]
        return sorted(found, key=lambda m: vkey(m.version))

    def get(self, name: str, version: str) -> ModelVersion:
        """One recorded version (a :class:`LifecycleError` when there is none)."""
        for found in self.versions(name):
            if found.version == version:
                return found
        known = ", ".join(v.version for v in self.versions(name)) or "none"
        raise LifecycleError(f"{name} {version} is not installed (installed: {known})")

    def in_stage(self, name: str, stage: str) -> ModelVersion | None:
        """The version of ``name`` in ``stage`` (shadow, canary, active), if any."""
        return next((v for v in self.versions(name) if v.stage == stage), None)

    def canary_share(self, name: str) -> float:
        """The share of studies the canary of ``name`` is shown for."""
        entry = read_state(self.folder)["models"].get(name, {})
        return float(entry.get("canary_share", 0.1))

    def list(self) -> list[dict[str, Any]]:
        """A row per version (name, version, stage, installed, history length, gates)."""
        return summarize(read_state(self.folder))

    def install(
        self,
        bundle_path: str | Path,
        *,
        verify_target: Callable[[Path, str, str], None] | None = None,
        activate: bool = False,
        allow_downgrade: bool = False,
        reason: str = "",
        actor: str | None = None,
    ) -> ModelVersion:
        """Verify ``bundle_path`` completely and install it (stage ``installed``; ``active`` when
        ``activate`` and the name has no active version yet).

        The bundle is copied first and the copy is what is verified, hashed and kept.
        ``verify_target(path, name, version)`` (the signed metadata's check) may refuse it.
        """
        source = Path(bundle_path)
        copy, name, version, trusted_by = verified_copy(source, self.folder, self._roots())
        try:
            if verify_target is not None:
                verify_target(copy, name, version)
            sha = file_sha256(copy)
            with locked(self.folder):
                state = read_state(self.folder)
                entry = state["models"].setdefault(name, {"versions": {}})
                check_new(name, version, entry, allow_downgrade, activate)
                target = f"{name}-{version}.mwb"
                os.replace(copy, self.folder / target)
                record = {
                    "stage": "installed",
                    "bundle": target,
                    "sha256": sha,
                    "installed": self._now(),
                    "trusted_by": trusted_by,
                    "gates": None,
                    "history": [],
                }
                entry["versions"][version] = record
                self._move(
                    record, None, "installed", reason or f"installed from {source.name}", actor
                )
                stage_reason = "activated at install (no active version)"
                if activate:
                    self._move(record, "installed", "active", reason or stage_reason, actor)
                write_state(self.folder, state)
        finally:
            copy.unlink(missing_ok=True)
        self._record("model.install", name, version, "installed", reason, actor)
        if activate:
            self._record("model.activate", name, version, "active", "at install", actor)
        return self.get(name, version)

    def promote(
        self,
        name: str,
        version: str,
        to: str,
        *,
        gates: Callable[[str, str], GateReportLike] | None = None,
        canary_share: float | None = None,
        reason: str = "",
        force: bool = False,
        actor: str | None = None,
    ) -> ModelVersion:
        """Move ``version`` one step on (installed → shadow → canary → active).

        Skipping a step needs ``force`` (recorded). ``gates(name, version)`` runs before the
        version enters shadow, or a later stage when it has not passed them yet: a failed report
        makes it ``blocked`` and raises :class:`PromotionBlocked`. On ``active`` the previous
        active version is ``retired`` (kept, for rollback).
        """
        if to not in ("shadow", "canary", "active"):
            raise LifecycleError(f"promote to shadow, canary or active, not {to!r}")
        if canary_share is not None and not 0.0 < canary_share <= 1.0:
            raise LifecycleError(f"the canary share must be in (0, 1], not {canary_share}")
        current = self.get(name, version)
        step = _ORDER.get(current.stage, 0)
        if current.stage == to:
            raise LifecycleError(f"{name} {version} is already {to}")
        if current.stage in ("canary", "active") and _ORDER[to] < step:
            raise LifecycleError(f"{name} {version} is {current.stage}; use rollback to demote it")
        if _ORDER[to] != step + 1 and not force:
            raise LifecycleError(
                f"{name} {version} is {current.stage}: promote it step by step "
                "(installed → shadow → canary → active), or force the skip (it is recorded)"
            )
        if current.stage == "blocked" and gates is None and not force:
            raise LifecycleError(f"{name} {version} failed its gates; run them again to promote it")
        holder = self.in_stage(name, to)
        if to in ("shadow", "canary") and holder is not None:
            raise LifecycleError(
                f"{name} {holder.version} is already the {to}; roll it back or promote it first"
            )
        if gates is not None and (to == "shadow" or current.gates_passed is not True):
            self._gate(name, version, gates, actor)
        why = reason or (
            "forced: skipped a stage" if _ORDER[to] != step + 1 else f"promoted to {to}"
        )
        if force and _ORDER[to] != step + 1 and "forced" not in why:
            why = f"forced: {why}"
        with locked(self.folder):
            state = read_state(self.folder)
            entry = state["models"][name]
            record = entry["versions"][version]
            if to == "active":
                for other, raw in entry["versions"].items():
                    if raw["stage"] == "active" and other != version:
                        self._move(raw, "active", "retired", f"replaced by {version}", actor)
            if to == "canary":
                entry["canary_share"] = 0.1 if canary_share is None else canary_share
            self._move(record, record["stage"], to, why, actor, forced=force)
            write_state(self.folder, state)
        action = "model.activate" if to == "active" else "model.promote"
        self._record(action, name, version, to, why, actor)
        return self.get(name, version)

    def activate(self, name: str, version: str, *, reason: str = "", **kwargs: Any) -> ModelVersion:
        """Make ``version`` active now, whatever its stage (a forced promotion, recorded)."""
        return self.promote(
            name, version, "active", reason=reason or "forced: activated", force=True, **kwargs
        )

    def rollback(self, name: str, *, reason: str, actor: str | None = None) -> ModelVersion:
        """Roll the canary back (the active stays), or, with no canary, the active version back
        to the most recently retired one. Returns the version rolled back; the time taken is
        in its last history entry (``took_ms``) and in :attr:`last_rollback_s`."""
        started = time.perf_counter()
        with locked(self.folder):
            state = read_state(self.folder)
            entry = state["models"].get(name)
            if entry is None:
                raise LifecycleError(f"no model {name!r} is installed")
            versions = entry["versions"]
            by_stage = {raw["stage"]: v for v, raw in versions.items() if raw["stage"] in _ORDER}
            restored = None
            if "canary" in by_stage:
                gone = by_stage["canary"]
            elif "active" in by_stage:
                gone = by_stage["active"]
                retired = [v for v, raw in versions.items() if raw["stage"] == "retired"]
                if not retired:
                    raise LifecycleError(
                        f"{name} {gone} is active and no earlier version is kept to roll back to"
                    )
                restored = max(retired, key=lambda v: (versions[v]["history"][-1]["time"], vkey(v)))
            else:
                raise LifecycleError(f"{name} has no canary or active version to roll back")
            record = versions[gone]
            self._move(record, record["stage"], "rolled-back", reason, actor)
            if restored is not None:
                why = f"restored: {gone} rolled back"
                self._move(versions[restored], "retired", "active", why, actor)
            write_state(self.folder, state)
            took = time.perf_counter() - started
            record["history"][-1]["took_ms"] = round(took * 1000, 3)
            write_state(self.folder, state)
        self.last_rollback_s = took
        self._monitors.pop((name, gone), None)
        self._record(
            "model.rollback", name, gone, "rolled-back", reason, actor, took_us=int(took * 1e6)
        )
        if restored is not None:
            self._record("model.activate", name, restored, "active", f"{gone} rolled back", actor)
        return self.get(name, gone)

    def observe_canary(
        self,
        name: str,
        *,
        agree: bool,
        latency_s: float,
        active_latency_s: float,
        error: bool = False,
        monitor_factory: Callable[[str, str], Any] | None = None,
    ) -> Any:
        """Feed one canary study to the canary's monitor; on a ``rollback`` decision roll the
        canary back now, tell ``report`` and return the decision."""
        canary = self.in_stage(name, "canary")
        if canary is None:
            raise LifecycleError(f"{name} has no canary to observe")
        key = (name, canary.version)
        if key not in self._monitors:
            self._monitors[key] = (monitor_factory or default_monitor)(name, canary.version)
        decision = self._monitors[key].record(
            agree=agree, latency_s=latency_s, active_latency_s=active_latency_s, error=error
        )
        if getattr(decision, "action", "continue") == "rollback":
            why = f"canary degraded: {getattr(decision, 'reason', '')}"[:MAX_REASON]
            self.rollback(name, reason=why, actor="canary-monitor")
            if self._report is not None:
                details = {"reason": why, "took_ms": round((self.last_rollback_s or 0) * 1000, 3)}
                self._report(name, canary.version, "canary.rollback", details)
        return decision

    def route(self, name: str, study_key: str) -> Routing:
        """The versions that process the study ``study_key`` (see :class:`Routing`); each one's
        bundle is re-hashed against the recorded SHA-256 first (:class:`UnverifiedModel`)."""
        versions = self.versions(name)
        stages = {v.stage: v for v in versions if v.stage in _ORDER}
        active = stages.get("active")
        if active is None:
            raise LifecycleError(f"{name} has no active version")
        canary = stages.get("canary")
        shown, is_canary = active, False
        if canary is not None and bucket(study_key) < self.canary_share(name):
            shown, is_canary = canary, True
        hidden = tuple(v for v in (stages.get("shadow"),) if v is not None)
        for version in (shown, *hidden):
            self._verify_on_disk(version)
        return Routing(name, shown, is_canary, hidden, self.folder)

    # -- helpers ------------------------------------------------------------------------------

    def _roots(self) -> Any:
        if self._trust is None:
            from workstation.security.trust import TrustRoots

            self._trust = TrustRoots.load_default()
        return self._trust

    def _now(self) -> str:
        return self._clock().astimezone(dt.UTC).isoformat(timespec="milliseconds")

    def _move(
        self,
        record: dict[str, Any],
        old: str | None,
        new: str,
        reason: str,
        actor: str | None,
        *,
        forced: bool = False,
    ) -> None:
        transition(record, old, new, reason, actor or self.actor, self._now(), forced=forced)

    def _gate(
        self, name: str, version: str, gates: Callable[[str, str], Any], actor: str | None
    ) -> None:
        report = gates(name, version)
        document, failed = gate_document(report)
        why = f"gates failed: {', '.join(failed) or 'see the report'}"
        with locked(self.folder):
            state = read_state(self.folder)
            record = state["models"][name]["versions"][version]
            record["gates"] = document
            if not report.passed:
                self._move(record, record["stage"], "blocked", why, actor)
            write_state(self.folder, state)
        if not report.passed:
            self._record("model.block", name, version, "blocked", why, actor)
            raise PromotionBlocked(f"{name} {version} is blocked: {why}", failed)

    def _verify_on_disk(self, version: ModelVersion) -> None:
        path = self.folder / version.bundle
        try:
            actual = file_sha256(path)
        except OSError as error:
            actual = f"unreadable ({error.strerror})"
        if actual != version.sha256:
            why = "bundle changed on disk since it was verified"
            self._record("model.refuse", version.name, version.version, version.stage, why, None)
            raise UnverifiedModel(
                f"{version.name} {version.version}: {path} no longer matches the verified "
                "bundle; it will not process any study (install it again)",
                path=path,
            )

    def _record(
        self,
        action: str,
        name: str,
        version: str,
        stage: str,
        reason: str,
        actor: str | None,
        **extra: Any,
    ) -> None:
        audit_event(self._audit, actor or self.actor, action, name, version, stage, reason, **extra)

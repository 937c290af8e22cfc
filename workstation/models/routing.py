"""Run an analysis through the model lifecycle: the shown version, its shadow and its canary.

:func:`analyze_routed` asks :meth:`ModelLifecycle.route` which installed versions of the
requested model process a study (the study key is the volume's input hash, so the same study
always goes the same way) and:

* runs the *shown* version (active, or the canary for ``canary_share`` of studies) and returns
  its analysis;
* runs the *shadow* version on the same volume, never returns its output, and records whether it
  agreed (audit ``model.shadow``; the lifecycle's ``report`` hears ``shadow.agreement``);
* for a canary study, also runs the active version, feeds agreement and latency to
  :meth:`ModelLifecycle.observe_canary` (which rolls a degrading canary back) and, when the canary
  fails, returns the active version's analysis: a radiologist always gets a result.

A model the lifecycle does not manage (no active or canary version) runs as before, from the
shipped catalogue. A bundle that no longer matches its verified hash raises
:class:`UnverifiedModel` before anything is analysed: no study is processed by an unverified model.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from workstation.core.errors import Cancelled
from workstation.inference.catalogue import load_model
from workstation.models._lifecycle_store import UnverifiedModel, audit_event, file_sha256
from workstation.models.lifecycle import LifecycleError, ModelLifecycle, ModelVersion, Routing
from workstation.workflow.analyze import Analysis, AnalysisRequest, analyze, input_hash

__all__ = ["AGREE_DICE", "RoutedAnalysis", "ShadowResult", "agreement", "analyze_routed", "manages"]

AGREE_DICE = 0.5  # both label maps must overlap at least this much to agree


@dataclass(frozen=True)
class ShadowResult:
    """How the hidden shadow version compared with the shown one on one study."""

    version: str
    agree: bool
    dice: float | None  # of the two label maps (> 0), when both have one
    seconds: float
    error: str | None = None  # the exception's type when the shadow run failed


@dataclass(frozen=True)
class RoutedAnalysis:
    """The analysis shown to the user and how the lifecycle routed it.

    ``role`` is ``active``, ``canary`` (mark the result so) or ``shipped`` (not managed by the
    lifecycle); ``canary_decision`` is the canary monitor's action (``continue``, ``rollback``…)
    on a canary study, else ``None``.
    """

    analysis: Analysis
    shown_version: str
    role: str
    shadow: ShadowResult | None = None
    canary_decision: str | None = None

    def summary(self) -> dict[str, Any]:
        """Short JSON-ready routing facts (for ``summary.json``)."""
        return {
            "role": self.role,
            "version": self.shown_version,
            "shadow_agree": None if self.shadow is None else self.shadow.agree,
            "canary_decision": self.canary_decision,
        }


def manages(lifecycle: ModelLifecycle, name: str) -> bool:
    """Whether ``lifecycle`` has a version of ``name`` that is active or the canary."""
    return any(v.stage in ("active", "canary") for v in lifecycle.versions(name))


def analyze_routed(
    volume: Any,
    request: AnalysisRequest,
    lifecycle: ModelLifecycle,
    *,
    trust: Any = None,
    audit: Any = None,
    progress: Any = None,
    cancel: Any = None,
) -> RoutedAnalysis:
    """Analyse ``volume`` with the version of ``request.model`` the lifecycle routes it to.

    ``trust`` verifies the lifecycle's bundles when loading them (``None``: the default trust
    roots); ``audit`` records shadow comparisons (``None``: the lifecycle's audit trail).
    Raises :class:`UnverifiedModel` when a routed bundle changed on disk (nothing is analysed).
    """
    name = request.model
    if not manages(lifecycle, name):
        analysis = analyze(volume, request, progress=progress, cancel=cancel)
        return RoutedAnalysis(analysis, str(analysis.model.get("version", "")), "shipped")

    routing = lifecycle.route(name, study_key=input_hash(volume))
    active = lifecycle.in_stage(name, "active") if routing.canary else routing.shown
    # Load (and verify) every bundle before analysing anything.
    shown = _load(lifecycle, routing, routing.shown, trust)
    hidden = [(v, _load(lifecycle, routing, v, trust)) for v in routing.hidden]
    compare_to = None
    if routing.canary and active is not None:
        compare_to = _load(lifecycle, routing, active, trust)
    extra = {}
    if request.confirm_with and request.confirm_with != name:
        extra[request.confirm_with] = load_model(request.confirm_with)
    quiet = dataclasses.replace(request, explain=None)

    def run(loaded: Any, req: AnalysisRequest, report: Any = None) -> tuple[Analysis, float]:
        started = time.perf_counter()
        result = analyze(
            volume, req, models={name: loaded, **extra}, progress=report, cancel=cancel
        )
        return result, time.perf_counter() - started

    if not routing.canary:
        analysis, _ = run(shown, request, progress)
        role, version, decision = "active", routing.shown.version, None
    else:
        analysis, role, version, decision = _canary(
            lifecycle, routing, active, compare_to, shown, request, quiet, run, progress
        )
    shadow = None
    for hidden_version, loaded in hidden:
        shadow = _shadow(lifecycle, audit, hidden_version, loaded, analysis, quiet, run)
    return RoutedAnalysis(analysis, version, role, shadow, decision)


def agreement(a: Analysis, b: Analysis) -> tuple[bool, float | None]:
    """Whether two analyses agree: both found something or both nothing and, when both have
    label maps, their Dice (labels > 0) is at least :data:`AGREE_DICE`."""
    agree = bool(a.findings) == bool(b.findings)
    dice = None
    if a.labels is not None and b.labels is not None:
        x, y = np.asarray(a.labels.array) > 0, np.asarray(b.labels.array) > 0
        total = int(x.sum() + y.sum())
        dice = 2 * int((x & y).sum()) / total if total else 1.0
        agree = agree and dice >= AGREE_DICE
    return agree, dice


def _load(lifecycle: ModelLifecycle, routing: Routing, version: ModelVersion, trust: Any) -> Any:
    """The verified model of ``version`` (its SHA-256 re-checked, then its signatures)."""
    path = routing.path(version)
    try:
        actual = file_sha256(path)
    except OSError:
        actual = None
    if actual != version.sha256:
        # route() re-checked the shown and hidden versions; this covers the compared active one.
        raise UnverifiedModel(
            f"{version.name} {version.version}: {path} no longer matches the verified bundle; "
            "it will not process any study (install it again)",
            path=path,
        )
    return load_model(path, trust=trust)


def _canary(
    lifecycle: ModelLifecycle,
    routing: Routing,
    active: ModelVersion | None,
    compare_to: Any,
    shown: Any,
    request: AnalysisRequest,
    quiet: AnalysisRequest,
    run: Any,
    progress: Any,
) -> tuple[Analysis, str, str, str | None]:
    name, canary = routing.name, routing.shown
    failed = False
    canary_s = 0.0
    started = time.perf_counter()
    try:
        analysis, canary_s = run(shown, request, progress)
        # The active version runs without an explanation: compare like with like.
        canary_s -= float(analysis.provenance.get("stage_seconds", {}).get("explain", 0.0))
    except Cancelled:
        raise
    except Exception:  # noqa: BLE001 - a failing canary falls back to the active version
        failed, canary_s = True, time.perf_counter() - started
    if compare_to is None or active is None:  # route() needs an active version; defensive
        if failed:
            raise LifecycleError(f"the canary of {name} failed and there is no active version")
        return analysis, "canary", canary.version, None
    reference, active_s = run(compare_to, quiet)
    decision = None
    if not failed:
        agree, _ = agreement(analysis, reference)
        try:
            decision = lifecycle.observe_canary(
                name, agree=agree, latency_s=canary_s, active_latency_s=active_s, error=False
            )
        except Cancelled:
            raise
        except Exception:  # noqa: BLE001 - the canary is not trusted now: show the active one
            failed = True
    if failed:
        try:
            decision = lifecycle.observe_canary(
                name, agree=False, latency_s=canary_s, active_latency_s=active_s, error=True
            )
        except Exception:  # noqa: BLE001 - the radiologist still gets the active result
            decision = None
        if request.explain:  # the result shown keeps the requested explanation
            reference, _ = run(compare_to, request, progress)
        return reference, "active", active.version, _action(decision)
    return analysis, "canary", canary.version, _action(decision)


def _action(decision: Any) -> str | None:
    return None if decision is None else str(getattr(decision, "action", decision))


def _shadow(
    lifecycle: ModelLifecycle,
    audit: Any,
    version: ModelVersion,
    loaded: Any,
    shown: Analysis,
    quiet: AnalysisRequest,
    run: Any,
) -> ShadowResult:
    started = time.perf_counter()
    error = None
    try:
        hidden, seconds = run(loaded, quiet)
        agree, dice = agreement(shown, hidden)
    except Cancelled:
        raise
    except Exception as failure:  # noqa: BLE001 - a failing shadow never affects the result
        agree, dice, seconds = False, None, time.perf_counter() - started
        error = type(failure).__name__
    result = ShadowResult(version.version, agree, dice, round(seconds, 3), error)
    extra: dict[str, Any] = {"agree": agree, "dice": None if dice is None else f"{dice:.4f}"}
    if error is not None:
        extra["error"] = error
    trail = audit if audit is not None else getattr(lifecycle, "_audit", None)
    audit_event(
        trail, lifecycle.actor, "model.shadow", version.name, version.version, "shadow", "", **extra
    )
    report = getattr(lifecycle, "_report", None)
    if report is not None:
        report(
            version.name,
            version.version,
            "shadow.agreement",
            {**extra, "seconds": round(seconds, 3)},
        )
    return result

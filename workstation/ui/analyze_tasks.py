"""The Analyze panel's worker functions (run in a TaskRunner, never on the GUI thread)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from workstation.core.errors import WorkstationError

if TYPE_CHECKING:
    from workstation.core.volume import Volume
    from workstation.inference.catalogue import ModelInfo
    from workstation.workflow.analyze import Analysis, AnalysisRequest

__all__ = ["DISCLAIMER", "find_models_task", "run_analysis_task", "save_task", "tooltip"]

DISCLAIMER = "demonstration model — not for clinical use"  # catalogue.DISCLAIMER


def find_models_task(*, progress: Any, cancel: Any) -> tuple[list[ModelInfo], list[Any]]:
    from workstation.inference.catalogue import find_models

    progress(0, 0, "verifying model bundles")
    return find_models()


def run_analysis_task(
    volume: Volume, request: AnalysisRequest, cache: dict[str, Any], *, progress: Any, cancel: Any
) -> tuple[Analysis, dict[str, Any]]:
    """The worker: analyse through the model lifecycle when it manages the model (the active or
    canary version shown, the shadow hidden); else load (and verify) the models not loaded yet
    and analyse."""
    from workstation.inference.catalogue import load_model
    from workstation.workflow.analyze import analyze

    routed = _routed(volume, request, progress=progress, cancel=cancel)
    if routed is not None:
        return routed.analysis, dict(cache)
    models = dict(cache)
    for name in (request.model, request.confirm_with):
        if name and name not in models:
            progress(0, 1000, f"verifying and loading {name}")
            models[name] = load_model(name)
            cancel.raise_if_cancelled()
    analysis = analyze(volume, request, models=models, progress=progress, cancel=cancel)
    return analysis, models


def _routed(volume: Volume, request: AnalysisRequest, *, progress: Any, cancel: Any) -> Any:
    """``analyze_routed`` when the lifecycle manages ``request.model``, else ``None``."""
    from workstation.config import paths
    from workstation.models.lifecycle import ModelLifecycle
    from workstation.models.routing import analyze_routed, manages

    folder = paths().models
    if not (folder / "lifecycle.json").is_file():
        return None
    lifecycle = ModelLifecycle(folder)
    if not manages(lifecycle, request.model):
        return None
    return analyze_routed(volume, request, lifecycle, progress=progress, cancel=cancel)


def save_task(analysis: Analysis, *, progress: Any, cancel: Any) -> tuple[bool, str]:
    """The worker: save to the encrypted store; ``(saved, result id or why not)``."""
    try:
        from workstation.workflow.analysis_store import save_analysis
    except ImportError:
        return False, "the encrypted result store is not available in this build"
    try:
        from workstation.sync.state import is_enrolled

        return True, save_analysis(analysis, sync=is_enrolled())
    except (WorkstationError, ValueError) as error:
        return False, str(error) or type(error).__name__


def tooltip(info: ModelInfo) -> str:
    metrics = json.dumps(info.metrics, indent=1, sort_keys=True) if info.metrics else "none"
    return (
        f"{info.name} {info.version} ({info.task})\n\n"
        f"Intended use: {info.intended_use}\n\n"
        f"Training data: {info.training_data}\n\n"
        f"Metrics: {metrics}\n\n"
        f"{info.disclaimer or DISCLAIMER}"
    )

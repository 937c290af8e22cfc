"""``explain(model, tensor, method=..., target=...)``: one map as a Volume, with provenance.

The caller passes the preprocessed-grid :class:`~workstation.core.volume.Volume` whose array
matches the tensor; the map comes back on that grid, with the method, its parameters, the model
name / version, the layer, the target, the time and the faithfulness metrics in its metadata.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from workstation.core.tasks import CancelToken, ProgressFn, check_cancel
from workstation.core.volume import Volume
from workstation.explain._common import (
    ExplainError,
    Target,
    layer_name,
    prepare_input,
    resolve_layer,
    scores,
)
from workstation.explain.attribution import baseline_like, integrated_gradients, occlusion
from workstation.explain.faithfulness import Faithfulness, deletion_insertion, pointing_game
from workstation.explain.gradcam import gradcam
from workstation.inference.modes import eval_mode

if TYPE_CHECKING:
    import torch

__all__ = ["METHODS", "Explanation", "explain"]

METHODS = ("gradcam", "ig", "occlusion")
_PARAMS = {
    "gradcam": {},
    "ig": {"n_steps": 32, "baseline": "zeros", "internal_batch_size": 8},
    "occlusion": {"patch": 8, "stride": 4, "baseline": "zeros", "batch_size": 16},
}


@dataclass(frozen=True, eq=False)
class Explanation:
    """An attribution map on the input's grid, with how it was made and how faithful it is."""

    volume: Volume
    method: str
    parameters: Mapping[str, Any]
    faithfulness: Faithfulness | None
    provenance: Mapping[str, Any] = field(default_factory=dict)
    curves: Mapping[str, np.ndarray] = field(default_factory=dict)


def _describe_target(target: Target) -> Any:
    if callable(target):
        return getattr(target, "__name__", type(target).__name__)
    return int(target)


def explain(
    model: torch.nn.Module,
    tensor: Any,
    *,
    method: str,
    target: Target,
    reference_volume: Volume,
    layer: Any = None,
    lesion_mask: np.ndarray | None = None,
    pointing_tolerance: int = 0,
    faithfulness: bool = True,
    faithfulness_steps: int = 20,
    faithfulness_random: int = 3,
    faithfulness_seed: int = 0,
    faithfulness_baseline: str | float = "zeros",
    squash: str | None = None,
    model_name: str | None = None,
    model_version: str | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    clock: Callable[[], datetime] | None = None,
    attribute: Callable[..., Any] | None = None,
    **params: Any,
) -> Explanation:
    """Explain ``target`` for one input with ``method`` and measure the map's faithfulness.

    Parameters
    ----------
    model
        Any module on ``(1, 1, D, H, W)``; never mutated (hooks scoped, modes restored).
    tensor
        The preprocessed input ``(1, 1, D, H, W)``.
    method
        ``"gradcam"``, ``"ig"`` (integrated gradients) or ``"occlusion"``.
    target
        Class index (classifier) or callable ``output -> (N,)``, e.g. :func:`region_target`.
    reference_volume
        The preprocessed-grid Volume whose array shape is ``(D, H, W)``; gives the geometry.
    layer
        Grad-CAM layer (module or dotted name); default ``model.gradcam_layer``.
    lesion_mask
        Known lesion ``(D, H, W)``: enables the pointing game.
    faithfulness
        Compute deletion / insertion AUC against ``faithfulness_random`` random orders.
    attribute
        Another method (a plugin's explainer): ``attribute(model, x, target, *, progress,
        cancel) -> (D, H, W)`` array, named ``method``; faithfulness is measured the same way.
    **params
        Method parameters: IG ``n_steps``, ``baseline``, ``internal_batch_size``; occlusion
        ``patch``, ``stride``, ``baseline``, ``batch_size``.
    """
    if attribute is not None and method in METHODS:
        raise ExplainError(f"{method!r} is a built-in method; name the plugin's method apart")
    if attribute is None and method not in METHODS:
        raise ExplainError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    unknown = set(params) - set(_PARAMS.get(method, {}))
    if unknown:
        raise ExplainError(f"{method} takes no parameter(s) {', '.join(sorted(unknown))}")
    x = prepare_input(model, tensor)
    if x.shape[0] != 1 or tuple(x.shape[2:]) != reference_volume.shape:
        raise ExplainError(
            f"explain needs one input (1, C, D, H, W) on the reference grid "
            f"{reference_volume.shape}, got {tuple(x.shape)}"
        )
    settings = {**_PARAMS.get(method, {}), **params}
    t0 = time.perf_counter()
    provenance_layer = None
    if method == "gradcam":
        module = resolve_layer(model, layer)
        provenance_layer = layer_name(model, module)
        maps = gradcam(model, x, target, layer=module, progress=progress, cancel=cancel)
    elif attribute is not None:
        maps = _custom_maps(attribute, model, x, target, progress, cancel)
    elif method == "ig":
        maps = integrated_gradients(model, x, target, progress=progress, cancel=cancel, **settings)
    else:
        maps = occlusion(model, x, target, progress=progress, cancel=cancel, **settings)
    elapsed = time.perf_counter() - t0
    attribution = maps[0].astype(np.float32, copy=False)

    metrics: Faithfulness | None = None
    curves: dict[str, np.ndarray] = {}
    if faithfulness:
        check_cancel(cancel)
        with eval_mode(model):
            metrics, curves = deletion_insertion(
                scores(model, target),
                x,
                attribution,
                baseline=baseline_like(x, faithfulness_baseline),
                n_steps=faithfulness_steps,
                n_random=faithfulness_random,
                seed=faithfulness_seed,
                squash=squash,
                progress=progress,
                cancel=cancel,
            )
    if lesion_mask is not None:
        hit = pointing_game(attribution, lesion_mask, tolerance=pointing_tolerance)
        if metrics is None:
            metrics = Faithfulness(*(float("nan"),) * 4, 0, 0)
        metrics = _with_pointing(metrics, hit, pointing_tolerance)

    now = (clock or (lambda: datetime.now(UTC)))()
    provenance = {
        "kind": "explanation",
        "method": method,
        "parameters": dict(settings),
        "model_name": model_name or type(model).__name__,
        "model_version": model_version,
        "layer": provenance_layer,
        "target": _describe_target(target),
        "created": now.isoformat(),
        "seconds": elapsed,
        "faithfulness": None if metrics is None else metrics.as_dict(),
    }
    volume = reference_volume.with_array(
        attribution,
        metadata={**provenance, "units": "attribution", "source": dict(reference_volume.metadata)},
        warnings=(),
    )
    return Explanation(volume, method, dict(settings), metrics, provenance, curves)


def _custom_maps(
    attribute: Callable[..., Any],
    model: Any,
    x: Any,
    target: Target,
    progress: ProgressFn | None,
    cancel: CancelToken | None,
) -> np.ndarray:
    with eval_mode(model):
        values = np.asarray(attribute(model, x, target, progress=progress, cancel=cancel))
    spatial = tuple(x.shape[2:])
    if values.shape == spatial:
        values = values[None]
    if values.shape != (1, *spatial) or not np.isfinite(values).all():
        raise ExplainError(
            f"the explainer returned an array of shape {values.shape} (or non-finite values); "
            f"it must return finite values of shape {spatial}"
        )
    return values.astype(np.float32, copy=False)


def _with_pointing(metrics: Faithfulness, hit: bool, tolerance: int) -> Faithfulness:
    from dataclasses import replace

    return replace(metrics, pointing_game=hit, pointing_tolerance=tolerance)

"""Integrated gradients and occlusion (captum), with progress and cancel.

captum calls the forward function once per internal batch (IG) or per batch of occluded copies
(occlusion); the wrapper here counts those calls for progress and checks the cancel token before
each, so a cancel stops the work within one batch. Gradients are taken with
``torch.autograd.grad`` by captum, so no parameter's ``.grad`` is touched.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from workstation.core.tasks import CancelToken, ProgressFn, check_cancel, throttled
from workstation.explain._common import ExplainError, Target, prepare_input, scores
from workstation.inference.modes import eval_mode

if TYPE_CHECKING:
    import torch

__all__ = ["baseline_like", "integrated_gradients", "occlusion"]

Baseline = str | float


def baseline_like(x: torch.Tensor, baseline: Baseline = "zeros") -> torch.Tensor:
    """The reference input: ``"zeros"``, ``"min"`` (each sample's minimum, i.e. the normalised
    background) or a constant."""
    import torch

    if isinstance(baseline, str):
        if baseline == "zeros":
            return torch.zeros_like(x)
        if baseline == "min":
            low = x.flatten(1).amin(dim=1).view(-1, *([1] * (x.ndim - 1)))
            return low.expand_as(x).clone()
        raise ExplainError(f"unknown baseline {baseline!r}: use 'zeros', 'min' or a number")
    return torch.full_like(x, float(baseline))


def _counted(
    forward: Callable[[torch.Tensor], torch.Tensor],
    total: int,
    label: str,
    progress: ProgressFn | None,
    cancel: CancelToken | None,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``forward`` that reports progress per call and raises ``Cancelled`` when asked to stop."""
    report = throttled(progress)
    calls = [0]

    def wrapped(x: torch.Tensor) -> torch.Tensor:
        check_cancel(cancel)
        out = forward(x)
        calls[0] += 1
        report(min(calls[0], total - 1), total, label)
        return out

    report(0, total, label)
    return wrapped


def integrated_gradients(
    model: torch.nn.Module,
    tensor: Any,
    target: Target,
    *,
    n_steps: int = 32,
    baseline: Baseline = "zeros",
    internal_batch_size: int = 8,
    method: str = "gausslegendre",
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> np.ndarray:
    """Integrated gradients of ``target`` from ``baseline`` to the input, ``(N, D, H, W)``.

    The map is signed (positive: evidence for the target) and in the target's units; its sum
    approximates ``score(input) - score(baseline)``.
    """
    from captum.attr import IntegratedGradients

    if n_steps < 1 or internal_batch_size < 1:
        raise ExplainError("n_steps and internal_batch_size must be at least 1")
    check_cancel(cancel)
    x = prepare_input(model, tensor)
    ref = baseline_like(x, baseline)
    total = math.ceil(n_steps * x.shape[0] / internal_batch_size) + 1
    forward = _counted(scores(model, target), total, "integrated gradients", progress, cancel)
    with eval_mode(model):
        attr = IntegratedGradients(forward).attribute(
            x,
            baselines=ref,
            n_steps=n_steps,
            method=method,
            internal_batch_size=internal_batch_size,
        )
    throttled(progress)(total, total, "integrated gradients: done")
    return attr.detach()[:, 0].float().cpu().numpy()


def _window_count(shape: Sequence[int], patch: Sequence[int], stride: Sequence[int]) -> int:
    return math.prod((s - p) // st + 1 for s, p, st in zip(shape, patch, stride, strict=True))


def _triple(value: int | Sequence[int], name: str) -> tuple[int, int, int]:
    values = (value,) * 3 if isinstance(value, (int, np.integer)) else tuple(value)
    if len(values) != 3 or any(int(v) < 1 for v in values):
        raise ExplainError(f"{name} must be a positive int or three of them, got {value!r}")
    return (int(values[0]), int(values[1]), int(values[2]))


def occlusion(
    model: torch.nn.Module,
    tensor: Any,
    target: Target,
    *,
    patch: int | Sequence[int] = 8,
    stride: int | Sequence[int] = 4,
    baseline: Baseline = "zeros",
    batch_size: int = 16,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> np.ndarray:
    """Occlusion: the score drop when a sliding 3D ``patch`` is set to ``baseline``.

    Each voxel gets the mean drop over the windows that cover it, ``(N, D, H, W)``; positive
    where hiding the voxel lowers the target score. ``batch_size`` occluded copies are scored
    per forward pass.
    """
    import torch
    from captum.attr import Occlusion

    x = prepare_input(model, tensor)
    patch3 = _triple(patch, "patch")
    stride3 = _triple(stride, "stride")
    if any(p > s for p, s in zip(patch3, x.shape[2:], strict=True)):
        raise ExplainError(f"patch {patch3} is larger than the input {tuple(x.shape[2:])}")
    check_cancel(cancel)
    windows = _window_count(x.shape[2:], patch3, stride3)
    total = math.ceil(windows / batch_size) + 1
    forward = _counted(scores(model, target), total, "occlusion", progress, cancel)
    with eval_mode(model), torch.no_grad():
        attr = Occlusion(forward).attribute(
            x,
            sliding_window_shapes=(1, *patch3),
            strides=(1, *stride3),
            baselines=baseline_like(x, baseline),
            perturbations_per_eval=batch_size,
        )
    throttled(progress)(total, total, "occlusion: done")
    return attr.detach()[:, 0].float().cpu().numpy()

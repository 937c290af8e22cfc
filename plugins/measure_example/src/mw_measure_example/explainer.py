"""Gradient × input: a simple saliency map, offered beside the workstation's own methods.

For each input voxel, the attribution is ``x · ∂score/∂x``: how much the target score would
change, to first order, if that voxel were set to zero. For a linear model it is exact: the
attributions sum to ``score(x) − score(0)``.

torch is imported inside :meth:`GradientTimesInput.attribute`, so listing the plugin (or opening
its panel) never loads it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["GradientTimesInput"]


class GradientTimesInput:
    """The explainer contribution (entry point ``medical_workstation.explainers``)."""

    title = "Gradient × input"

    def attribute(
        self,
        model: Any,
        tensor: Any,
        target: int | Callable[[Any], Any],
        *,
        progress: Callable[[int, int, str], None] | None = None,
        cancel: Any = None,
    ) -> np.ndarray:
        """A (D, H, W) float32 map for an input of shape (1, C, D, H, W).

        ``target`` is an output index (a class of a classifier output (N, K), or a channel of a
        segmentation output (N, C, D, H, W), summed over its voxels), or a callable that maps
        the model output to one score per batch item.
        """
        import torch

        if progress is not None:
            progress(0, 1, "gradient × input")
        if cancel is not None:
            cancel.raise_if_cancelled()

        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        x = torch.as_tensor(tensor).detach().to(device=device, dtype=torch.float32).clone()
        if x.ndim != 5:
            raise ValueError(f"expected an input of shape (N, C, D, H, W), got {tuple(x.shape)}")
        x.requires_grad_(True)
        with torch.enable_grad():
            score = _score(model(x), target)
            if score.ndim != 1 or score.shape[0] != x.shape[0]:
                raise ValueError(f"the target must give one score per sample, got {score.shape}")
            (gradient,) = torch.autograd.grad(score.sum(), x)

        if cancel is not None:
            cancel.raise_if_cancelled()
        attribution = (gradient * x).detach()[0].sum(dim=0)  # first sample, channels summed
        if progress is not None:
            progress(1, 1, "gradient × input")
        return attribution.cpu().numpy().astype(np.float32)


def _score(output: Any, target: int | Callable[[Any], Any]) -> Any:
    """One score per batch item: ``(N,)``."""
    if callable(target):
        return target(output)
    if isinstance(target, bool) or not isinstance(target, (int, np.integer)):
        raise TypeError(f"target must be an output index or a callable, got {target!r}")
    index = int(target)
    if output.ndim < 2 or not 0 <= index < output.shape[1]:
        raise ValueError(
            f"output index {index} is outside an output of shape {tuple(output.shape)}"
        )
    return output[:, index].reshape(output.shape[0], -1).sum(dim=1)

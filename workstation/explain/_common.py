"""Plumbing shared by the explainers: targets, scoped eval mode, errors.

Errors::

    WorkstationError
    └── ExplainError            bad method, target, layer or shapes (workstation.explain)

A *target* turns the model output into one score per sample, shape ``(N,)``:

- an ``int`` class index for a classifier with output ``(N, K)`` (``K == 1`` is a single logit);
- a callable ``output -> (N,)`` tensor, e.g. :func:`region_target` for a segmentation output
  ``(N, C, D, H, W)`` (the sum of the lesion-class logits inside a region).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from workstation.core.errors import WorkstationError

if TYPE_CHECKING:
    import torch

TargetFn = Callable[["torch.Tensor"], "torch.Tensor"]
Target = int | TargetFn


class ExplainError(WorkstationError):
    """An explanation could not be computed (bad method, target, layer or input shape)."""


def target_fn(target: Target) -> TargetFn:
    """A callable ``model output -> (N,)`` score for ``target`` (see the module docstring)."""
    if callable(target):
        return target
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        index = int(target)

        def class_score(output: torch.Tensor) -> torch.Tensor:
            if output.ndim != 2:
                raise ExplainError(
                    f"a class-index target needs a classifier output (N, K), got "
                    f"{tuple(output.shape)}; pass region_target(...) for segmentation"
                )
            if not 0 <= index < output.shape[1]:
                raise ExplainError(f"class {index} is outside the {output.shape[1]} outputs")
            return output[:, index]

        return class_score
    raise ExplainError(f"target must be a class index or a callable, got {target!r}")


def region_target(mask: np.ndarray | None = None, classes: Sequence[int] = (1,)) -> TargetFn:
    """Segmentation target: the sum of the ``classes`` logits inside ``mask`` (all voxels if None).

    ``mask`` is a ``(D, H, W)`` boolean array on the model's output grid.
    """
    channels = [int(c) for c in classes]

    def score(output: torch.Tensor) -> torch.Tensor:
        import torch

        if output.ndim != 5:
            raise ExplainError(f"region_target needs (N, C, D, H, W), got {tuple(output.shape)}")
        logits = output[:, channels].sum(dim=1)
        if mask is not None:
            weight = torch.as_tensor(np.asarray(mask, dtype=bool), device=output.device)
            if weight.shape != logits.shape[1:]:
                raise ExplainError(
                    f"region mask {tuple(weight.shape)} differs from output {logits.shape[1:]}"
                )
            logits = logits * weight.to(logits.dtype)
        return logits.flatten(1).sum(dim=1)

    return score


def scores(model: torch.nn.Module, target: Target) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x -> target score (N,)``: the forward function handed to captum and the metrics."""
    fn = target_fn(target)

    def forward(x: torch.Tensor) -> torch.Tensor:
        out = fn(model(x))
        if out.ndim != 1 or out.shape[0] != x.shape[0]:
            raise ExplainError(f"the target must give one score per sample, got {out.shape}")
        return out

    return forward


def prepare_input(model: torch.nn.Module, tensor: Any) -> torch.Tensor:
    """A detached float copy of ``tensor`` (N, 1, D, H, W) on the model's device."""
    import torch

    x = torch.as_tensor(tensor)
    if x.ndim != 5:
        raise ExplainError(f"input must be (N, C, D, H, W), got shape {tuple(x.shape)}")
    param = next(iter(model.parameters()), None)
    device = param.device if param is not None else x.device
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    return x.detach().to(device=device, dtype=dtype).clone()


def resolve_layer(model: torch.nn.Module, layer: Any = None) -> torch.nn.Module:
    """``layer`` as a module: given, a dotted name, ``model.gradcam_layer``, or the last Conv3d."""
    import torch

    if isinstance(layer, torch.nn.Module):
        return layer
    if isinstance(layer, str):
        try:
            return model.get_submodule(layer)
        except AttributeError as e:
            raise ExplainError(f"the model has no layer {layer!r}") from e
    if layer is not None:
        raise ExplainError(f"layer must be a module or a name, got {layer!r}")
    found = getattr(model, "gradcam_layer", None)
    if isinstance(found, torch.nn.Module):
        return found
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv3d)]
    if not convs:
        raise ExplainError("no layer given and the model has no gradcam_layer or Conv3d")
    return convs[-1]


def layer_name(model: torch.nn.Module, layer: torch.nn.Module) -> str:
    """The dotted name of ``layer`` inside ``model`` (``""`` when it is the model itself)."""
    for name, module in model.named_modules():
        if module is layer:
            return name
    return type(layer).__name__

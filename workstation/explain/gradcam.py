"""3D Grad-CAM with scoped hooks: the model is never mutated.

A forward hook on the chosen layer captures its activation ``A`` as a fresh leaf that requires
grad; only the layers *after* it record a graph, so the backward pass is the head of the network.
``torch.autograd.grad`` gives ``dS/dA`` without touching any parameter's ``.grad``. The hook is
registered in a context manager and removed on exit, exceptions included.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from workstation.core.tasks import CancelToken, ProgressFn, check_cancel, throttled
from workstation.explain._common import (
    ExplainError,
    Target,
    prepare_input,
    resolve_layer,
    scores,
)
from workstation.inference.modes import eval_mode

if TYPE_CHECKING:
    import torch

__all__ = ["capture_activation", "gradcam"]


@contextmanager
def capture_activation(layer: torch.nn.Module) -> Iterator[dict[str, Any]]:
    """Hook ``layer`` so its output becomes a graph leaf; yields ``{"activation": tensor}``.

    The forward pass should run under ``torch.no_grad()``: the hook turns grad mode on from
    this layer onward (grad mode is thread-local and is restored by the caller's context).
    """
    import torch

    store: dict[str, Any] = {}

    def hook(_module: torch.nn.Module, _inputs: Any, output: Any) -> Any:
        if not isinstance(output, torch.Tensor):
            raise ExplainError(f"Grad-CAM needs a layer that returns a tensor, got {type(output)}")
        torch.set_grad_enabled(True)
        leaf = output.detach().requires_grad_(True)
        store["activation"] = leaf
        return leaf

    handle = layer.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


def gradcam(
    model: torch.nn.Module,
    tensor: Any,
    target: Target,
    *,
    layer: Any = None,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> np.ndarray:
    """Grad-CAM of ``target`` on ``layer``, upsampled (trilinear) to the input, in [0, 1].

    Parameters
    ----------
    model
        Any module on ``(N, 1, D, H, W)`` input.
    tensor
        The input, ``(N, 1, D, H, W)``; it is copied, never modified.
    target
        Class index or callable ``output -> (N,)`` (see :mod:`workstation.explain._common`).
    layer
        Module or dotted name; default ``model.gradcam_layer`` or the last ``Conv3d``.

    Returns
    -------
    numpy.ndarray
        ``(N, D, H, W)`` float32 maps, each normalised to [0, 1] (all zeros when the CAM is).
    """
    import torch
    import torch.nn.functional as F

    report = throttled(progress)
    check_cancel(cancel)
    report(0, 2, "Grad-CAM: forward")
    x = prepare_input(model, tensor)
    module = resolve_layer(model, layer)
    forward = scores(model, target)
    with eval_mode(model), capture_activation(module) as store, torch.no_grad():
        score = forward(x)
        if "activation" not in store:
            raise ExplainError("the Grad-CAM layer was not called in the forward pass")
        activation = store["activation"]
        if not score.requires_grad:
            raise ExplainError("the target score does not depend on the Grad-CAM layer")
        check_cancel(cancel)
        report(1, 2, "Grad-CAM: backward")
        (grad,) = torch.autograd.grad(score.sum(), activation)
    if activation.ndim != 5:
        raise ExplainError(f"Grad-CAM needs a 3D feature map, got {tuple(activation.shape)}")
    with torch.no_grad():
        weights = grad.mean(dim=(2, 3, 4), keepdim=True)
        cam = torch.relu((weights * activation.detach()).sum(dim=1, keepdim=True))
        if cam.shape[2:] != x.shape[2:]:
            cam = F.interpolate(cam, size=x.shape[2:], mode="trilinear", align_corners=False)
        cam = torch.relu(cam)[:, 0]
        peak = cam.flatten(1).amax(dim=1).clamp_min(torch.finfo(cam.dtype).tiny)
        cam = cam / peak.view(-1, 1, 1, 1)
    report(2, 2, "Grad-CAM: done")
    return cam.float().cpu().numpy()

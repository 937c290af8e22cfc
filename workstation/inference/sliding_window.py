"""Sliding-window inference over volumes larger than a network's patch.

Windows of ``patch_size`` tile the volume with ``overlap``; each window's output is weighted by
a Gaussian importance map (centre 1, borders small) and the weighted sum is divided by the summed
weights, as in nnU-Net and MONAI's ``SlidingWindowInferer`` (re-implemented here: MONAI is not a
dependency). ``margin`` optionally drops each window's inner border (where zero padding makes a
conv net's output differ from a whole-volume pass) so stitched output equals one big forward
pass exactly; the step shrinks to keep every voxel covered.

Windows run in batches on the compute device; the sums accumulate on the CPU so a large volume
never has to fit on the GPU. Between batches ``cancel`` is checked (so with ``batch_size=1`` a
cancel stops within one window) and ``progress(windows_done, windows_total, message)`` is
reported. A batch that runs out of device memory is retried with half the batch, and at batch 1
the network moves to the CPU (with a logged, user-readable message); running out on the CPU
raises :class:`~workstation.inference.device.InferenceError`.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from workstation.core.tasks import CancelToken, ProgressFn, check_cancel, throttled
from workstation.inference.device import (
    InferenceError,
    autocast_context,
    empty_cache,
    is_out_of_memory,
)

if TYPE_CHECKING:
    import torch

__all__ = ["WindowRun", "gaussian_importance", "sliding_window_inference", "window_starts"]

log = logging.getLogger(__name__)


@dataclass
class WindowRun:
    """What happened during a run: windows, final batch size and device, fallback messages."""

    windows: int = 0
    batch_size: int = 0
    device: str = ""
    messages: list[str] = field(default_factory=list)


def gaussian_importance(
    patch_size: Sequence[int], sigma_scale: float = 0.125, floor: float = 1e-3
) -> np.ndarray:
    """Separable Gaussian weights over a patch: 1 at the centre, at least ``floor`` anywhere."""
    weights = np.ones((), dtype=np.float64)
    for n in patch_size:
        x = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
        sigma = max(n * sigma_scale, 1e-6)
        weights = np.multiply.outer(weights, np.exp(-0.5 * (x / sigma) ** 2))
    weights /= weights.max()
    return np.maximum(weights, floor).astype(np.float32)


def window_starts(size: int, patch: int, step: int) -> list[int]:
    """Window starts along one axis: every ``step``, the last window flush with the end."""
    if size <= patch:
        return [0]
    starts = list(range(0, size - patch + 1, max(1, step)))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return starts


def _window_weights(
    importance: torch.Tensor,
    start: Sequence[int],
    patch: Sequence[int],
    size: Sequence[int],
    margin: int,
) -> torch.Tensor:
    """The importance map with the inner ``margin`` of the window zeroed (not at volume edges)."""
    if margin <= 0:
        return importance
    w = importance.clone()
    for axis, (s, p, n) in enumerate(zip(start, patch, size, strict=True)):
        index = [slice(None)] * 3
        if s > 0:
            index[axis] = slice(0, margin)
            w[tuple(index)] = 0
        if s + p < n:
            index[axis] = slice(p - margin, p)
            w[tuple(index)] = 0
    return w


def sliding_window_inference(
    inputs: torch.Tensor,
    network: torch.nn.Module,
    patch_size: Sequence[int],
    *,
    overlap: float = 0.5,
    batch_size: int = 2,
    device: str | torch.device = "cpu",
    mode: str = "gaussian",
    margin: int = 0,
    pad_value: float = 0.0,
    amp: bool = True,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    run: WindowRun | None = None,
) -> torch.Tensor:
    """Stitched network output over ``inputs`` from overlapping windows.

    Parameters
    ----------
    inputs
        ``(N, C_in, D, H, W)`` float tensor (kept where it is; windows are copied to ``device``).
    network
        Maps ``(B, C_in, d, h, w)`` to ``(B, C_out, d, h, w)``; called in batches of windows.
    patch_size
        ``(d, h, w)`` window size; a volume smaller than it is padded with ``pad_value``.
    overlap
        Fraction of a window shared with its neighbour, in ``[0, 1)``.
    batch_size
        Windows per forward pass (halved on out-of-memory).
    device
        Where the network runs; it is moved there first.
    mode
        ``"gaussian"`` importance weighting or ``"constant"`` (plain average).
    margin
        Voxels dropped at each window's inner border (use the network's receptive-field radius
        for output identical to a whole-volume pass).
    amp
        Mixed precision on CUDA (:func:`~workstation.inference.device.autocast_context`).
    progress, cancel
        Reported / checked between batches; a cancel raises
        :class:`~workstation.core.errors.Cancelled`.
    run
        Filled in with what happened (windows run, final batch size and device, fallbacks).

    Returns
    -------
    torch.Tensor
        ``(N, C_out, D, H, W)`` float32 on the CPU.
    """
    import torch

    if inputs.ndim != 5:
        raise InferenceError(f"expected inputs (N, C, D, H, W), got shape {tuple(inputs.shape)}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if mode not in ("gaussian", "constant"):
        raise ValueError(f"mode must be 'gaussian' or 'constant', got {mode!r}")
    patch = tuple(int(p) for p in patch_size)
    if len(patch) != 3 or min(patch) < 1 or any(p <= 2 * margin for p in patch):
        raise ValueError(f"bad patch size {patch_size} for margin {margin}")
    run = run if run is not None else WindowRun()
    report = throttled(progress)

    size = tuple(int(s) for s in inputs.shape[2:])
    padded_size = tuple(max(s, p) for s, p in zip(size, patch, strict=True))
    if padded_size != size:
        pads: list[int] = []
        for s, p in reversed(list(zip(size, padded_size, strict=True))):
            pads += [(p - s) // 2, p - s - (p - s) // 2]
        inputs = torch.nn.functional.pad(inputs, pads, value=pad_value)
    steps = [max(1, min(int(p * (1 - overlap)), p - 2 * margin)) for p in patch]
    starts_per_axis = [
        window_starts(n, p, st) for n, p, st in zip(padded_size, patch, steps, strict=True)
    ]
    windows = [
        (n, start) for n in range(inputs.shape[0]) for start in itertools.product(*starts_per_axis)
    ]
    importance = (
        torch.from_numpy(gaussian_importance(patch))
        if mode == "gaussian"
        else torch.ones(patch, dtype=torch.float32)
    )

    current = torch.device(device)
    network.to(current)
    total, done = len(windows), 0
    batch = max(1, int(batch_size))
    output: torch.Tensor | None = None
    norm = torch.zeros((1, 1, *padded_size), dtype=torch.float32)
    report(0, total, f"0 of {total} windows")
    while done < total:
        check_cancel(cancel)
        chunk = windows[done : done + batch]
        tiles = torch.cat(
            [
                inputs[n : n + 1, :, z : z + patch[0], y : y + patch[1], x : x + patch[2]]
                for n, (z, y, x) in chunk
            ]
        )
        try:
            with autocast_context(current, enabled=amp):
                result = network(tiles.to(current, dtype=torch.float32))
            result = result.float().to("cpu")
        except (RuntimeError, MemoryError) as e:
            if not is_out_of_memory(e):
                raise
            batch, current = _fall_back(network, current, batch, run)
            continue
        if result.ndim != 5 or tuple(result.shape[2:]) != patch:
            raise InferenceError(
                f"the network returned shape {tuple(result.shape)} for windows "
                f"{tuple(tiles.shape)}; a segmentation network must keep the spatial size"
            )
        if output is None:
            output = torch.zeros(
                (inputs.shape[0], result.shape[1], *padded_size), dtype=torch.float32
            )
        for b, (n, start) in enumerate(chunk):
            w = _window_weights(importance, start, patch, padded_size, margin)
            region = tuple(slice(s, s + p) for s, p in zip(start, patch, strict=True))
            output[(n, slice(None), *region)] += result[b] * w
            if n == 0:
                norm[(0, 0, *region)] += w
        done += len(chunk)
        run.windows = done
        report(done, total, f"{done} of {total} windows")
    assert output is not None  # at least one window always runs
    run.batch_size, run.device = batch, str(current)
    output /= norm.clamp_min(1e-12)
    crop = tuple(
        slice((p - s) // 2, (p - s) // 2 + s) for s, p in zip(size, padded_size, strict=True)
    )
    return output[(slice(None), slice(None), *crop)].contiguous()


def _fall_back(
    network: torch.nn.Module, current: torch.device, batch: int, run: WindowRun
) -> tuple[int, torch.device]:
    """After out-of-memory: a smaller batch, then the CPU; on the CPU, give up with advice."""
    import torch

    empty_cache(current)
    if batch > 1:
        message = (
            f"out of memory on {current} with {batch} windows a batch; retrying with {batch // 2}"
        )
        log.warning(message)
        run.messages.append(message)
        return batch // 2, current
    if current.type != "cpu":
        message = (
            f"out of memory on {current} even one window at a time; continuing on the CPU "
            "(slower). Close other GPU programs or use a smaller patch size to stay on the GPU."
        )
        log.warning(message)
        run.messages.append(message)
        network.to("cpu")
        return 1, torch.device("cpu")
    raise InferenceError(
        "out of memory on the CPU with one window at a time; free memory or use a model with "
        "a smaller patch size"
    )

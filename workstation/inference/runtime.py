"""Run a model on a Volume: QC, preprocessing, (sliding-window) inference, mapping back.

:func:`run_segmentation` and :func:`run_classification` are the long operations of the
inference package, in the project's ``f(inputs, *, progress, cancel)`` shape. Both choose a
device (:mod:`~workstation.inference.device`), run pre-flight QC (:mod:`~workstation.inference.qc`;
its warnings travel with the result), preprocess to the model's grid
(:mod:`~workstation.inference.preprocess`), run the network in eval mode under
``torch.inference_mode()`` (mixed precision on CUDA; out of memory → smaller batch → CPU) and
return results on the input's grid with provenance: model name and version, device and why,
time, input spec, windows and any fallbacks.

The model's ``training`` flag is restored afterwards; its device may change (it is moved to the
device chosen, and to the CPU after a GPU ran out of memory).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from workstation.core.tasks import CancelToken, ProgressFn, check_cancel
from workstation.core.volume import Volume
from workstation.inference.device import (
    DeviceChoice,
    InferenceError,
    autocast_context,
    choose_device,
    empty_cache,
    is_out_of_memory,
)
from workstation.inference.modes import eval_mode
from workstation.inference.preprocess import InputSpec, Prepared, preprocess, to_original
from workstation.inference.qc import TrainingStats, preflight_qc
from workstation.inference.sliding_window import WindowRun, sliding_window_inference

if TYPE_CHECKING:
    import torch

__all__ = ["Classification", "run_classification", "run_segmentation"]

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Classification:
    """A classifier's output: class probabilities, QC warnings and provenance."""

    probabilities: np.ndarray
    warnings: tuple[str, ...] = ()
    provenance: Mapping[str, Any] = field(default_factory=dict)


def _resolve_device(device: DeviceChoice | str | None) -> DeviceChoice:
    if isinstance(device, DeviceChoice):
        return device
    return choose_device(device or "auto")


def _provenance(
    choice: DeviceChoice,
    spec: InputSpec,
    volume: Volume,
    model_name: str | None,
    model_version: str | None,
    clock: Clock | None,
    started: float,
    **extra: Any,
) -> dict[str, Any]:
    now = clock() if clock is not None else datetime.now(UTC)
    return {
        "model": model_name,
        "model_version": model_version,
        "device": choice.device,
        "device_name": choice.name,
        "device_reason": choice.reason,
        "created": now.isoformat(),
        "elapsed_s": round(time.perf_counter() - started, 3),
        "input_spec": spec.to_dict(),
        "source_series_uid": volume.metadata.get("series_uid"),
        **extra,
    }


def run_segmentation(
    model: torch.nn.Module,
    volume: Volume,
    spec: InputSpec,
    *,
    device: DeviceChoice | str | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    patch_size: Sequence[int] = (96, 96, 96),
    overlap: float = 0.5,
    batch_size: int = 2,
    margin: int = 0,
    amp: bool = True,
    stats: TrainingStats | None = None,
    model_name: str | None = None,
    model_version: str | None = None,
    clock: Clock | None = None,
) -> tuple[Volume, Volume]:
    """Segment ``volume``; probabilities and labels on its grid.

    Parameters
    ----------
    model
        ``(N, 1, D, H, W) -> (N, C, D, H, W)`` logits: ``C ≥ 2`` softmax classes (0 is
        background) or ``C = 1`` sigmoid foreground.
    volume, spec
        The input and the model's input spec.
    device
        A :class:`DeviceChoice`, a preference (``"auto"``, ``"cuda"``, ``"cpu"``) or ``None``
        (auto).
    patch_size, overlap, batch_size, margin, amp
        Sliding-window settings (see
        :func:`~workstation.inference.sliding_window.sliding_window_inference`).
    stats
        Training statistics for pre-flight QC.
    model_name, model_version, clock
        Provenance (``clock`` returns the creation time; UTC now by default).

    Returns
    -------
    (Volume, Volume)
        Foreground probability (float32; ``1 - P(background)`` for ``C ≥ 2``) and labels
        (uint8 argmax, which for ``C = 2`` is ``p > 0.5``; ``p ≥ 0.5`` for ``C = 1``), both
        with the input's exact geometry, its QC warnings, and ``metadata["provenance"]``.
    """
    import torch

    started = time.perf_counter()
    report = progress or (lambda done, total, message="": None)
    choice = _resolve_device(device)
    report(0, 1, "checking the input")
    warnings = tuple(preflight_qc(volume, spec, stats))
    check_cancel(cancel)
    report(0, 1, "preprocessing")
    prepared = preprocess(volume, spec)
    check_cancel(cancel)
    inputs = torch.from_numpy(prepared.array)[None, None]
    run = WindowRun()

    def window_progress(done: int, total: int, message: str = "") -> None:
        report(done, total + 1, message)

    with eval_mode(model), torch.inference_mode():
        logits = sliding_window_inference(
            inputs,
            model,
            patch_size,
            overlap=overlap,
            batch_size=batch_size,
            device=choice.torch_device(),
            margin=margin,
            pad_value=prepared.pad_value,
            amp=amp,
            progress=window_progress,
            cancel=cancel,
            run=run,
        )
        probs = torch.softmax(logits, 1) if logits.shape[1] > 1 else torch.sigmoid(logits)
    check_cancel(cancel)
    classes = int(probs.shape[1])
    if classes > 2:
        mapped = to_original(probs[0].numpy(), prepared)
        foreground = (1.0 - mapped[0]).astype(np.float32)
        labels = np.argmax(mapped, axis=0).astype(np.uint8)
    else:  # one map to resample: P(lesion); argmax of two classes is P(lesion) > 0.5
        foreground = to_original(probs[0, -1].numpy(), prepared).astype(np.float32)
        threshold = foreground > 0.5 if classes == 2 else foreground >= 0.5
        labels = threshold.astype(np.uint8)
    np.clip(foreground, 0.0, 1.0, out=foreground)
    provenance = _provenance(
        choice,
        spec,
        volume,
        model_name,
        model_version,
        clock,
        started,
        task="segmentation",
        classes=classes,
        patch_size=[int(p) for p in patch_size],
        overlap=overlap,
        batch_size=run.batch_size,
        windows=run.windows,
        ran_on=run.device,
        fallbacks=list(run.messages),
    )
    windows = max(run.windows, 1)
    report(windows + 1, windows + 1, "done")
    geometry = {"warnings": warnings}
    prob_volume = volume.with_array(
        foreground, metadata={"kind": "probability", "provenance": provenance}, **geometry
    )
    label_volume = volume.with_array(
        labels, metadata={"kind": "labels", "provenance": provenance}, **geometry
    )
    return prob_volume, label_volume


def _fit(array: np.ndarray, shape: Sequence[int], value: float) -> np.ndarray:
    """Centre-crop / centre-pad ``array`` to ``shape``."""
    out = np.full(tuple(int(s) for s in shape), value, dtype=array.dtype)
    src, dst = [], []
    for n, m in zip(array.shape, out.shape, strict=True):
        if n >= m:
            a = (n - m) // 2
            src.append(slice(a, a + m))
            dst.append(slice(0, m))
        else:
            a = (m - n) // 2
            src.append(slice(0, n))
            dst.append(slice(a, a + n))
    out[tuple(dst)] = array[tuple(src)]
    return out


def _classify(
    model: torch.nn.Module, tensor: torch.Tensor, choice: DeviceChoice, amp: bool
) -> tuple[torch.Tensor, str, list[str]]:
    """Whole-volume forward pass; on out-of-memory on an accelerator, again on the CPU."""
    import torch

    device = choice.torch_device()
    messages: list[str] = []
    try:
        return _forward(model, tensor, device, amp), str(device), messages
    except (RuntimeError, MemoryError) as e:
        if not is_out_of_memory(e) or device.type == "cpu":
            _raise_oom(e)
            raise
        empty_cache(device)
        messages.append(f"out of memory on {device}; classified on the CPU instead (slower)")
    cpu = torch.device("cpu")
    try:
        return _forward(model, tensor, cpu, amp), str(cpu), messages
    except (RuntimeError, MemoryError) as e:
        _raise_oom(e)
        raise


def _forward(
    model: torch.nn.Module, tensor: torch.Tensor, device: torch.device, amp: bool
) -> torch.Tensor:
    model.to(device)
    with autocast_context(device, enabled=amp):
        return model(tensor.to(device)).float().cpu()


def _raise_oom(error: BaseException) -> None:
    """Translate an out-of-memory error that no fallback can handle."""
    if is_out_of_memory(error):
        raise InferenceError(
            "out of memory classifying this volume on the CPU; free memory"
        ) from error


def run_classification(
    model: torch.nn.Module,
    volume: Volume,
    spec: InputSpec,
    *,
    device: DeviceChoice | str | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    patch_size: Sequence[int] | None = None,
    amp: bool = True,
    stats: TrainingStats | None = None,
    model_name: str | None = None,
    model_version: str | None = None,
    clock: Clock | None = None,
) -> Classification:
    """Classify ``volume``: class probabilities with QC warnings and provenance.

    ``model`` maps ``(N, 1, D, H, W)`` to ``(N, K)`` logits: softmax for ``K ≥ 2``, sigmoid for
    ``K = 1`` (the probability of the positive class). The whole preprocessed volume is one
    forward pass; with ``patch_size`` it is first centre-cropped / padded to that size.
    """
    import torch

    started = time.perf_counter()
    report = progress or (lambda done, total, message="": None)
    choice = _resolve_device(device)
    report(0, 3, "checking the input")
    warnings = tuple(preflight_qc(volume, spec, stats))
    check_cancel(cancel)
    report(1, 3, "preprocessing")
    prepared: Prepared = preprocess(volume, spec)
    array = prepared.array
    if patch_size is not None:
        array = _fit(array, patch_size, prepared.pad_value)
    check_cancel(cancel)
    report(2, 3, "classifying")
    with eval_mode(model), torch.inference_mode():
        logits, ran_on, messages = _classify(
            model, torch.from_numpy(np.ascontiguousarray(array))[None, None], choice, amp
        )
    if logits.ndim != 2 or logits.shape[0] != 1:
        raise InferenceError(f"a classifier must return (N, K) logits, got {tuple(logits.shape)}")
    probs = torch.softmax(logits, 1) if logits.shape[1] > 1 else torch.sigmoid(logits)
    provenance = _provenance(
        choice,
        spec,
        volume,
        model_name,
        model_version,
        clock,
        started,
        task="classification",
        input_shape=list(array.shape),
        ran_on=ran_on,
        fallbacks=messages,
    )
    report(3, 3, "done")
    return Classification(probs[0].numpy().astype(np.float32), warnings, provenance)

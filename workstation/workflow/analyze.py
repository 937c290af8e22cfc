"""Analyse one volume with a verified model: findings, an explanation and its faithfulness.

:func:`analyze` is the long operation behind ``workstation analyze`` and the GUI's Analyze
panel, in the project's ``f(inputs, *, progress, cancel)`` shape. Models come from signed
bundles (:func:`~workstation.inference.catalogue.load_model` verifies them first).

- **Segmentation model** (``demo-lesion-seg``): sliding-window segmentation on the model's grid,
  mapped back to the input; each connected component of at least ``min_volume_ml`` is a
  candidate with its volume, centroid and mean probability. With ``confirm_with`` a classifier
  scores a patch centred on each candidate (false-positive reduction, as in two-stage CAD
  systems); candidates below its threshold are kept aside as *rejected*, not dropped silently.
- **Classification model** (``demo-lesion-cls``): the classifier slides over the brain at
  half-patch strides; the study's lesion probability is the highest patch score and, above
  the threshold, that patch is the finding.

The explanation (Grad-CAM, integrated gradients or occlusion) explains the top finding on a
crop of the model grid around it, with deletion / insertion AUC against random orders and,
when the true lesion is known (synthetic data), the pointing game; the map is resampled onto
the input grid for the viewer and the exports.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from workstation.core.tasks import CancelToken, ProgressFn, check_cancel
from workstation.core.volume import Volume
from workstation.inference.catalogue import LoadedModel, load_model
from workstation.workflow._analysis_explain import PLUGIN_METHOD_PREFIX, explain_finding
from workstation.workflow._analysis_steps import (
    candidates,
    crop_box,
    patch_scores,
    scan_boxes,
)

__all__ = ["Analysis", "AnalysisRequest", "Finding", "analyze", "input_hash"]

EXPLAIN_METHODS = ("gradcam", "ig", "occlusion")


@dataclass(frozen=True)
class AnalysisRequest:
    """What to run: a model (name, ``name@version`` or bundle path) and options."""

    model: str
    explain: str | None = "gradcam"
    confirm_with: str | None = None
    device: str = "auto"
    min_volume_ml: float = 0.1
    overlap: float = 0.5
    truth: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        plugin = self.explain is not None and self.explain.startswith(PLUGIN_METHOD_PREFIX)
        if self.explain is not None and self.explain not in EXPLAIN_METHODS and not plugin:
            raise ValueError(
                f"unknown explanation {self.explain!r}; use one of {', '.join(EXPLAIN_METHODS)}"
            )


@dataclass(frozen=True)
class Finding:
    """One finding on the input grid (``label`` is its value in :attr:`Analysis.labels`)."""

    label: int
    name: str
    confidence: float
    centroid_lps: tuple[float, float, float]
    volume_ml: float | None = None
    voxels: int | None = None
    mean_probability: float | None = None
    source: str = "segmentation"  # or "classification"

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "name": self.name,
            "confidence": round(self.confidence, 4),
            "centroid_lps_mm": [round(c, 1) for c in self.centroid_lps],
            "volume_ml": None if self.volume_ml is None else round(self.volume_ml, 3),
            "voxels": self.voxels,
            "mean_probability": (
                None if self.mean_probability is None else round(self.mean_probability, 4)
            ),
            "source": self.source,
        }


@dataclass(frozen=True, eq=False)
class Analysis:
    """Everything one analysis produced, on the input's grid, with provenance."""

    source: Volume
    model: Mapping[str, Any]
    findings: tuple[Finding, ...]
    rejected: tuple[Finding, ...] = ()
    lesion_probability: float | None = None
    probability: Volume | None = None
    labels: Volume | None = None
    explanation: Volume | None = None
    explanation_info: Mapping[str, Any] | None = None
    warnings: tuple[str, ...] = ()
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-able summary (no pixel data, no patient data)."""
        return {
            "model": dict(self.model),
            "findings": [f.to_json() for f in self.findings],
            "rejected_candidates": [f.to_json() for f in self.rejected],
            "lesion_probability": (
                None if self.lesion_probability is None else round(self.lesion_probability, 4)
            ),
            "explanation": None if self.explanation_info is None else dict(self.explanation_info),
            "warnings": list(self.warnings),
            "provenance": dict(self.provenance),
        }


def input_hash(volume: Volume) -> str:
    """SHA-256 of the voxels and geometry: which input a result belongs to (no patient data)."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(volume.array).tobytes())
    geometry = (volume.shape, volume.spacing, volume.origin, volume.direction.round(6).tolist())
    digest.update(repr(geometry).encode())
    return digest.hexdigest()


class _Stages:
    """Progress over weighted stages, forwarded to the caller's ``progress``."""

    def __init__(self, progress: ProgressFn | None, weights: Mapping[str, float]) -> None:
        self._report = progress or (lambda done, total, message="": None)
        self._weights = dict(weights)
        self._total = sum(weights.values())
        self._done = 0.0
        self.seconds: dict[str, float] = {}
        self._t = time.perf_counter()

    def sub(self, stage: str) -> ProgressFn:
        base, weight = self._done, self._weights[stage]

        def report(done: int, total: int, message: str = "") -> None:
            share = weight * (done / total if total else 0.0)
            self._report(int(1000 * (base + share) / self._total), 1000, message or stage)

        return report

    def finish(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = round(now - self._t, 3)
        self._t = now
        self._done += self._weights[stage]
        self._report(int(1000 * self._done / self._total), 1000, f"{stage} done")


def _load(name: str, models: Mapping[str, LoadedModel] | None) -> LoadedModel:
    if models and name in models:
        return models[name]
    return load_model(name)


def analyze(
    volume: Volume,
    request: AnalysisRequest,
    *,
    models: Mapping[str, LoadedModel] | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    clock: Any = None,
) -> Analysis:
    """Run ``request`` on ``volume`` (see the module docstring).

    ``models`` maps request names to already verified :class:`LoadedModel` s (the GUI keeps
    them); other names are verified and loaded from their bundles.
    """
    from workstation.inference.device import choose_device
    from workstation.inference.preprocess import preprocess
    from workstation.inference.qc import normalised_intensity_qc, preflight_qc

    started = time.perf_counter()
    stages = _Stages(
        progress, {"load": 1, "preprocess": 1, "inference": 6, "confirm": 1, "explain": 4}
    )
    model = _load(request.model, models)
    confirm = _load(request.confirm_with, models) if request.confirm_with else None
    choice = choose_device(request.device)
    model.module.to(choice.torch_device())
    if confirm is not None:
        if confirm.info.task != "classification":
            raise ValueError(f"--confirm-with needs a classifier; {confirm.name} is not one")
        confirm.module.to(choice.torch_device())
    stages.finish("load")

    info = model.info
    spec = info.spec()
    warnings = list(preflight_qc(volume, spec, info.training_stats()))
    prepared = preprocess(volume, spec)
    inside = prepared.grid.array > prepared.pad_value + 1e-3  # the brain (background scaled)
    # The tails of the training histogram are the pathology the model looks for (bright or
    # dark lesions in half the cases); a clean brain must not look out of distribution there.
    reference = {
        q: v for q, v in (info.brain_intensity_percentiles() or {}).items() if 5 <= q <= 95
    }
    if reference:
        warnings += normalised_intensity_qc(prepared.grid.array, inside, reference)
    check_cancel(cancel)
    stages.finish("preprocess")

    if info.task == "segmentation":
        result = _segment(volume, prepared, request, model, confirm, choice, stages, cancel)
    else:
        result = _classify(volume, prepared, inside, model, stages, cancel)
    findings, rejected, probability, labels, lesion_probability = result
    stages.finish("confirm")

    explanation = explanation_info = None
    if request.explain and findings:
        explanation, explanation_info = explain_finding(
            volume,
            prepared,
            model,
            findings[0],
            labels,
            request.explain,
            truth=request.truth,
            progress=stages.sub("explain"),
            cancel=cancel,
        )
    elif request.explain:
        warnings.append("no finding: there is nothing to explain")
    stages.finish("explain")

    now = clock() if clock is not None else datetime.now(UTC)
    provenance = {
        "created": now.isoformat(),
        "device": choice.device,
        "device_reason": choice.reason,
        "seconds": round(time.perf_counter() - started, 3),
        "stage_seconds": stages.seconds,
        "input_hash": input_hash(volume),
        "input_shape": list(volume.shape),
        "input_spacing_mm": [round(s, 4) for s in volume.spacing],
        "model_grid_shape": list(prepared.grid.shape),
        "confirm_with": None if confirm is None else f"{confirm.name} {confirm.version}",
        "min_volume_ml": request.min_volume_ml,
    }
    described = {
        **{k: v for k, v in info.summary().items() if k not in ("metrics",)},
        "metrics": info.metrics,
    }
    return Analysis(
        source=volume,
        model=described,
        findings=tuple(findings),
        rejected=tuple(rejected),
        lesion_probability=lesion_probability,
        probability=probability,
        labels=labels,
        explanation=explanation,
        explanation_info=explanation_info,
        warnings=tuple(dict.fromkeys(warnings)),
        provenance=provenance,
    )


def _segment(
    volume: Volume,
    prepared: Any,
    request: AnalysisRequest,
    model: LoadedModel,
    confirm: LoadedModel | None,
    choice: Any,
    stages: _Stages,
    cancel: CancelToken | None,
) -> tuple[list[Finding], list[Finding], Volume, Volume, float | None]:
    from workstation.inference.preprocess import preprocess
    from workstation.inference.runtime import run_segmentation

    info = model.info
    probability, raw_labels = run_segmentation(
        model.module,
        volume,
        info.spec(),
        device=choice,
        progress=stages.sub("inference"),
        cancel=cancel,
        patch_size=info.patch_size,
        overlap=request.overlap,
        batch_size=4,
        model_name=info.name,
        model_version=info.version,
    )
    stages.finish("inference")
    found, components = candidates(raw_labels, probability, min_volume_ml=request.min_volume_ml)
    scores: list[float | None] = [None] * len(found)
    if confirm is not None and found:
        same = confirm.info.spec() == info.spec()
        cprep = prepared if same else preprocess(volume, confirm.info.spec())
        size = confirm.info.patch_size
        patches = []
        for c in found:
            i, j, k = cprep.grid.lps_to_index(c.centroid_lps)
            box = crop_box(cprep.grid.shape, (k, j, i), size)
            patch = np.full(size, cprep.pad_value, np.float32)
            part = cprep.grid.array[box]
            patch[tuple(slice(0, n) for n in part.shape)] = part
            patches.append(patch)
        scores = [float(s) for s in patch_scores(confirm.module, patches, cancel=cancel)]
    kept: list[Finding] = []
    rejected: list[Finding] = []
    labels = np.zeros(volume.shape, dtype=np.uint8)
    for c, score in zip(found, scores, strict=True):
        confirmed = score is None or score >= confirm.info.threshold  # type: ignore[union-attr]
        finding = Finding(
            label=len(kept) + 1 if confirmed else 0,
            name=f"lesion {len(kept) + 1}" if confirmed else "rejected candidate",
            confidence=c.mean_probability if score is None else score,
            centroid_lps=c.centroid_lps,
            volume_ml=c.volume_ml,
            voxels=c.voxels,
            mean_probability=c.mean_probability,
        )
        if confirmed and len(kept) < 255:
            labels[components == c.component] = finding.label
            kept.append(finding)
        else:
            rejected.append(finding)
    label_volume = volume.with_array(labels, metadata={"kind": "labels", "model": info.name})
    study_probability = max((f.confidence for f in kept), default=None)
    if confirm is not None:
        study_probability = max(scores, default=None)  # type: ignore[type-var]
    return kept, rejected, probability, label_volume, study_probability


def _classify(
    volume: Volume,
    prepared: Any,
    inside: np.ndarray,
    model: LoadedModel,
    stages: _Stages,
    cancel: CancelToken | None,
) -> tuple[list[Finding], list[Finding], None, Volume | None, float | None]:
    info = model.info
    size = info.patch_size
    boxes = scan_boxes(prepared.grid.shape, inside, size, min_inside=0.25)
    if not boxes:
        stages.finish("inference")
        return [], [], None, None, None
    patches = [prepared.grid.array[b] for b in boxes]
    report = stages.sub("inference")
    report(0, 1, f"scoring {len(boxes)} patches")
    scores = patch_scores(model.module, patches, cancel=cancel)
    stages.finish("inference")
    best = int(np.argmax(scores))
    box = boxes[best]
    centre = [(b.start + b.stop - 1) / 2 for b in box]
    lps = prepared.grid.index_to_lps((centre[2], centre[1], centre[0]))
    probability = float(scores[best])
    findings: list[Finding] = []
    labels = None
    if probability >= info.threshold:
        findings.append(
            Finding(
                label=1,
                name="lesion present (patch)",
                confidence=probability,
                centroid_lps=(float(lps[0]), float(lps[1]), float(lps[2])),
                source="classification",
            )
        )
        patch = np.zeros(prepared.grid.shape, dtype=np.uint8)
        patch[box] = 1
        from workstation.workflow._analysis_steps import resample_onto

        labels = volume.with_array(
            resample_onto(prepared.grid.with_array(patch), volume, labels=True),
            metadata={"kind": "labels", "model": info.name, "region": "patch"},
        )
    return findings, [], None, labels, probability

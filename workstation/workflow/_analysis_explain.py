"""Explain an analysis' top finding on a crop of the model grid, and map the map back.

The crop keeps explanation cost independent of the volume's size (integrated gradients and
occlusion run many forward passes): 48³ voxels of the model grid (96 mm at 2 mm) around a
segmentation finding, the scored patch for a classification finding.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from workstation.core.tasks import CancelToken, ProgressFn
from workstation.core.volume import Volume
from workstation.workflow._analysis_steps import crop_box, crop_volume, resample_onto

if TYPE_CHECKING:
    from workstation.inference.catalogue import LoadedModel
    from workstation.inference.preprocess import Prepared
    from workstation.workflow.analyze import Finding

__all__ = ["CROP_SIZE", "METHOD_PARAMETERS", "explain_finding"]

CROP_SIZE = (48, 48, 48)
# Occlusion at a stride of its patch: 216 forward passes on the crop instead of 1 331.
METHOD_PARAMETERS: Mapping[str, Mapping[str, Any]] = {
    "gradcam": {},
    "ig": {"n_steps": 32},
    "occlusion": {"patch": 8, "stride": 8},
}
POINTING_TOLERANCE = 1  # voxels of the model grid (2 mm)
PLUGIN_METHOD_PREFIX = "plugin:"  # "plugin:<plugin>/<explainer>": a plugin's explainer


def plugin_attribution(method: str) -> Any:
    """The ``attribute`` function of the plugin explainer that ``method`` names."""
    from workstation.plugins import PluginRegistry

    registry = PluginRegistry.discover()
    key = method.removeprefix(PLUGIN_METHOD_PREFIX)
    return registry.load(registry.find("explainers", key)).attribute


def explain_finding(
    volume: Volume,
    prepared: Prepared,
    model: LoadedModel,
    finding: Finding,
    labels: Volume | None,
    method: str,
    *,
    truth: np.ndarray | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> tuple[Volume, dict[str, Any]]:
    """The map of ``method`` for ``finding`` on ``volume``'s grid, and what describes it."""
    import torch

    from workstation.explain import explain

    info = model.info
    grid = prepared.grid
    i, j, k = grid.lps_to_index(finding.centroid_lps)
    segmentation = info.task == "segmentation"
    size = CROP_SIZE if segmentation else info.patch_size
    box = crop_box(grid.shape, (k, j, i), size)
    crop = crop_volume(grid, box, size, prepared.pad_value)

    target: Any = 0
    region = "patch"
    if segmentation:
        mask = None
        if labels is not None:
            on_crop = resample_onto(labels, crop, labels=True)
            mask = on_crop == finding.label
            region = f"{finding.name}: {int(mask.sum())} model-grid voxels"
            if not mask.any():
                mask, region = None, "whole crop (the finding is below the model grid's voxel)"
        target = lesion_evidence(mask)
    lesion_mask = None
    if truth is not None:
        truth_volume = volume.with_array(np.asarray(truth, dtype=np.uint8))
        lesion_mask = resample_onto(truth_volume, crop, labels=True) > 0

    tensor = torch.from_numpy(np.ascontiguousarray(crop.array))[None, None]
    custom = method.startswith(PLUGIN_METHOD_PREFIX)
    result = explain(
        model.module,
        tensor,
        method=method,
        target=target,
        reference_volume=crop,
        lesion_mask=lesion_mask,
        pointing_tolerance=POINTING_TOLERANCE,
        faithfulness_baseline=float(prepared.pad_value),
        squash="sigmoid",
        model_name=info.name,
        model_version=info.version,
        progress=progress,
        cancel=cancel,
        attribute=plugin_attribution(method) if custom else None,
        **METHOD_PARAMETERS.get(method, {}),
    )
    attribution = result.volume
    values = np.asarray(attribution.array, dtype=np.float32)
    if method == "gradcam":
        values = np.clip(values, 0.0, None)  # Grad-CAM is ReLU'd already; keep it exact
    on_input = resample_onto(attribution.with_array(values), volume)
    described = {
        "method": method,
        "parameters": dict(result.parameters),
        "seconds": round(float(result.provenance.get("seconds", 0.0)), 3),
        "finding": finding.name,
        "region": region,
        "crop_kji": [[b.start, b.stop] for b in box],
        "faithfulness": None if result.faithfulness is None else result.faithfulness.as_dict(),
        "layer": result.provenance.get("layer"),
        "peak_lps_mm": _peak_lps(attribution, values),
    }
    map_volume = volume.with_array(
        on_input,
        metadata={"kind": "explanation", "method": method, "model": info.name},
        warnings=(),
    )
    return map_volume, described


def lesion_evidence(mask: np.ndarray | None) -> Any:
    """Segmentation target: the mean lesion-vs-background logit margin inside ``mask``.

    Its sigmoid is the model's lesion probability there, so the deletion / insertion curves
    (``squash="sigmoid"``) are in probability units, comparable across findings and models.
    """
    import torch

    weight = None if mask is None else torch.as_tensor(np.asarray(mask, dtype=np.float32))

    def score(output: torch.Tensor) -> torch.Tensor:
        margin = output[:, 1] - output[:, 0] if output.shape[1] > 1 else output[:, 0]
        if weight is None:
            return margin.flatten(1).mean(dim=1)
        w = weight.to(margin.device, margin.dtype)
        return (margin * w).flatten(1).sum(dim=1) / w.sum()

    score.__name__ = "lesion_evidence"
    return score


def _peak_lps(grid: Volume, values: np.ndarray) -> list[float]:
    k, j, i = np.unravel_index(int(np.nanargmax(values)), values.shape)
    return [round(float(v), 1) for v in grid.index_to_lps((i, j, k))]

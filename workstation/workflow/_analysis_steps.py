"""The pieces of an analysis: candidate lesions, patch scoring, crops, maps back to the input.

All arrays are ``[k, j, i]``; "grid" means the model's preprocessed grid
(:attr:`~workstation.inference.preprocess.Prepared.grid`), "input" the volume as loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from workstation.core.tasks import CancelToken, check_cancel
from workstation.core.volume import Volume

if TYPE_CHECKING:
    import torch

__all__ = [
    "Candidate",
    "candidates",
    "crop_box",
    "crop_volume",
    "patch_scores",
    "resample_onto",
    "score_patch",
]

_CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)  # 26-connected lesions


@dataclass(frozen=True)
class Candidate:
    """A connected component of a segmentation on the input grid."""

    component: int  # label in the component image
    voxels: int
    volume_ml: float
    centroid_lps: tuple[float, float, float]
    centroid_kji: tuple[float, float, float]
    mean_probability: float
    max_probability: float


def candidates(
    labels: Volume, probability: Volume, *, min_volume_ml: float
) -> tuple[list[Candidate], np.ndarray]:
    """Connected components of ``labels > 0`` of at least ``min_volume_ml``, largest first.

    Returns the candidates and the component image (``int32``, 0 = background).
    """
    components, count = ndimage.label(np.asarray(labels.array) > 0, structure=_CONNECTIVITY)
    if count == 0:
        return [], components.astype(np.int32)
    voxel_ml = float(np.prod(labels.spacing)) / 1000.0
    # Statistics over the labelled voxels only (a few thousand, not the whole volume).
    where = np.nonzero(components)
    ids = components[where]
    probs = np.asarray(probability.array)[where].astype(np.float64)
    sizes = np.bincount(ids, minlength=count + 1)[1:]
    means = np.bincount(ids, weights=probs, minlength=count + 1)[1:] / np.maximum(sizes, 1)
    maxima = np.zeros(count + 1)
    np.maximum.at(maxima, ids, probs)
    centres = [
        np.bincount(ids, weights=axis.astype(np.float64), minlength=count + 1)[1:]
        / np.maximum(sizes, 1)
        for axis in where
    ]
    found = []
    for n in range(1, count + 1):
        size = int(sizes[n - 1])
        if size * voxel_ml < min_volume_ml:
            continue
        k, j, i = (float(c[n - 1]) for c in centres)
        lps = labels.index_to_lps((i, j, k))
        found.append(
            Candidate(
                component=n,
                voxels=size,
                volume_ml=size * voxel_ml,
                centroid_lps=(float(lps[0]), float(lps[1]), float(lps[2])),
                centroid_kji=(k, j, i),
                mean_probability=float(means[n - 1]),
                max_probability=float(maxima[n]),
            )
        )
    found.sort(key=lambda c: -c.voxels)
    return found, components.astype(np.int32)


def crop_box(
    shape: Sequence[int], centre_kji: Sequence[float], size: Sequence[int]
) -> tuple[slice, slice, slice]:
    """A ``size`` box centred on ``centre_kji`` and shifted to lie inside ``shape``.

    Where ``shape`` is smaller than ``size`` along an axis the box is the whole axis (the caller
    pads).
    """
    box = []
    for n, c, s in zip(shape, centre_kji, size, strict=True):
        s = min(int(s), int(n))
        start = round(float(c)) - s // 2
        start = min(max(start, 0), int(n) - s)
        box.append(slice(start, start + s))
    return box[0], box[1], box[2]


def crop_volume(
    grid: Volume, box: tuple[slice, slice, slice], size: Sequence[int], pad: float
) -> Volume:
    """``grid[box]`` padded (at the far end) to ``size``, with its own geometry."""
    part = np.asarray(grid.array[box], dtype=np.float32)
    target = tuple(int(s) for s in size)
    if part.shape != target:
        padded = np.full(target, pad, dtype=np.float32)
        padded[tuple(slice(0, n) for n in part.shape)] = part
        part = padded
    k0, j0, i0 = (b.start for b in box)
    origin = grid.index_to_lps((i0, j0, k0))
    return Volume(
        np.ascontiguousarray(part),
        grid.spacing,
        tuple(float(o) for o in origin),
        grid.direction,
        metadata={"kind": "crop", "box_kji": [[b.start, b.stop] for b in box]},
    )


def resample_onto(source: Volume, reference: Volume, *, labels: bool = False) -> np.ndarray:
    """``source`` resampled onto ``reference``'s grid (linear, or nearest for labels); 0 outside."""
    import SimpleITK as sitk

    image = source.to_sitk()
    if not labels:
        image = sitk.Cast(image, sitk.sitkFloat32)
    out = sitk.Resample(
        image,
        reference.to_sitk(),
        sitk.Transform(),
        sitk.sitkNearestNeighbor if labels else sitk.sitkLinear,
        0.0,
    )
    array = sitk.GetArrayFromImage(out)
    return array.astype(source.array.dtype if labels else np.float32, copy=False)


def score_patch(model: torch.nn.Module, patch: np.ndarray) -> float:
    """A sigmoid classifier's probability for one ``(D, H, W)`` patch."""
    return float(patch_scores(model, [patch])[0])


def patch_scores(
    model: torch.nn.Module,
    patches: Sequence[np.ndarray],
    *,
    batch_size: int = 16,
    cancel: CancelToken | None = None,
) -> np.ndarray:
    """Probabilities of a classifier (one sigmoid logit or softmax class 1) for ``patches``."""
    import torch

    from workstation.inference.modes import eval_mode

    out: list[np.ndarray] = []
    device = next(model.parameters()).device
    with eval_mode(model), torch.inference_mode():
        for start in range(0, len(patches), batch_size):
            check_cancel(cancel)
            chunk = patches[start : start + batch_size]
            batch = np.stack([np.asarray(p, np.float32) for p in chunk])
            logits = model(torch.from_numpy(batch)[:, None].to(device)).float().cpu()
            if logits.shape[1] == 1:
                probs = torch.sigmoid(logits[:, 0])
            else:
                probs = torch.softmax(logits, 1)[:, 1]
            out.append(probs.numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def scan_boxes(
    grid_shape: Sequence[int], inside: np.ndarray, size: Sequence[int], *, min_inside: float
) -> list[tuple[slice, slice, slice]]:
    """Patch boxes at half-patch strides that hold at least ``min_inside`` of ``inside``."""
    starts = []
    for n, s in zip(grid_shape, size, strict=True):
        s = min(int(s), int(n))
        last = int(n) - s
        axis = list(range(0, last + 1, max(s // 2, 1)))
        if axis[-1] != last:
            axis.append(last)
        starts.append((axis, s))
    boxes = []
    for k in starts[0][0]:
        for j in starts[1][0]:
            for i in starts[2][0]:
                box = (
                    slice(k, k + starts[0][1]),
                    slice(j, j + starts[1][1]),
                    slice(i, i + starts[2][1]),
                )
                if inside[box].mean() >= min_inside:
                    boxes.append(box)
    return boxes

"""Per-study quality-control features for cohort runs: flat, JSON-able, one row per study.

The cohort engine calls these on a worker for every study and writes the values as columns of
``summary.csv`` (``in_*`` describe the input volume, ``out_*`` the analysis result), then
:func:`~workstation.cohort.outliers.flag_outliers` compares each study with the cohort.

Input features (:func:`input_features`):

- acquisition: modality, dims, spacing (mm), voxel volume (mm³), obliquity (degrees);
- intensity over the *foreground* (voxels above an Otsu threshold): percentiles 1/5/50/95/99,
  mean, std, skewness, excess kurtosis; the fraction of zero voxels and of foreground voxels;
- noise: the in-plane noise standard deviation estimated from the robust spread (MAD) of a
  second-derivative filter inside the eroded foreground (Immerkær's mask, whose response to
  white noise of std σ has std 6σ; the median ignores edges), and the SNR as foreground
  median / noise std;
- motion / ghosting: background signal relative to the foreground median (ghosts fill the
  background), and slice-to-slice jitter of the mean foreground intensity (second difference
  of the per-slice means, relative to the foreground median);
- geometry problems from loading: slices missing (gaps in the slice positions, as counted by
  :func:`workstation.dicom.load_series` in ``volume.warnings``), uneven spacing, warnings.

A value that cannot be computed (no foreground, no probability map) is ``None`` (an empty CSV
cell), so every study has the same columns.
"""

from __future__ import annotations

import io
import math
import re
from typing import Any

import numpy as np

from workstation.cohort.outliers import flag_outliers  # re-exported: the engine's one import
from workstation.core.volume import Volume
from workstation.inference.qc import obliquity_degrees

__all__ = ["flag_outliers", "foreground_mask", "input_features", "output_features", "thumbnail_png"]

Value = float | int | str | None

_MAX_SAMPLES = 2_000_000
_MISSING = re.compile(r"about (\d+) slice\(s\) missing")
# Immerkær (1996): this mask cancels linear ramps; its response to white noise has std 6σ.
_NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)[None]
_MAD_TO_STD = 1.4826


def _sample(values: np.ndarray) -> np.ndarray:
    flat = np.asarray(values).ravel()
    if flat.size > _MAX_SAMPLES:  # a strided sample is plenty for percentiles and moments
        flat = flat[:: math.ceil(flat.size / _MAX_SAMPLES)]
    return flat.astype(np.float64)


def _otsu(values: np.ndarray, bins: int = 256) -> float | None:
    """Otsu's threshold over ``values`` (1D), ignoring the top 0.1 % (hot pixels)."""
    lo, hi = np.percentile(values, [0.0, 99.9])
    if not hi > lo:
        return None
    counts, edges = np.histogram(np.clip(values, lo, hi), bins=bins, range=(lo, hi))
    centres = 0.5 * (edges[1:] + edges[:-1])
    weight = np.cumsum(counts).astype(np.float64)
    total = weight[-1]
    mass = np.cumsum(counts * centres)
    w0, w1 = weight[:-1], total - weight[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        m0 = mass[:-1] / w0
        m1 = (mass[-1] - mass[:-1]) / w1
        between = w0 * w1 * (m0 - m1) ** 2
    between = np.nan_to_num(between, nan=-1.0)
    return float(edges[int(np.argmax(between)) + 1])


def foreground_mask(volume: Volume) -> np.ndarray:
    """Voxels above the Otsu threshold (or above the minimum for a two-valued image)."""
    array = np.asarray(volume.array)
    threshold = _otsu(_sample(array))
    if threshold is None:
        return np.zeros(array.shape, dtype=bool)
    return array > threshold


def _r(value: float, digits: int = 5) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.{digits}g}")


def _intensity(values: np.ndarray) -> dict[str, Value]:
    names = ("p1", "p5", "p50", "p95", "p99", "mean", "std", "skewness", "kurtosis")
    if values.size < 2:
        return {f"in_{n}": None for n in names}
    p = np.percentile(values, [1, 5, 50, 95, 99])
    mean, std = float(values.mean()), float(values.std())
    if std > 0:
        z = (values - mean) / std
        skew, kurt = float(np.mean(z**3)), float(np.mean(z**4) - 3.0)
    else:
        skew = kurt = 0.0
    return {
        f"in_{n}": _r(float(v)) for n, v in zip(names, [*p, mean, std, skew, kurt], strict=True)
    }


def _noise_std(array: np.ndarray, foreground: np.ndarray) -> float | None:
    """In-plane noise σ: robust spread of Immerkær's filter inside the eroded foreground."""
    from scipy import ndimage

    inner = ndimage.binary_erosion(foreground, structure=np.ones((1, 3, 3), bool))
    count = int(inner.sum())
    if count < 50:
        return None
    step = math.ceil(count / _MAX_SAMPLES)
    parts = []  # slice by slice: no full-size float copies of a large volume
    for k in np.nonzero(inner.any(axis=(1, 2)))[0]:
        plane = ndimage.convolve(array[k].astype(np.float32), _NOISE_KERNEL[0], mode="nearest")
        parts.append(plane[inner[k]][::step])
    values = np.concatenate(parts).astype(np.float64)
    mad = float(np.median(np.abs(values - np.median(values))))
    return _MAD_TO_STD * mad / 6.0


def _slice_jitter(array: np.ndarray, foreground: np.ndarray, reference: float) -> float | None:
    """Mean |second difference| of per-slice foreground means, relative to ``reference``."""
    counts = foreground.sum(axis=(1, 2))
    if counts.max(initial=0) == 0 or reference == 0:
        return None
    sums = np.array([array[k][foreground[k]].sum(dtype=np.float64) for k in range(len(counts))])
    keep = counts >= 0.05 * counts.max()
    means = sums[keep] / counts[keep]
    if means.size < 3:
        return None
    return float(np.mean(np.abs(np.diff(means, n=2))) / 2.0 / abs(reference))


def input_features(volume: Volume) -> dict[str, Value]:
    """QC features of one input volume, keys prefixed ``in_`` (see the module docstring)."""
    array = np.asarray(volume.array)
    foreground = foreground_mask(volume)
    fg_values = _sample(array[foreground])
    di, dj, dk = volume.spacing
    nk, nj, ni = volume.shape
    features: dict[str, Value] = {
        "in_modality": str(volume.metadata.get("modality") or ""),
        "in_dim_i": int(ni),
        "in_dim_j": int(nj),
        "in_dim_k": int(nk),
        "in_spacing_i": _r(di),
        "in_spacing_j": _r(dj),
        "in_spacing_k": _r(dk),
        "in_voxel_mm3": _r(di * dj * dk),
        "in_obliquity_deg": _r(obliquity_degrees(volume), 4),
    }
    features.update(_intensity(fg_values))
    features["in_zero_fraction"] = _r(float(np.count_nonzero(array == 0)) / array.size)
    features["in_foreground_fraction"] = _r(float(foreground.sum()) / array.size)

    median = features["in_p50"]
    noise = _noise_std(array, foreground)
    features["in_noise_std"] = None if noise is None else _r(noise)
    features["in_snr"] = (
        _r(median / noise) if median is not None and noise is not None and noise > 0 else None
    )
    background = ~foreground
    if median and background.any():
        features["in_background_ratio"] = _r(
            float(np.abs(_sample(array[background])).mean()) / abs(median)
        )
    else:
        features["in_background_ratio"] = None
    jitter = _slice_jitter(array, foreground, median or 0.0)
    features["in_slice_jitter"] = None if jitter is None else _r(jitter)

    missing = sum(int(m) for w in volume.warnings for m in _MISSING.findall(w))
    features["in_missing_slices"] = missing
    features["in_uneven_spacing"] = int(any("uneven slice spacing" in w for w in volume.warnings))
    features["in_warnings"] = len(volume.warnings)
    return features


def output_features(analysis: Any) -> dict[str, Value]:
    """Features of an :class:`~workstation.workflow.analyze.Analysis`, keys prefixed ``out_``.

    ``None`` (a failed or skipped analysis) gives an empty dict. The "brain" for the mean
    probability is the source volume's foreground (:func:`foreground_mask`).
    """
    if analysis is None:
        return {}
    findings = tuple(analysis.findings)
    volumes = [f.volume_ml for f in findings if f.volume_ml is not None]
    features: dict[str, Value] = {
        "out_n_findings": len(findings),
        "out_n_rejected": len(tuple(getattr(analysis, "rejected", ()) or ())),
        "out_total_volume_ml": _r(float(sum(volumes))) if volumes else 0.0,
        "out_max_confidence": _r(max(float(f.confidence) for f in findings)) if findings else 0.0,
        "out_lesion_probability": (
            None if analysis.lesion_probability is None else _r(float(analysis.lesion_probability))
        ),
        "out_mean_probability_brain": None,
        "out_qc_warnings": len(tuple(analysis.warnings)),
        "out_deletion_gain": None,
        "out_insertion_gain": None,
        "out_pointing_game": None,
    }
    probability = getattr(analysis, "probability", None)
    if probability is not None:
        values = np.asarray(probability.array)
        brain = foreground_mask(analysis.source)
        if brain.shape == values.shape and brain.any():
            features["out_mean_probability_brain"] = _r(float(values[brain].mean()))
    info = analysis.explanation_info or {}
    faithfulness = info.get("faithfulness") if hasattr(info, "get") else None
    if faithfulness:
        for key in ("deletion_gain", "insertion_gain"):
            if faithfulness.get(key) is not None:
                features[f"out_{key}"] = _r(float(faithfulness[key]))
        if faithfulness.get("pointing_game") is not None:
            features["out_pointing_game"] = int(bool(faithfulness["pointing_game"]))
    return features


def _display_axes(volume: Volume) -> tuple[int, int, int]:
    """Array axes (0=k, 1=j, 2=i) nearest to S (slicing), A→P (rows) and R→L (columns)."""
    direction = np.abs(volume.direction)
    # volume axis a (0=i, 1=j, 2=k) maps to array axis 2 - a
    normal = int(np.argmax(direction[2]))
    rest = [a for a in range(3) if a != normal]
    row = max(rest, key=lambda a: direction[1, a])
    column = next(a for a in rest if a != row)
    return 2 - normal, 2 - row, 2 - column


def thumbnail_png(volume: Volume, size: int = 128) -> bytes:
    """The middle axial slice, windowed to its 1st–99th percentile, as an 8-bit PNG.

    Radiological orientation (anterior up, patient's right on the left); the longer side is
    ``size`` pixels and the other follows the physical aspect ratio from the spacing.
    """
    from PIL import Image

    k_axis, row_axis, column_axis = _display_axes(volume)
    array = np.asarray(volume.array)
    plane = np.take(array, array.shape[k_axis] // 2, axis=k_axis).astype(np.float64)
    # after removing k_axis the remaining axes keep their order
    remaining = [a for a in range(3) if a != k_axis]
    if remaining.index(row_axis) != 0:
        plane = plane.T
    spacing = (volume.spacing[2], volume.spacing[1], volume.spacing[0])  # per array axis
    vol_axis = {0: 2, 1: 1, 2: 0}
    if volume.direction[1, vol_axis[row_axis]] < 0:
        plane = plane[::-1]
    if volume.direction[0, vol_axis[column_axis]] < 0:
        plane = plane[:, ::-1]
    lo, hi = np.percentile(plane, [1, 99]) if plane.size else (0.0, 0.0)
    scaled = np.clip((plane - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(plane)
    image = Image.fromarray(np.ascontiguousarray((scaled * 255).round().astype(np.uint8)), "L")
    height = plane.shape[0] * spacing[row_axis]
    width = plane.shape[1] * spacing[column_axis]
    scale = size / max(height, width, 1e-6)
    shape = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = image.resize(shape, Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()

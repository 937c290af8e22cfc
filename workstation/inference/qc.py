"""Pre-flight QC: is this volume like what the model was trained on?

:func:`preflight_qc` compares a :class:`~workstation.core.volume.Volume` with a model's
:class:`~workstation.inference.preprocess.InputSpec` and the training-distribution statistics
of its manifest (:class:`TrainingStats`): modality, obliquity, voxel spacing range and intensity
percentiles. It returns human-readable "out of distribution" warnings saying what differs and by
how much. They are warnings, never exceptions: the result is still computed and shown, with them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from workstation.core.volume import Volume
from workstation.inference.preprocess import InputSpec, spacing_in_orientation

__all__ = ["TrainingStats", "normalised_intensity_qc", "obliquity_degrees", "preflight_qc"]

_MAX_SAMPLES = 2_000_000


@dataclass(frozen=True)
class TrainingStats:
    """The training data's distribution, from a model manifest.

    Parameters
    ----------
    spacing_min, spacing_max
        Smallest / largest voxel size (mm) per axis of the model orientation.
    intensity_percentiles
        Raw-intensity percentiles of the training volumes, ``{percentile: value}``.
    intensity_tolerance
        Allowed difference of a percentile, as a fraction of the training ``p_high - p_low``.
    max_obliquity
        Largest angle (degrees) between a volume axis and the nearest patient axis.
    """

    spacing_min: tuple[float, float, float] | None = None
    spacing_max: tuple[float, float, float] | None = None
    intensity_percentiles: Mapping[float, float] | None = None
    intensity_tolerance: float = 0.25
    max_obliquity: float = 5.0

    @classmethod
    def from_manifest(cls, data: Mapping[str, Any] | None) -> TrainingStats:
        """From ``{"spacing_range": [min, max], "intensity_percentiles": {"1": v, ...}, ...}``.

        ``min`` / ``max`` are numbers (all axes) or three per-axis numbers.
        """
        data = data or {}
        lo = hi = None
        if data.get("spacing_range") is not None:
            low, high = data["spacing_range"]
            lo, hi = _three(low), _three(high)
        pct = data.get("intensity_percentiles")
        return cls(
            spacing_min=lo,
            spacing_max=hi,
            intensity_percentiles=(
                None if pct is None else {float(k): float(v) for k, v in dict(pct).items()}
            ),
            intensity_tolerance=float(data.get("intensity_tolerance", 0.25)),
            max_obliquity=float(data.get("max_obliquity", 5.0)),
        )


def _three(value: Any) -> tuple[float, float, float]:
    if isinstance(value, (int, float)):
        return (float(value),) * 3
    items = tuple(float(v) for v in value)
    if len(items) != 3:
        raise ValueError(f"expected a number or three numbers, got {value!r}")
    return items  # type: ignore[return-value]


def obliquity_degrees(volume: Volume) -> float:
    """Largest angle (degrees) between a volume axis and its nearest patient (LPS) axis."""
    direction = volume.direction / np.linalg.norm(volume.direction, axis=0, keepdims=True)
    cosines = np.clip(np.abs(direction).max(axis=0), -1.0, 1.0)
    return float(np.degrees(np.arccos(cosines)).max())


def _percentiles(array: np.ndarray, qs: list[float]) -> np.ndarray:
    flat = np.asarray(array).ravel()
    if flat.size > _MAX_SAMPLES:  # a strided sample is plenty for percentiles
        flat = flat[:: math.ceil(flat.size / _MAX_SAMPLES)]
    return np.percentile(flat.astype(np.float64), qs)


def preflight_qc(volume: Volume, spec: InputSpec, stats: TrainingStats | None = None) -> list[str]:
    """Warnings for every way ``volume`` differs from the model's training distribution.

    Parameters
    ----------
    volume
        The input, as loaded (``metadata["modality"]`` is read when present).
    spec
        The model's input spec (modality, orientation).
    stats
        Training statistics from the manifest; without them only modality and obliquity
        (at the default 5° limit) are checked.

    Returns
    -------
    list of str
        Empty when nothing is out of distribution.
    """
    stats = stats or TrainingStats()
    warnings: list[str] = []
    modality = volume.metadata.get("modality")
    if spec.modality is not None:
        if not modality:
            warnings.append(
                f"out of distribution: the input's modality is unknown; the model was trained "
                f"on {spec.modality}"
            )
        elif str(modality).upper() != spec.modality.upper():
            warnings.append(
                f"out of distribution: modality {modality}, the model was trained on "
                f"{spec.modality}"
            )

    angle = obliquity_degrees(volume)
    if angle > stats.max_obliquity:
        warnings.append(
            f"out of distribution: the volume is oblique by {angle:.1f}° (the model expects "
            f"axis-aligned {spec.orientation} volumes, at most {stats.max_obliquity:g}°); it is "
            "analysed on its own oblique grid"
        )

    spacing = spacing_in_orientation(volume, spec.orientation)
    if stats.spacing_min is not None and stats.spacing_max is not None:
        for axis, s, lo, hi in zip(
            spec.orientation, spacing, stats.spacing_min, stats.spacing_max, strict=True
        ):
            if not lo - 1e-6 <= s <= hi + 1e-6:
                warnings.append(
                    f"out of distribution: voxel size {s:.3g} mm along {axis}, outside the "
                    f"training range {lo:.3g}–{hi:.3g} mm"
                )

    if stats.intensity_percentiles:
        qs = sorted(stats.intensity_percentiles)
        ref = np.asarray([stats.intensity_percentiles[q] for q in qs])
        ours = _percentiles(volume.array, qs)
        scale = max(float(ref.max() - ref.min()), 1e-6)
        for q, theirs, mine in zip(qs, ref, ours, strict=True):
            if abs(mine - theirs) > stats.intensity_tolerance * scale:
                warnings.append(
                    f"out of distribution: intensity {q:g}th percentile {mine:.4g}, training "
                    f"{theirs:.4g} (allowed ±{stats.intensity_tolerance * scale:.3g})"
                )
    return warnings


def normalised_intensity_qc(
    normalised: np.ndarray,
    inside: np.ndarray,
    percentiles: Mapping[float, float],
    *,
    tolerance: float = 0.25,
) -> list[str]:
    """Warnings where the model input's in-brain intensity histogram differs from training.

    ``normalised`` is the preprocessed input, ``inside`` the voxels the training statistics
    were taken over (e.g. the brain), ``percentiles`` the training values ``{q: value}``. After
    a z-score the mean and spread always match, so this compares the histogram's *shape*: a
    CT, a T2 or a volume with a skull differs at the tails.
    """
    values = np.asarray(normalised)[np.asarray(inside, dtype=bool)]
    if values.size == 0:
        return ["out of distribution: no voxels inside the brain mask to compare intensities"]
    qs = sorted(percentiles)
    ref = np.asarray([percentiles[q] for q in qs])
    ours = _percentiles(values, qs)
    allowed = tolerance * max(float(ref.max() - ref.min()), 1e-6)
    return [
        f"out of distribution: normalised brain intensity {q:g}th percentile {mine:.3g}, "
        f"training {theirs:.3g} (allowed ±{allowed:.2g})"
        for q, theirs, mine in zip(qs, ref, ours, strict=True)
        if abs(mine - theirs) > allowed
    ]

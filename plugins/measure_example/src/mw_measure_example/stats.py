"""Statistics of the voxels inside a sphere, in patient coordinates (LPS, millimetres).

Plain numpy, no Qt: the panel calls :func:`sphere_stats`, and so can a script or a test.

A voxel is inside the sphere when its *centre* is within ``radius_mm`` of the centre. The
geometry comes from the :class:`workstation.core.volume.Volume` itself (``lps_to_index`` and
``index_to_lps``), so anisotropic spacing and oblique directions are handled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from workstation.core.volume import Volume

__all__ = ["CSV_HEADER", "SphereStats", "sphere_mask", "sphere_stats", "to_csv"]

CSV_HEADER = (
    "center_l_mm",
    "center_p_mm",
    "center_s_mm",
    "radius_mm",
    "voxels",
    "volume_ml",
    "mean",
    "sd",
    "min",
    "max",
)


@dataclass(frozen=True)
class SphereStats:
    """What :func:`sphere_stats` measures. The intensity fields are NaN when no voxel is inside."""

    center_lps: tuple[float, float, float]
    radius_mm: float
    voxels: int
    volume_ml: float  # voxels × voxel volume
    mean: float
    sd: float  # population standard deviation (ddof=0)
    min: float
    max: float


def sphere_mask(
    volume: Volume, center_lps: tuple[float, float, float], radius_mm: float
) -> np.ndarray:
    """A boolean ``[k, j, i]`` mask of the voxels whose centres lie within the sphere."""
    if not radius_mm > 0:
        raise ValueError(f"the radius must be positive, got {radius_mm}")
    mask = np.zeros(volume.shape, dtype=bool)
    center = np.asarray(center_lps, dtype=np.float64)

    # Bounding box in index space: a displacement d (mm) moves index a by (M⁻¹ d)[a], at most
    # radius × |row a of M⁻¹|, where M maps an index step to millimetres.
    to_index = np.linalg.inv(volume.direction * np.asarray(volume.spacing)[None, :])
    reach = radius_mm * np.linalg.norm(to_index, axis=1)  # per (i, j, k)
    center_ijk = volume.lps_to_index(center)
    size = np.asarray(volume.size)  # (i, j, k)
    low = np.maximum(np.floor(center_ijk - reach), 0).astype(int)
    high = np.minimum(np.ceil(center_ijk + reach), size - 1).astype(int)
    if np.any(high < low):
        return mask  # the sphere misses the volume

    i, j, k = (np.arange(lo, hi + 1) for lo, hi in zip(low, high, strict=True))
    kk, jj, ii = np.meshgrid(k, j, i, indexing="ij")  # [k, j, i] order, like the array
    ijk = np.stack([ii, jj, kk], axis=-1)
    distance2 = np.sum((volume.index_to_lps(ijk) - center) ** 2, axis=-1)
    mask[low[2] : high[2] + 1, low[1] : high[1] + 1, low[0] : high[0] + 1] = (
        distance2 <= radius_mm**2
    )
    return mask


def sphere_stats(
    volume: Volume, center_lps: tuple[float, float, float], radius_mm: float
) -> SphereStats:
    """Voxel count, volume and intensity statistics of a sphere ROI."""
    mask = sphere_mask(volume, center_lps, radius_mm)
    values = np.asarray(volume.array)[mask].astype(np.float64)
    voxel_ml = float(np.prod(volume.spacing) * abs(np.linalg.det(volume.direction))) / 1000.0
    x, y, z = (float(c) for c in center_lps)
    center = (x, y, z)
    if values.size == 0:
        nan = math.nan
        return SphereStats(center, float(radius_mm), 0, 0.0, nan, nan, nan, nan)
    return SphereStats(
        center_lps=center,
        radius_mm=float(radius_mm),
        voxels=int(values.size),
        volume_ml=values.size * voxel_ml,
        mean=float(values.mean()),
        sd=float(values.std()),
        min=float(values.min()),
        max=float(values.max()),
    )


def to_csv(stats: SphereStats) -> str:
    """A header line and one row, comma-separated (for the clipboard or a file)."""
    row = (
        *stats.center_lps,
        stats.radius_mm,
        stats.voxels,
        stats.volume_ml,
        stats.mean,
        stats.sd,
        stats.min,
        stats.max,
    )
    return ",".join(CSV_HEADER) + "\n" + ",".join(_format(v) for v in row) + "\n"


def _format(value: float | int) -> str:
    if isinstance(value, int):
        return str(value)
    return "" if math.isnan(value) else f"{value:.6g}"

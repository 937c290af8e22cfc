"""Do two volumes share a voxel grid? The check layers and loaders use before overlaying.

For now every layer of a study view must lie on its base image's grid: the same shape, and
every voxel centre within ``1e-3`` mm of its counterpart. (The 2D views will later reslice
each layer in patient space, and this restriction can go.)
"""

from __future__ import annotations

from itertools import product

import numpy as np

from workstation.core.errors import WorkstationError
from workstation.core.volume import Volume

__all__ = ["GRID_TOLERANCE_MM", "GeometryMismatchError", "check_same_grid", "grid_differences"]

GRID_TOLERANCE_MM = 1e-3
"""Largest distance (mm) between corresponding voxel centres of grids that count as one."""


class GeometryMismatchError(WorkstationError, ValueError):
    """A layer's voxel grid differs from the grid it must share (the base image's)."""


def grid_differences(
    volume: Volume, reference: Volume, tolerance_mm: float = GRID_TOLERANCE_MM
) -> list[str]:
    """How ``volume``'s grid differs from ``reference``'s, in words (empty: the same grid)."""
    if volume.shape != reference.shape:
        return [f"shape [k, j, i] {volume.shape} vs {reference.shape}"]
    corners = np.array(list(product(*[(0, n - 1) for n in volume.size])), dtype=float)
    offset = np.abs(volume.index_to_lps(corners) - reference.index_to_lps(corners)).max()
    if offset <= tolerance_mm:
        return []
    found = [f"voxel positions differ by up to {offset:.4g} mm"]
    for label, mine, theirs in (
        ("spacing", volume.spacing, reference.spacing),
        ("origin", volume.origin, reference.origin),
    ):
        if not np.allclose(mine, theirs, rtol=0.0, atol=tolerance_mm):
            found.append(
                f"{label} {tuple(round(v, 4) for v in mine)} vs "
                f"{tuple(round(v, 4) for v in theirs)}"
            )
    if not np.allclose(volume.direction, reference.direction, rtol=0.0, atol=1e-6):
        found.append(
            f"direction {np.round(volume.direction, 4).tolist()} vs "
            f"{np.round(reference.direction, 4).tolist()}"
        )
    return found


def check_same_grid(
    volume: Volume,
    reference: Volume,
    *,
    what: str = "layer",
    reference_name: str = "the base image",
    tolerance_mm: float = GRID_TOLERANCE_MM,
) -> None:
    """Raise :class:`GeometryMismatchError` unless ``volume`` lies on ``reference``'s grid.

    The grids match when the shapes are equal and every voxel centre is within
    ``tolerance_mm`` of its counterpart (checked at the eight corners; the maps are affine).
    """
    differences = grid_differences(volume, reference, tolerance_mm)
    if differences:
        raise GeometryMismatchError(
            f"{what} is not on the voxel grid of {reference_name}: {'; '.join(differences)}. "
            "Layers must share the base image's grid for now; resample it onto that grid "
            "(e.g. with SimpleITK.Resample) before adding it."
        )

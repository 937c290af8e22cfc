"""Crop to crosshair: the three planes through the cursor and the octant they cut away.

By default the cut octant is the one facing the default camera, so the MPR planes'
intersection shows. The volume applies a :class:`CrosshairCrop` as the ray caster's *cropping
regions* (a uniform update: nothing is re-uploaded when the cursor moves); surfaces apply it as
a clip filter with the same three planes. VTK is imported only inside
:meth:`CrosshairCrop.update_planes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from workstation.core.volume import Volume
from workstation.render.camera3d import facing_octant

__all__ = ["CROPPING_FLAGS", "CrosshairCrop", "crosshair_crop"]

# The ray caster's 27 cropping regions are numbered x + 3y + 9z over (below, between, above)
# its planes; the crop puts the cut octant "between" on every axis: region 13, the only one hidden.
CROPPING_FLAGS = ((1 << 27) - 1) & ~(1 << 13)
"""``SetCroppingRegionFlags`` value: every region shown except the middle one (the cut octant)."""


@dataclass(frozen=True, eq=False)
class CrosshairCrop:
    """Three planes through ``centre_lps`` along the volume's axes, and the octant cut away.

    ``cut[a]`` is +1 when the cut octant lies on the side of increasing index along axis ``a``
    (i, j, k), else -1. ``region_planes`` is the ray caster's ``SetCroppingRegionPlanes`` value
    in the volume's *local* frame (``spacing * index``, voxel 0 at the origin, no rotation; where
    :class:`~workstation.render.raycast3d.VolumeProp` puts its mapper's input): each pair
    brackets the cut side of one axis.
    """

    centre_lps: tuple[float, float, float]
    index: tuple[float, float, float]
    cut: tuple[int, int, int]
    axes: np.ndarray
    region_planes: tuple[float, float, float, float, float, float]

    @property
    def normals(self) -> np.ndarray:
        """``(3, 3)``: row ``a`` is the plane normal along axis ``a``, pointing out of the cut."""
        return -(self.axes * np.asarray(self.cut, float)[None, :]).T

    def contains(self, points: Any) -> np.ndarray:
        """Whether LPS point(s) lie in the cut octant (strictly)."""
        offsets = np.asarray(points, float) - np.asarray(self.centre_lps)
        return np.all(offsets @ self.normals.T < 0, axis=-1)

    def update_planes(self, planes: Any) -> None:
        """Set a ``vtkPlanes`` (an implicit function negative inside the cut octant) in place."""
        from vtkmodules.vtkCommonCore import vtkDoubleArray, vtkPoints

        points, normals = vtkPoints(), vtkDoubleArray()
        normals.SetNumberOfComponents(3)
        for normal in self.normals:
            points.InsertNextPoint(*self.centre_lps)
            normals.InsertNextTuple3(*normal)
        planes.SetPoints(points)
        planes.SetNormals(normals)


def crosshair_crop(
    volume: Volume, cursor_lps: Any, cut: tuple[int, int, int] | None = None
) -> CrosshairCrop:
    """The crop through ``cursor_lps`` (clamped into the volume; ``None``: the volume's centre)
    cutting the octant ``cut``.

    ``cut`` defaults to :func:`~workstation.render.camera3d.facing_octant` of the default view.
    """
    size = np.asarray(volume.size, float)
    if cursor_lps is None:
        cursor_lps = volume.index_to_lps((size - 1) / 2)
    index = np.clip(volume.lps_to_index(np.asarray(cursor_lps, float)), 0.0, size - 1.0)
    signs = tuple(int(np.sign(s)) or 1 for s in (cut or facing_octant(volume)))
    spacing = np.asarray(volume.spacing)
    planes: list[float] = []
    for axis in range(3):
        at, below, above = spacing[axis] * np.array([index[axis], -1.0, size[axis]])
        planes += [at, above] if signs[axis] > 0 else [below, at]
    return CrosshairCrop(
        tuple(float(v) for v in volume.index_to_lps(index)),  # type: ignore[arg-type]
        tuple(float(v) for v in index),  # type: ignore[arg-type]
        signs,  # type: ignore[arg-type]
        np.asarray(volume.direction, float),
        tuple(planes),  # type: ignore[arg-type]
    )

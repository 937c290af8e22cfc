"""The Volume: one image volume in DICOM patient coordinates (LPS).

Conventions (the same as SimpleITK, so conversion is a copy of four fields):

- ``array`` is indexed ``[k, j, i]``: slice, row, column.
- ``spacing`` is ``(di, dj, dk)`` in mm: column spacing, row spacing, slice spacing.
- ``origin`` is the LPS position (mm) of the centre of voxel ``[0, 0, 0]``.
- ``direction`` is a 3×3 matrix whose *columns* are the unit LPS directions of the i, j and k
  axes (``direction[:, 2]`` is the slice normal as the slices are stacked).

The conversions to and from SimpleITK live here and nowhere else; the one to
``pyvista.ImageData`` lives in ``workstation.render``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import SimpleITK


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D image with its geometry in LPS patient coordinates.

    Parameters
    ----------
    array
        Voxel values indexed ``[k, j, i]``.
    spacing
        ``(di, dj, dk)`` voxel size in mm.
    origin
        LPS position of voxel ``[0, 0, 0]`` in mm.
    direction
        3×3 matrix; columns are the LPS unit vectors of the i, j, k axes.
    warnings
        Problems found while building the volume (missing slices, gantry tilt, ...), for the UI.
    metadata
        Non-identifying descriptors (modality, series UID, description, units, window presets).
    """

    array: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    warnings: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f"a Volume needs a 3D array [k, j, i], got shape {self.array.shape}")
        # A copy: the caller's matrix stays theirs, and ours cannot change behind our back.
        direction = np.array(self.direction, dtype=np.float64).reshape(3, 3)
        direction.setflags(write=False)
        object.__setattr__(self, "direction", direction)
        object.__setattr__(self, "spacing", tuple(float(s) for s in self.spacing))
        object.__setattr__(self, "origin", tuple(float(o) for o in self.origin))
        object.__setattr__(self, "warnings", tuple(self.warnings))
        object.__setattr__(self, "metadata", _frozen_mapping(self.metadata))
        if len(self.spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in self.spacing):
            raise ValueError(f"spacing must be three positive numbers, got {self.spacing}")
        if len(self.origin) != 3 or not np.all(np.isfinite(self.origin)):
            raise ValueError(f"origin must be three finite numbers, got {self.origin}")
        if not np.all(np.isfinite(direction)):
            raise ValueError(f"direction must be finite, got {direction.tolist()}")

    # -- geometry ---------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        """``(k, j, i)`` sizes, as numpy reports them."""
        return tuple(self.array.shape)  # type: ignore[return-value]

    @property
    def size(self) -> tuple[int, int, int]:
        """``(i, j, k)`` sizes, as SimpleITK and VTK report them."""
        k, j, i = self.array.shape
        return (i, j, k)

    @property
    def affine(self) -> np.ndarray:
        """4×4 matrix mapping ``(i, j, k, 1)`` to LPS mm."""
        affine = np.eye(4)
        affine[:3, :3] = self.direction * np.asarray(self.spacing)[None, :]
        affine[:3, 3] = self.origin
        return affine

    @property
    def ras_affine(self) -> np.ndarray:
        """4×4 matrix mapping ``(i, j, k, 1)`` to RAS mm (the NIfTI convention)."""
        return np.diag([-1.0, -1.0, 1.0, 1.0]) @ self.affine

    def index_to_lps(self, ijk: Any) -> np.ndarray:
        """LPS mm of continuous voxel index/indices ``(i, j, k)`` (last axis of length 3)."""
        ijk = np.asarray(ijk, dtype=np.float64)
        matrix = self.direction * np.asarray(self.spacing)[None, :]
        return ijk @ matrix.T + np.asarray(self.origin)

    def lps_to_index(self, lps: Any) -> np.ndarray:
        """Continuous voxel index ``(i, j, k)`` of LPS point(s) in mm."""
        lps = np.asarray(lps, dtype=np.float64)
        matrix = self.direction * np.asarray(self.spacing)[None, :]
        return (lps - np.asarray(self.origin)) @ np.linalg.inv(matrix).T

    def with_array(self, array: np.ndarray, **changes: Any) -> Volume:
        """A Volume with the same geometry and a new array of the same shape."""
        if array.shape != self.array.shape:
            raise ValueError(f"shape {array.shape} differs from {self.array.shape}")
        return replace(self, array=array, **changes)

    # -- SimpleITK, the one place geometry crosses over -------------------------------------
    def to_sitk(self) -> SimpleITK.Image:
        """A SimpleITK image with the same voxels and geometry (the array is copied)."""
        import SimpleITK as sitk

        image = sitk.GetImageFromArray(np.ascontiguousarray(self.array))
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(tuple(float(v) for v in self.direction.ravel()))
        return image

    @classmethod
    def from_sitk(
        cls,
        image: SimpleITK.Image,
        *,
        warnings: tuple[str, ...] = (),
        metadata: Mapping[str, Any] | None = None,
    ) -> Volume:
        """A Volume from a 3D scalar SimpleITK image (2D images become one slice)."""
        import SimpleITK as sitk

        if image.GetNumberOfComponentsPerPixel() != 1:
            raise ValueError("only scalar images convert to a Volume")
        if image.GetDimension() == 2:
            image = sitk.JoinSeries([image])
        array = sitk.GetArrayFromImage(image)
        return cls(
            array=array,
            spacing=image.GetSpacing(),
            origin=image.GetOrigin(),
            direction=np.asarray(image.GetDirection()).reshape(3, 3),
            warnings=warnings,
            metadata=metadata or {},
        )

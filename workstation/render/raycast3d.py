"""The base image as a GPU ray-cast ``vtkVolume``, and the ray caster's quality levels.

- :class:`RenderQuality` / :data:`QUALITY`: ``"interactive"`` and ``"still"`` sampling, as
  plain data.
- :class:`VolumeProp`: the volume actor whose preset, opacity, crop and quality change without
  rebuilding the actor or re-uploading the voxels.

vtk and pyvista are imported inside the functions and methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from workstation.core.volume import Volume
from workstation.render.camera3d import default_preset
from workstation.render.crop3d import CROPPING_FLAGS, CrosshairCrop
from workstation.render.volume3d import to_image_data, transfer_function

__all__ = ["QUALITY", "RenderQuality", "VolumeProp"]

_GPU_DTYPES = (np.uint8, np.int8, np.uint16, np.int16, np.float32)


@dataclass(frozen=True)
class RenderQuality:
    """Ray-caster sampling: along each ray (in voxels of the finest spacing) and across the
    screen (pixels between rays; 1 = every pixel)."""

    name: str
    sample_distance: float
    image_sample_distance: float

    def apply(self, mapper: Any, spacing: Any) -> None:
        """Set a ``vtkGPUVolumeRayCastMapper`` to this quality for voxels of ``spacing`` mm."""
        mapper.SetAutoAdjustSampleDistances(False)
        mapper.SetLockSampleDistanceToInputSpacing(False)
        mapper.SetSampleDistance(self.sample_distance * float(min(spacing)))
        mapper.SetImageSampleDistance(self.image_sample_distance)


QUALITY: dict[str, RenderQuality] = {
    "still": RenderQuality("still", 1.0, 1.0),
    "interactive": RenderQuality("interactive", 2.0, 2.0),
}
"""``"still"``: one sample per voxel along every pixel's ray, for the resting frame;
``"interactive"``: 8x fewer samples while the user drags (a ray per 2 x 2 pixels, each with
half the steps)."""


class VolumeProp:
    """The volume as a GPU ray-cast ``vtkVolume`` in LPS mm.

    The mapper reads the voxels in the volume's local frame (``spacing * index``, no rotation)
    and the actor's user matrix places them in LPS (that is ``image``'s index-to-physical
    matrix): VTK's cropping planes are then plain per-axis planes whatever the direction
    (the ray caster's cropping ignores an image's direction matrix). Changing the preset, the
    opacity, the crop or the quality updates transfer functions or uniforms; the voxels are
    uploaded once (and again after :meth:`refresh`). They are shared with ``volume.array``
    when their type suits the GPU (else copied to ``float32``).
    """

    def __init__(self, volume: Volume, preset: str | None = None, *, opacity: float = 1.0) -> None:
        import vtkmodules.vtkRenderingVolumeOpenGL2  # noqa: F401  (the OpenGL ray caster)
        from vtkmodules.vtkCommonDataModel import vtkImageData
        from vtkmodules.vtkRenderingCore import vtkVolume, vtkVolumeProperty
        from vtkmodules.vtkRenderingVolume import vtkGPUVolumeRayCastMapper

        self.volume = volume
        self.image = to_image_data(_gpu_ready(volume))
        """The voxels as ``pyvista.ImageData`` in LPS (:func:`to_image_data`)."""
        self.local = vtkImageData()
        self.local.SetDimensions(self.image.dimensions)
        self.local.SetSpacing(self.image.spacing)
        self.local.GetPointData().SetScalars(self.image.GetPointData().GetScalars())
        to_lps = np.asarray(self.image.index_to_physical_matrix, float)
        to_lps = to_lps @ np.diag([*(1.0 / np.asarray(self.image.spacing)), 1.0])
        self.mapper = vtkGPUVolumeRayCastMapper()
        self.mapper.SetInputData(self.local)
        self.mapper.SetBlendModeToComposite()
        self.property = vtkVolumeProperty()
        self.property.SetInterpolationTypeToLinear()
        self.property.ShadeOff()
        # pyvista's default (as render_offscreen uses): the bounding diagonal per mean voxel count
        dims = np.asarray(self.image.dimensions, float)
        self.property.SetScalarOpacityUnitDistance(self.image.length / max(dims.mean() - 1, 1.0))
        self.actor = vtkVolume()
        self.actor.SetMapper(self.mapper)
        self.actor.SetProperty(self.property)
        self.actor.SetUserMatrix(_vtk_matrix(to_lps))
        scalars = self.image.point_data["values"]
        self._data_range = float(scalars.max() - scalars.min()) if scalars.size else 0.0
        self.preset = preset or default_preset(volume)
        self.opacity = float(opacity)
        self.quality = "still"
        self.crop: CrosshairCrop | None = None
        self.set_preset(self.preset)
        self.set_quality("still")

    @property
    def bounds(self) -> tuple[float, float, float, float, float, float]:
        """LPS bounds of the volume (``xmin, xmax, ymin, ymax, zmin, zmax``)."""
        return tuple(self.image.bounds)  # type: ignore[return-value]

    def set_preset(self, name: str, *, opacity: float | None = None) -> None:
        """Apply the transfer function ``name`` (scaled by ``opacity``, default the current)."""
        import pyvista as pv
        from vtkmodules.vtkCommonDataModel import vtkPiecewiseFunction
        from vtkmodules.vtkRenderingCore import vtkColorTransferFunction

        tf = transfer_function(name, self.volume)
        self.preset = name
        self.opacity = self.opacity if opacity is None else float(opacity)
        # VTK sizes its lookup textures by the data range over the smallest gap between nodes:
        # keep nodes 1/1000 of the range apart (a degenerate volume's percentiles coincide).
        gap = 1e-3 * max(self._data_range, tf.clim[1] - tf.clim[0], 1.0)
        points = _spread(tf.points, gap)
        n = int(np.clip((points[-1] - points[0]) / gap, 2, 256))
        colours = np.asarray(pv.LookupTable(cmap=tf.cmap, n_values=n).values, float) / 255.0
        colour_tf = vtkColorTransferFunction()
        for value, rgba in zip(np.linspace(points[0], points[-1], n), colours, strict=True):
            colour_tf.AddRGBPoint(float(value), *rgba[:3])
        opacity_tf = vtkPiecewiseFunction()
        for value, alpha in zip(points, tf.opacities, strict=True):
            opacity_tf.AddPoint(float(value), float(alpha) * self.opacity)
        self.property.SetColor(colour_tf)
        self.property.SetScalarOpacity(opacity_tf)

    def set_opacity(self, opacity: float) -> None:
        """Scale the preset's opacities (a layer's opacity)."""
        self.set_preset(self.preset, opacity=opacity)

    def set_crop(self, crop: CrosshairCrop | None) -> None:
        """Hide ``crop``'s octant (``None``: show everything); uniforms only, no upload."""
        self.crop = crop
        self.mapper.SetCropping(crop is not None)
        if crop is not None:
            self.mapper.SetCroppingRegionPlanes(*crop.region_planes)
            self.mapper.SetCroppingRegionFlags(CROPPING_FLAGS)

    def set_quality(self, level: str) -> None:
        """``"still"`` or ``"interactive"`` (:data:`QUALITY`)."""
        QUALITY[level].apply(self.mapper, self.volume.spacing)
        self.quality = level

    def set_visible(self, visible: bool) -> None:
        self.actor.SetVisibility(bool(visible))

    def refresh(self) -> None:
        """The voxels changed in place (a progressive load finished): upload them again at the
        next render and rescale the preset to the new intensities."""
        if _gpu_ready(self.volume) is not self.volume:  # a converted copy: convert again
            self.image.point_data["values"] = _gpu_ready(self.volume).array.reshape(-1)
            self.local.GetPointData().SetScalars(self.image.GetPointData().GetScalars())
        self.local.GetPointData().GetScalars().Modified()
        self.local.Modified()
        scalars = self.image.point_data["values"]
        self._data_range = float(scalars.max() - scalars.min()) if scalars.size else 0.0
        self.set_preset(self.preset)


def _spread(points: Any, gap: float) -> np.ndarray:
    """``points`` moved up where needed so that consecutive ones are ``gap`` or more apart."""
    points = np.asarray(points, float)
    offsets = gap * np.arange(len(points))
    return np.maximum.accumulate(points - offsets) + offsets


def _vtk_matrix(matrix: np.ndarray) -> Any:
    from vtkmodules.vtkCommonMath import vtkMatrix4x4

    result = vtkMatrix4x4()
    for row in range(4):
        for col in range(4):
            result.SetElement(row, col, float(matrix[row, col]))
    return result


def _gpu_ready(volume: Volume) -> Volume:
    if volume.array.dtype in _GPU_DTYPES:
        return volume
    return volume.with_array(volume.array.astype(np.float32))

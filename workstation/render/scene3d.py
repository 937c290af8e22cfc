"""What the 3D view shows, decided without Qt or a window (testable offscreen).

- :class:`CrosshairCrop` / :func:`crosshair_crop`: the three planes through the cursor along the
  volume's axes and the octant they cut away (by default the one facing the default camera, so
  the MPR planes' intersection shows, like "crop to crosshair"). The volume applies it as the
  ray caster's *cropping regions* (a uniform update: nothing is re-uploaded when the cursor
  moves); surfaces apply it as a clip filter with the same three planes.
- :class:`RenderQuality` / :data:`QUALITY`: the ray caster's ``"interactive"`` and ``"still"``
  sampling, as plain data.
- :class:`VolumeProp`: the base image as a GPU ray-cast ``vtkVolume`` whose preset, opacity,
  crop and quality change without rebuilding the actor or re-uploading the voxels.
- :class:`SurfaceProp`: a surface actor that a crop clips in place; :func:`label_surfaces` (one
  smoothed surface per label value) and :func:`heatmap_surface` (an iso-surface) make the meshes,
  in LPS mm, on a worker thread.

pyvista and vtk are imported inside the functions and classes, so importing this module is cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from workstation.core.tasks import CancelToken, ProgressFn, check_cancel, throttled
from workstation.core.volume import Volume
from workstation.render.colormaps import colormap, label_color
from workstation.render.volume3d import brain_surface, to_image_data, transfer_function

if TYPE_CHECKING:
    import pyvista

__all__ = [
    "CROPPING_FLAGS",
    "DEFAULT_VIEW",
    "QUALITY",
    "CameraPose",
    "CrosshairCrop",
    "LabelSurface",
    "RenderQuality",
    "SurfaceProp",
    "VolumeProp",
    "crosshair_crop",
    "default_camera",
    "default_preset",
    "facing_octant",
    "heatmap_surface",
    "label_surfaces",
]

RGBA = tuple[int, int, int, int]

# (unit LPS vector from the focal point to the camera, view-up): the patient seen from the front,
# a little from the left and from above (LPS: +x left, -y anterior, +z superior).
_TO_CAMERA = np.array([0.45, -0.8, 0.4]) / np.linalg.norm([0.45, -0.8, 0.4])
DEFAULT_VIEW: tuple[tuple[float, float, float], tuple[float, float, float]] = (
    (float(_TO_CAMERA[0]), float(_TO_CAMERA[1]), float(_TO_CAMERA[2])),
    (0.0, 0.0, 1.0),
)

# The ray caster's 27 cropping regions are numbered x + 3y + 9z over (below, between, above)
# its planes; the crop puts the cut octant "between" on every axis: region 13, the only one hidden.
CROPPING_FLAGS = ((1 << 27) - 1) & ~(1 << 13)
"""``SetCroppingRegionFlags`` value: every region shown except the middle one (the cut octant)."""

_GPU_DTYPES = (np.uint8, np.int8, np.uint16, np.int16, np.float32)


# -- camera ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CameraPose:
    """A perspective camera: position, focal point and view-up, LPS mm."""

    position: tuple[float, float, float]
    focal_point: tuple[float, float, float]
    up: tuple[float, float, float]

    @property
    def to_camera(self) -> np.ndarray:
        """Unit vector from the focal point to the camera."""
        vector = np.subtract(self.position, self.focal_point)
        return vector / (np.linalg.norm(vector) or 1.0)


def default_camera(
    bounds: Any, view: tuple[Any, Any] = DEFAULT_VIEW, *, view_angle: float = 30.0
) -> CameraPose:
    """The pose looking at the centre of ``bounds`` (``xmin, xmax, ymin, ...``) from ``view``.

    The distance fits 0.7 of the bounding sphere in the view angle: the volume's corners may
    leave the frame, its contents (a head rarely fills the corners) do not.
    """
    lo, hi = np.asarray(bounds[0::2], float), np.asarray(bounds[1::2], float)
    centre = (lo + hi) / 2
    radius = 0.7 * float(np.linalg.norm(hi - lo)) / 2 or 1.0
    distance = radius / np.sin(np.radians(view_angle) / 2)
    to_camera = np.asarray(view[0], float) / np.linalg.norm(view[0])
    return CameraPose(
        tuple(centre + distance * to_camera),  # type: ignore[arg-type]
        tuple(centre),  # type: ignore[arg-type]
        tuple(float(v) for v in view[1]),  # type: ignore[arg-type]
    )


def facing_octant(volume: Volume, to_camera: Any = DEFAULT_VIEW[0]) -> tuple[int, int, int]:
    """Signs ``(si, sj, sk)`` of the octant (along the volume's i, j, k axes) facing the camera."""
    dots = np.asarray(volume.direction).T @ np.asarray(to_camera, float)
    return tuple(1 if d >= 0 else -1 for d in dots)  # type: ignore[return-value]


def default_preset(volume: Volume) -> str:
    """The volume-rendering preset for the modality: ``"CT bone"`` for CT, else ``"MR brain"``."""
    return "CT bone" if str(volume.metadata.get("modality", "")).upper() == "CT" else "MR brain"


# -- crop to crosshair -------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class CrosshairCrop:
    """Three planes through ``centre_lps`` along the volume's axes, and the octant cut away.

    ``cut[a]`` is +1 when the cut octant lies on the side of increasing index along axis ``a``
    (i, j, k), else -1. ``region_planes`` is the ray caster's ``SetCroppingRegionPlanes`` value
    in the volume's *local* frame (``spacing * index``, voxel 0 at the origin, no rotation; where
    :class:`VolumeProp` puts its mapper's input): each pair brackets the cut side of one axis.
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
    """The crop through ``cursor_lps`` (clamped into the volume) cutting the octant ``cut``.

    ``cut`` defaults to :func:`facing_octant` of :data:`DEFAULT_VIEW`.
    """
    size = np.asarray(volume.size, float)
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


# -- quality -----------------------------------------------------------------------------------
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


# -- the volume --------------------------------------------------------------------------------
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


# -- surfaces ----------------------------------------------------------------------------------
class SurfaceProp:
    """A surface actor (colour, opacity, smooth shading) that a :class:`CrosshairCrop` clips.

    ``label`` records the label value the mesh outlines. With a crop the mapper reads a clip
    filter (three planes, re-run on the next render when the cursor moves); without one it reads
    the mesh directly. The actor stays the same object.
    """

    def __init__(
        self, mesh: pyvista.PolyData, rgba: Any, *, opacity: float = 1.0, label: int = 0
    ) -> None:
        from vtkmodules.vtkCommonDataModel import vtkPlanes
        from vtkmodules.vtkFiltersCore import vtkClipPolyData
        from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper

        self.mesh = mesh
        self.label = int(label)
        self.crop: CrosshairCrop | None = None
        self._planes = vtkPlanes()
        self._clip = vtkClipPolyData()
        self._clip.SetInputData(mesh)
        self._clip.SetClipFunction(self._planes)
        self.mapper = vtkPolyDataMapper()
        self.mapper.ScalarVisibilityOff()
        self.mapper.SetInputData(mesh)
        self.actor = vtkActor()
        self.actor.SetMapper(self.mapper)
        prop = self.actor.GetProperty()
        prop.SetInterpolationToPhong()
        prop.SetSpecular(0.2)
        prop.SetSpecularPower(20.0)
        self.set_color(rgba)
        self.set_opacity(opacity)

    def set_color(self, rgba: Any) -> None:
        """RGB(A) 0-255; the alpha multiplies :meth:`set_opacity`'s value."""
        values = [int(v) for v in rgba]
        self.actor.GetProperty().SetColor(*(v / 255.0 for v in values[:3]))
        self._alpha = values[3] / 255.0 if len(values) > 3 else 1.0
        self.set_opacity(getattr(self, "_opacity", 1.0))

    def set_opacity(self, opacity: float) -> None:
        self._opacity = float(opacity)
        self.actor.GetProperty().SetOpacity(self._opacity * self._alpha)

    def set_visible(self, visible: bool) -> None:
        self.actor.SetVisibility(bool(visible))

    @property
    def visible(self) -> bool:
        return bool(self.actor.GetVisibility())

    def set_crop(self, crop: CrosshairCrop | None) -> None:
        """Clip away ``crop``'s octant (``None``: the whole mesh)."""
        self.crop = crop
        if crop is None:
            self.mapper.SetInputData(self.mesh)
            return
        crop.update_planes(self._planes)
        self._clip.Modified()
        self.mapper.SetInputConnection(self._clip.GetOutputPort())


@dataclass(frozen=True, eq=False)
class LabelSurface:
    """The surface of one label value, in LPS mm, with the colour it is drawn in."""

    label: int
    rgba: RGBA
    mesh: pyvista.PolyData


def label_surfaces(
    volume: Volume,
    colors: Mapping[int, RGBA] | Callable[[int], RGBA] | None = None,
    *,
    smooth_iterations: int = 15,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> list[LabelSurface]:
    """One closed, smoothed surface per nonzero label of ``volume`` (integers), LPS mm.

    Each label is contoured (flying edges at 0.5 of its mask, Taubin smoothing, normals:
    :func:`~workstation.render.volume3d.brain_surface`) inside its own bounding box only.
    ``colors`` maps a label to RGBA (a mapping or a function such as ``LabelsLayer.color``);
    labels it lacks get :func:`~workstation.render.colormaps.label_color`. Checks ``cancel``
    between labels.
    """
    from scipy import ndimage

    labels = np.asarray(volume.array)
    if labels.dtype == bool:
        labels = labels.astype(np.uint8)
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"label surfaces need integer labels, got {labels.dtype}")
    if labels.size and labels.min() < 0:  # negative labels are not drawn
        labels = np.where(labels > 0, labels, 0)
    boxes = ndimage.find_objects(labels)  # one pass: the bounding box of each label 1..max
    values = [n + 1 for n, box in enumerate(boxes) if box is not None]
    report = throttled(progress)
    surfaces: list[LabelSurface] = []
    for n, value in enumerate(values):
        check_cancel(cancel)
        report(n, len(values), f"surface of label {value}")
        box = boxes[value - 1]
        mask = (labels[box] == value).astype(np.uint8)
        corner = np.array([box[2].start, box[1].start, box[0].start], float)  # (i, j, k)
        local = Volume(
            mask,
            spacing=volume.spacing,
            origin=tuple(volume.index_to_lps(corner)),
            direction=volume.direction,
        )
        mesh = brain_surface(local, smooth_iterations=smooth_iterations)
        surfaces.append(LabelSurface(value, _color_of(colors, value), mesh))
    report(len(values), len(values), "label surfaces done")
    return surfaces


def _color_of(colors: Mapping[int, RGBA] | Callable[[int], RGBA] | None, value: int) -> RGBA:
    if callable(colors):
        return tuple(int(c) for c in colors(value))  # type: ignore[return-value]
    if colors is not None and value in colors:
        return tuple(int(c) for c in colors[value])  # type: ignore[return-value]
    return label_color(value)


def heatmap_surface(
    volume: Volume,
    level: float,
    *,
    cmap: str = "inferno",
    value_range: tuple[float, float] | None = None,
    cancel: CancelToken | None = None,
) -> LabelSurface | None:
    """The iso-surface of ``volume`` at ``level`` (LPS mm), coloured by ``cmap`` at ``level``
    within ``value_range``; ``None`` when nothing reaches ``level``. NaNs count as below it."""
    import pyvista as pv

    values = np.asarray(volume.array, np.float32)
    finite = np.isfinite(values)
    if not np.any(values[finite] >= level):
        return None
    check_cancel(cancel)
    floor = np.float32(min(level - 1.0, float(values[finite].min())))
    padded = np.pad(np.where(finite, values, floor), 1, constant_values=floor)
    grid = pv.ImageData(dimensions=padded.shape[::-1], origin=(-1.0, -1.0, -1.0))
    grid.point_data["values"] = padded.reshape(-1)
    mesh = grid.contour([float(level)], scalars="values", method="flying_edges")
    mesh.points = volume.index_to_lps(np.asarray(mesh.points, dtype=np.float64))
    mesh = mesh.compute_normals(auto_orient_normals=False, split_vertices=False)
    low, high = value_range or (float(level), float(level) + 1.0)
    position = int(np.clip((level - low) / ((high - low) or 1.0), 0.0, 1.0) * 255)
    rgba = tuple(int(c) for c in colormap(cmap)[position])
    return LabelSurface(0, rgba, mesh)  # type: ignore[arg-type]

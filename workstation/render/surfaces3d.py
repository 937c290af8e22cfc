"""Surfaces for the 3D view: label surfaces, heatmap iso-surfaces and the actor that draws them.

- :func:`label_surfaces`: one closed surface per label, all from one SurfaceNets pass
  (:mod:`workstation.render.labelmesh3d`), kept under a triangle budget per label.
- :func:`heatmap_surface`: the iso-surface of a heatmap at a level.
- :class:`SurfaceProp`: a surface actor that a :class:`~workstation.render.crop3d.CrosshairCrop`
  clips in place.

Meshes are ``pyvista.PolyData`` in LPS mm, made on a worker thread; actors are made on the GUI
thread. pyvista and vtk are imported inside the functions and methods.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from workstation.core.tasks import CancelToken, ProgressFn, check_cancel, throttled
from workstation.core.volume import Volume
from workstation.render.colormaps import colormap, label_color
from workstation.render.crop3d import CrosshairCrop
from workstation.render.labelmesh3d import fit_budget, label_mesh, vtk_orients_faces

if TYPE_CHECKING:
    import pyvista

__all__ = [
    "LABEL_TRIANGLE_BUDGET",
    "LabelSurface",
    "SurfaceProp",
    "heatmap_surface",
    "label_surfaces",
]

RGBA = tuple[int, int, int, int]

LABEL_TRIANGLE_BUDGET = 200_000
"""Default most triangles per label surface: the demo's three tissue labels (about 2.4 million
triangles by marching cubes) draw in about a third of the time."""


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
    smooth_iterations: int = 16,
    max_triangles: int | None = LABEL_TRIANGLE_BUDGET,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> list[LabelSurface]:
    """One closed, smoothed surface per nonzero label of ``volume`` (integers), LPS mm.

    All labels come from one SurfaceNets pass over the labels' bounding box
    (:func:`~workstation.render.labelmesh3d.label_mesh`, ``smooth_iterations`` of constrained
    smoothing; 0: the voxels' staircase), so touching labels share their boundary exactly.
    When a label has more than ``max_triangles`` triangles, the mesh is simplified
    (:func:`~workstation.render.labelmesh3d.fit_budget`: vertices merge within bins of at most
    4 voxels; ``None``: never). Each surface has outward point normals (``"Normals"``).
    ``colors`` maps a label to RGBA (a mapping or a function such as ``LabelsLayer.color``);
    labels it lacks get :func:`~workstation.render.colormaps.label_color`. Checks ``cancel``
    between steps.
    """
    import pyvista as pv
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
    if values:
        check_cancel(cancel)
        report(0, len(values), "surface nets")
        low = np.min([[s.start for s in boxes[v - 1]] for v in values], axis=0)
        high = np.max([[s.stop for s in boxes[v - 1]] for v in values], axis=0)
        crop = labels[tuple(slice(lo, hi) for lo, hi in zip(low, high, strict=True))]
        mesh = label_mesh(crop, values, smooth_iterations=smooth_iterations, corner=low[::-1])
        if max_triangles is not None:
            check_cancel(cancel)
            report(0, len(values), "simplifying the surfaces")
            mesh = fit_budget(mesh, max_triangles, cancel=cancel)
    oriented = bool(values) and vtk_orients_faces()
    surfaces: list[LabelSurface] = []
    for n, value in enumerate(values):
        check_cancel(cancel)
        report(n, len(values), f"surface of label {value}")
        points, triangles = mesh.surface(value)
        surface = pv.PolyData.from_regular_faces(volume.index_to_lps(points), triangles)
        if surface.n_cells:
            surface = surface.compute_normals(
                consistent_normals=not oriented,
                auto_orient_normals=not oriented,
                split_vertices=False,
            )
        surfaces.append(LabelSurface(value, _color_of(colors, value), surface))
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

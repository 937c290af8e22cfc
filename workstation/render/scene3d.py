"""What the 3D view shows, decided without Qt or a window (testable offscreen).

The public face of the 3D scene; each part lives in its own module:

- :mod:`~workstation.render.camera3d`: :data:`DEFAULT_VIEW`, :class:`CameraPose` /
  :func:`default_camera`, :func:`facing_octant` and the modality's :func:`default_preset`.
- :mod:`~workstation.render.crop3d`: :class:`CrosshairCrop` / :func:`crosshair_crop`, the three
  planes through the cursor along the volume's axes and the octant they cut away (by default
  the one facing the default camera, so the MPR planes' intersection shows, like "crop to
  crosshair"), and the ray caster's :data:`CROPPING_FLAGS`.
- :mod:`~workstation.render.raycast3d`: :class:`VolumeProp`, the base image as a GPU ray-cast
  ``vtkVolume`` whose preset, opacity, crop and quality change without rebuilding the actor or
  re-uploading the voxels; :class:`RenderQuality` / :data:`QUALITY`, its ``"interactive"`` and
  ``"still"`` sampling.
- :mod:`~workstation.render.surfaces3d`: :class:`SurfaceProp`, a surface actor that a crop clips
  in place; :func:`label_surfaces` (one surface per label, from one SurfaceNets pass, under a
  triangle budget: :mod:`~workstation.render.labelmesh3d`) and :func:`heatmap_surface` (an
  iso-surface) make the meshes, in LPS mm, on a worker thread.

pyvista and vtk are imported inside the functions and classes, so importing this module is cheap.
"""

from __future__ import annotations

from workstation.render.camera3d import (
    DEFAULT_VIEW,
    CameraPose,
    default_camera,
    default_preset,
    facing_octant,
)
from workstation.render.crop3d import CROPPING_FLAGS, CrosshairCrop, crosshair_crop
from workstation.render.raycast3d import QUALITY, RenderQuality, VolumeProp
from workstation.render.surfaces3d import (
    LABEL_TRIANGLE_BUDGET,
    LabelSurface,
    SurfaceProp,
    heatmap_surface,
    label_surfaces,
)

__all__ = [
    "CROPPING_FLAGS",
    "DEFAULT_VIEW",
    "LABEL_TRIANGLE_BUDGET",
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

"""Qt-free rendering: a Volume becomes 2D images for the viewers.

- :mod:`~workstation.render.windowing`: grey-level windows (CT presets, percentile auto window,
  the series' DICOM window) and the DICOM linear VOI function into ``uint8``.
- :mod:`~workstation.render.reslice`: multiplanar reformatting in patient (LPS) geometry with
  radiological screen conventions; each 2D image carries the LPS position of its pixels.
- :mod:`~workstation.render.orientation`: the view planes, their screen directions and slice
  positions (scrolling), orientation letters for a view's edges, a volume's acquisition plane.
- :mod:`~workstation.render.layers`, :mod:`~workstation.render.study_view`: the evented layer
  model (image, labels, heatmap layers in a :class:`StudyView` with the shared cursor) that
  both 2D and 3D views draw; inference and plugins add layers with :meth:`StudyView.add`.
- :mod:`~workstation.render.compose`: 2D alpha compositing of the layers' slices;
  :mod:`~workstation.render.colormaps`: colour lookup tables and the label palette.
- :mod:`~workstation.render.tissue`: the demo study's tissue labels as a labels layer.
- :mod:`~workstation.render.volume3d`: the one Volume -> ``pyvista.ImageData`` conversion,
  volume-rendering transfer functions, brain surface extraction, offscreen 3D frames (pyvista
  and vtk are imported only when these functions run).

No plotter and no window here: the ``ui`` package draws what these functions return.
"""

from __future__ import annotations

from workstation.render.colormaps import COLORMAPS, colormap, label_color, label_palette
from workstation.render.compose import Compositor, compose, compose_view, layer_rgba
from workstation.render.events import Event
from workstation.render.grid import GeometryMismatchError, check_same_grid
from workstation.render.layers import HeatmapLayer, ImageLayer, LabelsLayer, Layer
from workstation.render.orientation import (
    EdgeLabels,
    ObliquePlane,
    Plane,
    ViewPlane,
    direction_label,
    edge_labels,
    orientation_of,
    plane_axes,
    point_at_slice,
    slice_count,
    slice_index_of,
)
from workstation.render.reslice import Slice2D, reslice, volume_minimum
from workstation.render.study_view import StudyView
from workstation.render.tissue import demo_tissue_labels
from workstation.render.volume3d import (
    TRANSFER_PRESETS,
    TransferFunction,
    brain_surface,
    render_offscreen,
    to_image_data,
    transfer_function,
)
from workstation.render.windowing import (
    CT_PRESETS,
    Window,
    apply_window,
    auto_window,
    dicom_window,
    is_inverted,
    presets_for,
)

__all__ = [
    "COLORMAPS",
    "CT_PRESETS",
    "TRANSFER_PRESETS",
    "Compositor",
    "EdgeLabels",
    "Event",
    "GeometryMismatchError",
    "HeatmapLayer",
    "ImageLayer",
    "LabelsLayer",
    "Layer",
    "ObliquePlane",
    "Plane",
    "Slice2D",
    "StudyView",
    "TransferFunction",
    "ViewPlane",
    "Window",
    "apply_window",
    "auto_window",
    "brain_surface",
    "check_same_grid",
    "colormap",
    "compose",
    "compose_view",
    "demo_tissue_labels",
    "dicom_window",
    "direction_label",
    "edge_labels",
    "is_inverted",
    "label_color",
    "label_palette",
    "layer_rgba",
    "orientation_of",
    "plane_axes",
    "point_at_slice",
    "presets_for",
    "render_offscreen",
    "reslice",
    "slice_count",
    "slice_index_of",
    "to_image_data",
    "transfer_function",
    "volume_minimum",
]

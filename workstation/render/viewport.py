"""Zoom and pan of a 2D view: the pure widget <-> image pixel mapping, with no Qt.

A :class:`Viewport` is relative to *fit to window* (``zoom == 1``, ``pan == (0, 0)``: the whole
slice, physical aspect kept, centred). The slice is described by its :class:`ImageFrame` (pixel
grid and pixel spacing in mm) and the widget by its ``(width, height)`` in device-independent
pixels. Positions:

- image pixel ``(row, col)``: continuous, pixel centres at integers (``(0, 0)`` is the centre of
  the top-left pixel, whose outer corner is ``(-0.5, -0.5)``);
- image millimetres ``(x, y)``: ``x = (col + 0.5) * col_spacing`` right, ``y = (row + 0.5) *
  row_spacing`` down from the image's outer top-left corner;
- widget ``(x, y)``: pixels right and down from the widget's top-left corner.

``pan`` is the offset in image mm (right, down) of the image point shown at the widget centre
from the image centre, so the same anatomy stays centred when the widget is resized. With
``s = fit_scale(size, frame) * zoom`` widget pixels per mm::

    widget = size / 2 + (mm - frame.extent_mm / 2 - pan) * s
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "FIT",
    "MAX_ZOOM",
    "MIN_ZOOM",
    "ImageFrame",
    "Size",
    "Viewport",
    "fit_scale",
    "image_rect",
    "image_to_widget",
    "pan_by",
    "pixels_per_mm",
    "widget_to_image",
    "zoom_about",
]

MIN_ZOOM = 0.1  # a tenth of fit to window
MAX_ZOOM = 64.0  # 64x fit: a 512-pixel image fitted to ~500 px shows 64 screen px per pixel

Size = tuple[float, float]
"""A widget's ``(width, height)`` in pixels."""


@dataclass(frozen=True)
class Viewport:
    """Zoom (relative to fit to window) and pan (image mm at the widget centre, from the image
    centre, ``(right, down)``) of one view."""

    zoom: float = 1.0
    pan: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        zoom = float(self.zoom)
        pan = (float(self.pan[0]), float(self.pan[1]))
        if not (math.isfinite(zoom) and zoom > 0.0):
            raise ValueError(f"zoom must be finite and positive, got {self.zoom!r}")
        if not all(math.isfinite(v) for v in pan):
            raise ValueError(f"pan must be finite, got {self.pan!r}")
        object.__setattr__(self, "zoom", zoom)
        object.__setattr__(self, "pan", pan)


FIT = Viewport()
"""Fit to window: the whole slice, centred."""


@dataclass(frozen=True)
class ImageFrame:
    """A slice's pixel grid: ``shape = (rows, cols)`` and ``spacing = (row_spacing,
    col_spacing)`` in mm (a :class:`~workstation.render.Slice2D` gives both)."""

    shape: tuple[int, int]
    spacing: tuple[float, float]

    def __post_init__(self) -> None:
        shape = (int(self.shape[0]), int(self.shape[1]))
        spacing = (float(self.spacing[0]), float(self.spacing[1]))
        if min(shape) < 1:
            raise ValueError(f"an image needs at least one pixel, got shape {self.shape!r}")
        if not all(math.isfinite(v) and v > 0.0 for v in spacing):
            raise ValueError(f"pixel spacing must be finite and positive, got {self.spacing!r}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "spacing", spacing)

    @classmethod
    def of(cls, cut: Any) -> ImageFrame:
        """The frame of a :class:`~workstation.render.Slice2D` (anything with ``shape``,
        ``row_spacing`` and ``col_spacing``)."""
        return cls(tuple(cut.shape[:2]), (cut.row_spacing, cut.col_spacing))  # type: ignore[arg-type]

    @property
    def extent_mm(self) -> tuple[float, float]:
        """``(width, height)`` of the whole image in mm."""
        return self.shape[1] * self.spacing[1], self.shape[0] * self.spacing[0]


def _size(size: Size) -> tuple[float, float]:
    """The widget size, at least one pixel each way (a hidden widget may report zero)."""
    return max(float(size[0]), 1.0), max(float(size[1]), 1.0)


def fit_scale(size: Size, frame: ImageFrame) -> float:
    """Widget pixels per mm that fit the whole image in the widget (``zoom == 1``)."""
    width, height = _size(size)
    width_mm, height_mm = frame.extent_mm
    return min(width / width_mm, height / height_mm)


def pixels_per_mm(viewport: Viewport, size: Size, frame: ImageFrame) -> float:
    """Widget pixels per mm at ``viewport``."""
    return fit_scale(size, frame) * viewport.zoom


def image_to_widget(viewport: Viewport, size: Size, frame: ImageFrame, pixel: Any) -> np.ndarray:
    """Widget ``(x, y)`` of continuous image pixel(s) ``(row, col)`` (last axis of length 2)."""
    rc = np.asarray(pixel, dtype=np.float64)
    width, height = _size(size)
    width_mm, height_mm = frame.extent_mm
    s = pixels_per_mm(viewport, size, frame)
    x_mm = (rc[..., 1] + 0.5) * frame.spacing[1]
    y_mm = (rc[..., 0] + 0.5) * frame.spacing[0]
    x = width / 2.0 + (x_mm - width_mm / 2.0 - viewport.pan[0]) * s
    y = height / 2.0 + (y_mm - height_mm / 2.0 - viewport.pan[1]) * s
    return np.stack([x, y], axis=-1)


def widget_to_image(viewport: Viewport, size: Size, frame: ImageFrame, point: Any) -> np.ndarray:
    """Continuous image ``(row, col)`` under widget position(s) ``(x, y)`` (the inverse of
    :func:`image_to_widget`)."""
    xy = np.asarray(point, dtype=np.float64)
    width, height = _size(size)
    width_mm, height_mm = frame.extent_mm
    s = pixels_per_mm(viewport, size, frame)
    x_mm = (xy[..., 0] - width / 2.0) / s + width_mm / 2.0 + viewport.pan[0]
    y_mm = (xy[..., 1] - height / 2.0) / s + height_mm / 2.0 + viewport.pan[1]
    return np.stack([y_mm / frame.spacing[0] - 0.5, x_mm / frame.spacing[1] - 0.5], axis=-1)


def image_rect(
    viewport: Viewport, size: Size, frame: ImageFrame
) -> tuple[float, float, float, float]:
    """``(left, top, width, height)`` in widget pixels of the whole image's outer edges."""
    left, top = image_to_widget(viewport, size, frame, (-0.5, -0.5))
    s = pixels_per_mm(viewport, size, frame)
    width_mm, height_mm = frame.extent_mm
    return float(left), float(top), width_mm * s, height_mm * s


def zoom_about(
    viewport: Viewport, size: Size, frame: ImageFrame, point: Any, factor: float
) -> Viewport:
    """Zoom by ``factor`` (> 1 magnifies) keeping the image point under widget ``point`` in
    place; the zoom is clamped to ``[MIN_ZOOM, MAX_ZOOM]`` (the point stays put regardless)."""
    if not (math.isfinite(factor) and factor > 0.0):
        raise ValueError(f"zoom factor must be finite and positive, got {factor!r}")
    zoom = min(max(viewport.zoom * factor, MIN_ZOOM), MAX_ZOOM)
    x, y = (float(v) for v in np.asarray(point, dtype=np.float64).reshape(2))
    width, height = _size(size)
    s_old = pixels_per_mm(viewport, size, frame)
    s_new = fit_scale(size, frame) * zoom
    # The mm under the point, kept: pan' = pan + (point - centre) * (1/s_old - 1/s_new).
    pan = (
        viewport.pan[0] + (x - width / 2.0) * (1.0 / s_old - 1.0 / s_new),
        viewport.pan[1] + (y - height / 2.0) * (1.0 / s_old - 1.0 / s_new),
    )
    return Viewport(zoom, pan)


def pan_by(viewport: Viewport, size: Size, frame: ImageFrame, dx: float, dy: float) -> Viewport:
    """Move the image by ``(dx, dy)`` widget pixels (the image follows a dragging hand)."""
    s = pixels_per_mm(viewport, size, frame)
    return Viewport(viewport.zoom, (viewport.pan[0] - dx / s, viewport.pan[1] - dy / s))

"""One plane of a :class:`~workstation.render.StudyView`, painted as a 2D image.

The widget is thin: it observes the model's events, asks :func:`~workstation.render.compose_view`
for the composite and its :class:`~workstation.render.Slice2D` geometry, and writes user actions
back to the model (the cursor for scrolling and clicks, the base layer's window for
window/level drags); every other view follows through the same events. The mouse and key
bindings are in :mod:`workstation.ui.slice_tools`, the overlays in
:mod:`workstation.ui.slice_overlay`, cine in :mod:`workstation.ui.cine`.

Display transform: the pure mapping of :mod:`workstation.render.viewport`. At the default
:data:`~workstation.render.viewport.FIT` viewport the image keeps its physical aspect (pixel
spacing) and is centred, scaled to fit; each view zooms and pans on its own (a new base image
resets it to fit). :meth:`SliceView.pixel_to_widget` and :meth:`SliceView.widget_to_pixel` map
continuous pixel ``(row, col)`` (pixel centres at integers) to widget positions and back.

Rulers live in a :class:`~workstation.render.measure.Measurements` list shared by every view of
the same :class:`StudyView` (:func:`~workstation.render.measure.measurements_for`, unless one is
passed in), so a ruler drawn in one view shows in each view whose plane holds it.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QCloseEvent,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from workstation.render import (
    Compositor,
    Layer,
    Slice2D,
    StudyView,
    ViewPlane,
    compose_view,
    point_at_slice,
    slice_count,
    slice_index_of,
)
from workstation.render import viewport as vp
from workstation.render.measure import Measurements, Ruler, measurements_for, slice_spacing
from workstation.ui.cine import CineController
from workstation.ui.slice_overlay import TEXT, paint_crosshair, paint_labels, paint_rulers
from workstation.ui.slice_tools import SliceTools

__all__ = ["TOOLS", "SliceView", "Tool"]

Tool = Literal["window", "measure"]
TOOLS: tuple[Tool, ...] = ("window", "measure")


class SliceView(QWidget):
    """Shows ``plane`` of ``study_view`` through its shared cursor.

    Signals
    -------
    status_changed(str)
        The value and LPS position under the mouse (empty when outside the image).
    smooth_changed(bool)
        :attr:`smooth` changed.
    tool_changed(str)
        :attr:`tool` changed (``"window"`` or ``"measure"``).
    viewport_changed(object)
        :attr:`viewport` (zoom and pan) changed; the new :class:`Viewport`.
    measurement_added(object)
        A :class:`~workstation.render.measure.Ruler` drawn in this view.
    """

    status_changed = Signal(str)
    smooth_changed = Signal(bool)
    tool_changed = Signal(str)
    viewport_changed = Signal(object)
    measurement_added = Signal(object)

    def __init__(
        self,
        study_view: StudyView,
        plane: ViewPlane,
        parent: QWidget | None = None,
        *,
        measurements: Measurements | None = None,
    ) -> None:
        super().__init__(parent)
        self.study_view = study_view
        self.plane = plane
        self.measurements = measurements_for(study_view) if measurements is None else measurements
        self.status_text = ""
        self.tools = SliceTools(self)
        self._compositor = Compositor()
        self._rgba: np.ndarray | None = None  # the QImage's memory: keep it alive
        self._qimage: QImage | None = None
        self._slice: Slice2D | None = None
        self._spacing = 1.0  # mm between slice positions (ruler visibility)
        self._base: Layer | None = None  # the base layer the viewport was fitted to
        self._dirty = True
        self._viewport = vp.FIT
        self._smooth = True
        self._tool: Tool = "window"
        self._cine: CineController | None = None
        self.setMinimumSize(160, 160)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.PreventContextMenu)  # right drag zooms
        self.setMouseTracking(True)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        events = study_view.events
        self._observed = [
            (events.cursor, self._model_changed),
            (events.changed, self._model_changed),
            (events.inserted, self._model_changed),
            (events.removed, self._model_changed),
            (events.moved, self._model_changed),
            (self.measurements.events.changed, self._measurements_changed),
        ]
        for event, callback in self._observed:
            event.connect(callback)

    # -- model -> widget ----------------------------------------------------------------------
    def _model_changed(self, *_: Any) -> None:
        self.invalidate()

    def _measurements_changed(self) -> None:
        self.update()

    def invalidate(self) -> None:
        """Recompose on the next paint (the voxels or the model changed)."""
        self._dirty = True
        self.update()

    def detach(self) -> None:
        """Stop observing the model and stop cine (called when the widget closes)."""
        if self._cine is not None:
            self._cine.stop()
        self.tools.cancel()
        for event, callback in self._observed:
            event.disconnect(callback)
        self._observed = []

    def closeEvent(self, event: QCloseEvent) -> None:
        self.detach()
        super().closeEvent(event)

    def _refresh(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        view = self.study_view
        if view.base is not self._base:  # a new image: fitted to the window
            self._base = view.base
            self._set_viewport(vp.FIT)
            if view.base is not None:
                self._spacing = slice_spacing(view.base.volume, self.plane)
        if view.base is None or view.cursor_lps is None:
            self._rgba = self._qimage = self._slice = None
            return
        rgba, cut = compose_view(view, self.plane, compositor=self._compositor)
        rgba = np.ascontiguousarray(rgba)
        rows, cols = rgba.shape[:2]
        self._rgba = rgba
        self._qimage = QImage(
            rgba.data, cols, rows, 4 * cols, QImage.Format.Format_RGBA8888_Premultiplied
        )
        self._slice = cut

    # -- display state ------------------------------------------------------------------------
    @property
    def smooth(self) -> bool:
        """Bilinear smoothing when drawing the image scaled (``False``: crisp nearest pixels)."""
        return self._smooth

    @smooth.setter
    def smooth(self, on: bool) -> None:
        if bool(on) != self._smooth:
            self._smooth = bool(on)
            self.update()
            self.smooth_changed.emit(self._smooth)

    @property
    def tool(self) -> Tool:
        """What a left drag does: ``"window"`` (window/level; a click moves the crosshair) or
        ``"measure"`` (draw a ruler)."""
        return self._tool

    @tool.setter
    def tool(self, name: Tool) -> None:
        if name not in TOOLS:
            raise ValueError(f"unknown tool {name!r}; choose one of {', '.join(TOOLS)}")
        if name != self._tool:
            self.tools.cancel()
            self._tool = name
            cross = name == "measure"
            self.setCursor(Qt.CursorShape.CrossCursor if cross else Qt.CursorShape.ArrowCursor)
            self.update()
            self.tool_changed.emit(name)

    @property
    def viewport(self) -> vp.Viewport:
        """This view's zoom and pan (:data:`~workstation.render.viewport.FIT` by default)."""
        return self._viewport

    @viewport.setter
    def viewport(self, value: vp.Viewport) -> None:
        if self._set_viewport(value):
            self.update()

    def _set_viewport(self, value: vp.Viewport) -> bool:
        if value == self._viewport:
            return False
        self._viewport = value
        self.viewport_changed.emit(value)
        return True

    def reset_view(self) -> None:
        """Fit the whole slice to the window again (zoom 1, no pan)."""
        self.viewport = vp.FIT

    def zoom_by(self, factor: float, about: QPointF | None = None) -> None:
        """Zoom by ``factor`` (> 1 magnifies) keeping the image under ``about`` (a widget
        position; default the centre) in place."""
        frame = self._frame()
        if frame is not None:
            point = QPointF(self.width() / 2.0, self.height() / 2.0) if about is None else about
            xy = (point.x(), point.y())
            self.viewport = vp.zoom_about(self._viewport, self._size(), frame, xy, factor)

    def pan_by(self, dx: float, dy: float) -> None:
        """Move the image by ``(dx, dy)`` widget pixels."""
        frame = self._frame()
        if frame is not None:
            self.viewport = vp.pan_by(self._viewport, self._size(), frame, dx, dy)

    @property
    def cine(self) -> CineController:
        """This view's cine player (made on first use)."""
        if self._cine is None:
            self._cine = CineController(self)
        return self._cine

    # -- geometry -----------------------------------------------------------------------------
    @property
    def current_slice(self) -> Slice2D | None:
        """The slice on screen (geometry of its pixels in LPS)."""
        self._refresh()
        return self._slice

    def slice_index(self) -> tuple[int, int] | None:
        """``(index, count)`` of the slice on screen along the plane normal."""
        base, cursor = self.study_view.base, self.study_view.cursor_lps
        if base is None or cursor is None:
            return None
        return slice_index_of(base.volume, self.plane, cursor), slice_count(base.volume, self.plane)

    def _size(self) -> vp.Size:
        return float(self.width()), float(self.height())

    def _frame(self) -> vp.ImageFrame | None:
        cut = self.current_slice
        return None if cut is None else vp.ImageFrame.of(cut)

    def _require_frame(self) -> vp.ImageFrame:
        frame = self._frame()
        if frame is None:
            raise ValueError("nothing is shown yet")
        return frame

    def image_rect(self) -> QRectF:
        """Where the whole image is drawn (zoomed and panned; may extend past the widget)."""
        frame = self._frame()
        if frame is None:
            return QRectF()
        return QRectF(*vp.image_rect(self._viewport, self._size(), frame))

    def pixel_to_widget(self, pixel: Any) -> QPointF:
        """Widget position of continuous image pixel ``(row, col)`` (pixel centres at .0)."""
        rc = np.asarray(pixel, dtype=float).ravel()[:2]
        x, y = vp.image_to_widget(self._viewport, self._size(), self._require_frame(), rc)
        return QPointF(float(x), float(y))

    def widget_to_pixel(self, point: QPointF) -> np.ndarray:
        """Continuous image ``(row, col)`` under a widget position."""
        xy = (point.x(), point.y())
        return vp.widget_to_image(self._viewport, self._size(), self._require_frame(), xy)

    def widget_to_lps(self, point: QPointF) -> np.ndarray:
        """LPS (mm) on the slice's plane under a widget position."""
        cut = self.current_slice
        if cut is None:
            raise ValueError("nothing is shown yet")
        return cut.pixel_to_lps(self.widget_to_pixel(point))

    # -- measurements -------------------------------------------------------------------------
    def visible_measurements(self) -> list[Ruler]:
        """The rulers whose ends lie on the slice on screen (oldest first)."""
        cut = self.current_slice
        return [] if cut is None else self.measurements.visible_on(cut, self._spacing)

    def add_measurement(self, ruler: Ruler) -> None:
        """Add ``ruler`` to the shared measurements and emit :attr:`measurement_added`."""
        self.measurements.add(ruler)
        self.measurement_added.emit(ruler)

    def remove_last_measurement(self) -> Ruler | None:
        """Remove the most recent ruler shown in this view; return it (``None``: none shown)."""
        shown = self.visible_measurements()
        if not shown:
            return None
        self.measurements.remove(shown[-1])
        return shown[-1]

    def clear_measurements(self) -> None:
        """Remove every ruler (of all views sharing the measurements), e.g. for a new series."""
        self.tools.cancel()
        self.measurements.clear()

    # -- painting -----------------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:
        self._refresh()
        painter = QPainter(self)
        try:
            painter.fillRect(self.rect(), Qt.GlobalColor.black)
            if self._qimage is None or self._slice is None:
                painter.setPen(TEXT)
                painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "no image")
                return
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self._smooth)
            painter.drawImage(self.image_rect(), self._qimage, QRectF(self._qimage.rect()))
            paint_crosshair(painter, self)
            draft = [] if self.tools.draft is None else [self.tools.draft]
            paint_rulers(painter, self, self.visible_measurements() + draft)
            paint_labels(painter, self)
        finally:
            painter.end()

    # -- widget -> model ----------------------------------------------------------------------
    def scroll_slices(self, steps: int) -> None:
        """Move the cursor ``steps`` slices along the plane normal (clamped to the volume)."""
        position = self.slice_index()
        if position is not None and steps != 0:
            self.go_to_slice(max(0, min(position[1] - 1, position[0] + steps)))

    def go_to_slice(self, index: int) -> None:
        """Move the cursor along the plane normal onto slice ``index`` (negative: from the
        end, ``-1`` is the last); out-of-range indices are clamped."""
        base, cursor = self.study_view.base, self.study_view.cursor_lps
        if base is None or cursor is None:
            return
        count = slice_count(base.volume, self.plane)
        target = max(0, min(count - 1, index + count if index < 0 else index))
        if target != slice_index_of(base.volume, self.plane, cursor):
            self.study_view.cursor_lps = point_at_slice(base.volume, self.plane, cursor, target)

    def set_cursor_at(self, point: QPointF) -> None:
        """Put the shared cursor (crosshair) under a widget position, inside the image."""
        cut = self.current_slice
        if cut is None:
            return
        row, col = self.widget_to_pixel(point)
        rows, cols = cut.shape
        pixel = (min(max(row, 0.0), rows - 1.0), min(max(col, 0.0), cols - 1.0))
        self.study_view.cursor_lps = cut.pixel_to_lps(pixel)

    def wheelEvent(self, event: QWheelEvent) -> None:
        if not self.tools.wheel(event):  # a used event stays accepted
            super().wheelEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if not self.tools.key(event):  # a used event stays accepted
            super().keyPressEvent(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if not self.tools.press(event):  # a used event stays accepted
            super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        self.tools.move(event)
        self._update_status(event.position())
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if not self.tools.release(event):  # a used event stays accepted
            super().mouseReleaseEvent(event)

    def leaveEvent(self, event: QEvent) -> None:
        self._update_status(None)
        super().leaveEvent(event)

    def _update_status(self, point: QPointF | None) -> None:
        cut = self.current_slice
        text = ""
        if cut is not None and point is not None:
            row, col = self.widget_to_pixel(point)
            r, c = round(float(row)), round(float(col))
            if 0 <= r < cut.shape[0] and 0 <= c < cut.shape[1]:
                x, y, z = cut.pixel_to_lps((r, c))
                value = cut.image[r, c]
                text = f"{self.plane.value}: value {value:g}  LPS ({x:.1f}, {y:.1f}, {z:.1f}) mm"
        if text != self.status_text:
            self.status_text = text
            self.status_changed.emit(text)

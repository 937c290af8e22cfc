"""One plane of a :class:`~workstation.render.StudyView`, painted as a 2D image.

The widget is thin: it observes the model's events, asks :func:`~workstation.render.compose_view`
for the composite and its :class:`~workstation.render.Slice2D` geometry, and writes user actions
back to the model (the cursor for scrolling and clicks, the base layer's window for
window/level drags); every other view follows through the same events.

Display transform: the image keeps its physical aspect (pixel spacing) and is centred, scaled
to fit. Pixel ``(row, col)`` has its centre at ``target.left + (col + 0.5) * sx`` and
``target.top + (row + 0.5) * sy`` (see :meth:`SliceView.pixel_to_widget`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QCloseEvent,
    QColor,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QWheelEvent,
)
from PySide6.QtWidgets import QSizePolicy, QWidget

from workstation.render import (
    Compositor,
    ImageLayer,
    Slice2D,
    StudyView,
    ViewPlane,
    Window,
    compose_view,
    edge_labels,
    point_at_slice,
    slice_count,
    slice_index_of,
)

__all__ = ["SliceView"]

_TEXT = QColor(255, 220, 0)  # never grey: grey is the image's colour
_CROSSHAIR = QColor(0, 200, 255, 160)
_CROSSHAIR_GAP = 8.0  # px left open around the cursor so the crosshair hides no detail
_DRAG_START = 3  # px a press must move to become a window/level drag


class SliceView(QWidget):
    """Shows ``plane`` of ``study_view`` through its shared cursor.

    Signals
    -------
    status_changed(str)
        The value and LPS position under the mouse (empty when outside the image).
    """

    status_changed = Signal(str)

    def __init__(
        self, study_view: StudyView, plane: ViewPlane, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.study_view = study_view
        self.plane = plane
        self.status_text = ""
        self._compositor = Compositor()
        self._rgba: np.ndarray | None = None  # the QImage's memory: keep it alive
        self._qimage: QImage | None = None
        self._slice: Slice2D | None = None
        self._dirty = True
        self._press: tuple[QPointF, Window] | None = None
        self._dragging = False
        self.setMinimumSize(160, 160)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        events = study_view.events
        self._observed = [
            (events.cursor, self._model_changed),
            (events.changed, self._model_changed),
            (events.inserted, self._model_changed),
            (events.removed, self._model_changed),
            (events.moved, self._model_changed),
        ]
        for event, callback in self._observed:
            event.connect(callback)

    # -- model -> widget ----------------------------------------------------------------------
    def _model_changed(self, *_: Any) -> None:
        self.invalidate()

    def invalidate(self) -> None:
        """Recompose on the next paint (the voxels or the model changed)."""
        self._dirty = True
        self.update()

    def detach(self) -> None:
        """Stop observing the model (called when the widget closes)."""
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

    def image_rect(self) -> QRectF:
        """Where the image is drawn: scaled to fit, physical aspect kept, centred."""
        cut = self.current_slice
        if cut is None:
            return QRectF()
        rows, cols = cut.shape
        width_mm, height_mm = cols * cut.col_spacing, rows * cut.row_spacing
        scale = min(self.width() / width_mm, self.height() / height_mm)
        w, h = width_mm * scale, height_mm * scale
        return QRectF((self.width() - w) / 2.0, (self.height() - h) / 2.0, w, h)

    def pixel_to_widget(self, pixel: Any) -> QPointF:
        """Widget position of continuous image pixel ``(row, col)`` (pixel centres at .0)."""
        cut = self.current_slice
        if cut is None:
            raise ValueError("nothing is shown yet")
        rect = self.image_rect()
        row, col = (float(v) for v in np.asarray(pixel, dtype=float).ravel()[:2])
        return QPointF(
            rect.left() + (col + 0.5) * rect.width() / cut.shape[1],
            rect.top() + (row + 0.5) * rect.height() / cut.shape[0],
        )

    def widget_to_pixel(self, point: QPointF) -> np.ndarray:
        """Continuous image ``(row, col)`` under a widget position."""
        cut = self.current_slice
        if cut is None:
            raise ValueError("nothing is shown yet")
        rect = self.image_rect()
        col = (point.x() - rect.left()) * cut.shape[1] / rect.width() - 0.5
        row = (point.y() - rect.top()) * cut.shape[0] / rect.height() - 0.5
        return np.array([row, col])

    # -- painting -----------------------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:
        self._refresh()
        painter = QPainter(self)
        try:
            painter.fillRect(self.rect(), Qt.GlobalColor.black)
            if self._qimage is None or self._slice is None:
                painter.setPen(_TEXT)
                painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "no image")
                return
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            painter.drawImage(self.image_rect(), self._qimage, QRectF(self._qimage.rect()))
            self._paint_crosshair(painter)
            self._paint_labels(painter)
        finally:
            painter.end()

    def _paint_crosshair(self, painter: QPainter) -> None:
        cursor = self.study_view.cursor_lps
        assert self._slice is not None
        if cursor is None:
            return
        centre = self.pixel_to_widget(self._slice.lps_to_pixel(cursor))
        rect = self.image_rect()
        painter.setPen(QPen(_CROSSHAIR, 1.0))
        x, y, gap = centre.x(), centre.y(), _CROSSHAIR_GAP
        if rect.left() < x - gap:
            painter.drawLine(QPointF(rect.left(), y), QPointF(x - gap, y))
        if x + gap < rect.right():
            painter.drawLine(QPointF(x + gap, y), QPointF(rect.right(), y))
        if rect.top() < y - gap:
            painter.drawLine(QPointF(x, rect.top()), QPointF(x, y - gap))
        if y + gap < rect.bottom():
            painter.drawLine(QPointF(x, y + gap), QPointF(x, rect.bottom()))

    def _paint_labels(self, painter: QPainter) -> None:
        assert self._slice is not None
        labels = edge_labels(self._slice.col_vector, self._slice.row_vector)
        painter.setPen(_TEXT)
        area = self.rect().adjusted(6, 4, -6, -4)
        align = Qt.AlignmentFlag
        painter.drawText(area, align.AlignTop | align.AlignHCenter, labels.top)
        painter.drawText(area, align.AlignBottom | align.AlignHCenter, labels.bottom)
        painter.drawText(area, align.AlignLeft | align.AlignVCenter, labels.left)
        painter.drawText(area, align.AlignRight | align.AlignVCenter, labels.right)
        painter.drawText(area, align.AlignTop | align.AlignLeft, self.plane.value)
        position = self.slice_index()
        if position is not None:
            index, count = position
            painter.drawText(area, align.AlignBottom | align.AlignLeft, f"{index + 1}/{count}")
        base = self.study_view.base
        if isinstance(base, ImageLayer):
            window = base.window
            text = f"W {window.width:g} L {window.center:g}"
            painter.drawText(area, align.AlignTop | align.AlignRight, text)

    # -- widget -> model ----------------------------------------------------------------------
    def scroll_slices(self, steps: int) -> None:
        """Move the cursor ``steps`` slices along the plane normal (clamped to the volume)."""
        base, cursor = self.study_view.base, self.study_view.cursor_lps
        if base is None or cursor is None or steps == 0:
            return
        count = slice_count(base.volume, self.plane)
        index = slice_index_of(base.volume, self.plane, cursor)
        target = max(0, min(count - 1, index + steps))
        if target != index:
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
        steps = round(event.angleDelta().y() / 120)
        if steps == 0 and event.angleDelta().y() != 0:
            steps = 1 if event.angleDelta().y() > 0 else -1
        self.scroll_slices(steps)
        event.accept()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        steps = {
            Qt.Key.Key_Up: 1,
            Qt.Key.Key_Right: 1,
            Qt.Key.Key_Down: -1,
            Qt.Key.Key_Left: -1,
            Qt.Key.Key_PageUp: 10,
            Qt.Key.Key_PageDown: -10,
        }.get(Qt.Key(event.key()))
        if steps is None:
            super().keyPressEvent(event)
            return
        self.scroll_slices(steps)
        event.accept()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        base = self.study_view.base
        if event.button() == Qt.MouseButton.LeftButton and isinstance(base, ImageLayer):
            self._press = (event.position(), base.window)
            self._dragging = False
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._press is not None and event.buttons() & Qt.MouseButton.LeftButton:
            start, window = self._press
            delta = event.position() - start
            if self._dragging or abs(delta.x()) + abs(delta.y()) >= _DRAG_START:
                self._dragging = True
                self._drag_window(window, delta.x(), delta.y())
        self._update_status(event.position())
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self._press is not None:
            if not self._dragging:
                self.set_cursor_at(event.position())
            self._press = None
            self._dragging = False
        super().mouseReleaseEvent(event)

    def _drag_window(self, start: Window, dx: float, dy: float) -> None:
        """Right widens the window, down raises the level; the rate scales with the width."""
        base = self.study_view.base
        if not isinstance(base, ImageLayer):
            return
        rate = max(start.width, 1.0) / 256.0
        width = max(1.0, start.width + dx * rate)
        base.window = Window(start.center + dy * rate, width, start.function)

    def _update_status(self, point: QPointF) -> None:
        cut = self.current_slice
        text = ""
        if cut is not None:
            row, col = self.widget_to_pixel(point)
            r, c = round(float(row)), round(float(col))
            if 0 <= r < cut.shape[0] and 0 <= c < cut.shape[1]:
                x, y, z = cut.pixel_to_lps((r, c))
                value = cut.image[r, c]
                text = f"{self.plane.value}: value {value:g}  LPS ({x:.1f}, {y:.1f}, {z:.1f}) mm"
        if text != self.status_text:
            self.status_text = text
            self.status_changed.emit(text)

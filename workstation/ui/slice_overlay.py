"""What a :class:`~workstation.ui.slice_view.SliceView` paints over its image: the crosshair,
rulers, orientation letters and the text in the corners.

Colours: overlay text is yellow (never grey, the image's colour); the crosshair is translucent
cyan; rulers are yellow lines with end ticks and their length (``"23.4 mm"``) beside the end,
on a dark shadow so the text reads on bright tissue.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QPainter, QPen

from workstation.render import ImageLayer, edge_labels

if TYPE_CHECKING:
    from workstation.render.measure import Ruler
    from workstation.ui.slice_view import SliceView

__all__ = ["CROSSHAIR", "RULER", "TEXT", "paint_crosshair", "paint_labels", "paint_rulers"]

TEXT = QColor(255, 220, 0)  # never grey: grey is the image's colour
CROSSHAIR = QColor(0, 200, 255, 160)
RULER = QColor(255, 220, 0)
_SHADOW = QColor(0, 0, 0, 200)
_CROSSHAIR_GAP = 8.0  # px left open around the cursor so the crosshair hides no detail
_TICK = 5.0  # px each side of a ruler's ends


def paint_crosshair(painter: QPainter, view: SliceView) -> None:
    """The shared cursor as two lines across the image, open around the cursor itself."""
    cursor = view.study_view.cursor_lps
    cut = view.current_slice
    if cursor is None or cut is None:
        return
    centre = view.pixel_to_widget(cut.lps_to_pixel(cursor))
    rect = view.image_rect()
    painter.setPen(QPen(CROSSHAIR, 1.0))
    x, y, gap = centre.x(), centre.y(), _CROSSHAIR_GAP
    if rect.left() < x - gap:
        painter.drawLine(QPointF(rect.left(), y), QPointF(x - gap, y))
    if x + gap < rect.right():
        painter.drawLine(QPointF(x + gap, y), QPointF(rect.right(), y))
    if rect.top() < y - gap:
        painter.drawLine(QPointF(x, rect.top()), QPointF(x, y - gap))
    if y + gap < rect.bottom():
        painter.drawLine(QPointF(x, y + gap), QPointF(x, rect.bottom()))


def paint_rulers(painter: QPainter, view: SliceView, rulers: list[Ruler]) -> None:
    """Each ruler as a line with end ticks and its length; the ends are projected onto the
    slice (they lie on it to within half a slice spacing)."""
    cut = view.current_slice
    if cut is None or not rulers:
        return
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    for ruler in rulers:
        a = view.pixel_to_widget(cut.lps_to_pixel(ruler.start))
        b = view.pixel_to_widget(cut.lps_to_pixel(ruler.end))
        _paint_ruler(painter, a, b, ruler.label)
    painter.restore()


def _paint_ruler(painter: QPainter, a: QPointF, b: QPointF, label: str) -> None:
    dx, dy = b.x() - a.x(), b.y() - a.y()
    length = math.hypot(dx, dy)
    for colour, width in ((_SHADOW, 3.0), (RULER, 1.5)):
        painter.setPen(QPen(colour, width, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
        painter.drawLine(a, b)
        if length > 0:
            tick = QPointF(-dy / length * _TICK, dx / length * _TICK)
            for end in (a, b):
                painter.drawLine(end - tick, end + tick)
    # The label beside the end, away from the line's direction.
    metrics = painter.fontMetrics()
    box = metrics.boundingRect(label)
    ux, uy = (dx / length, dy / length) if length > 0 else (1.0, 0.0)
    x = b.x() + 8.0 * ux + (0.0 if ux >= 0 else -box.width())
    y = b.y() + 8.0 * uy + (box.height() if uy >= 0 else 0.0)
    painter.setPen(_SHADOW)
    painter.drawText(QPointF(x + 1, y + 1), label)
    painter.setPen(TEXT)
    painter.drawText(QPointF(x, y), label)


def paint_labels(painter: QPainter, view: SliceView) -> None:
    """Orientation letters at the edges; plane, slice number, window and zoom in the corners."""
    cut = view.current_slice
    if cut is None:
        return
    labels = edge_labels(cut.col_vector, cut.row_vector)
    painter.setPen(TEXT)
    area = view.rect().adjusted(6, 4, -6, -4)
    align = Qt.AlignmentFlag
    painter.drawText(area, align.AlignTop | align.AlignHCenter, labels.top)
    painter.drawText(area, align.AlignBottom | align.AlignHCenter, labels.bottom)
    painter.drawText(area, align.AlignLeft | align.AlignVCenter, labels.left)
    painter.drawText(area, align.AlignRight | align.AlignVCenter, labels.right)
    painter.drawText(area, align.AlignTop | align.AlignLeft, view.plane.value)
    position = view.slice_index()
    if position is not None:
        index, count = position
        painter.drawText(area, align.AlignBottom | align.AlignLeft, f"{index + 1}/{count}")
    base = view.study_view.base
    if isinstance(base, ImageLayer):
        window = base.window
        text = f"W {window.width:g} L {window.center:g}"
        painter.drawText(area, align.AlignTop | align.AlignRight, text)
    corner = []
    if view.viewport.zoom != 1.0:
        corner.append(f"zoom {view.viewport.zoom:.2g}×")
    if view.tool == "measure":
        corner.append("measure")
    if corner:
        painter.drawText(area, align.AlignBottom | align.AlignRight, "  ".join(corner))

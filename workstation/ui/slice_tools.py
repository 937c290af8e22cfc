"""Mouse and keyboard bindings of a :class:`~workstation.ui.slice_view.SliceView`.

======================  ==========================================================
Left click              put the crosshair there ("window" tool)
Left drag               window/level: right widens, down raises the level ("window"
                        tool); draws a ruler ("measure" tool)
Shift + left drag       pan
Middle drag             pan
Right drag              zoom about the press point: up zooms in (x2 per 100 px)
Wheel                   scroll slices
Ctrl + wheel            zoom about the mouse (the point under it stays put)
Up/Right, Down/Left     next / previous slice; PageUp/PageDown: 10 slices
Home / End              first / last slice
Space                   start/stop cine
R                       reset zoom and pan (fit to window)
I                       toggle smooth (bilinear) / crisp (nearest) pixels
M                       toggle the "window" and "measure" tools
Delete / Backspace      remove the last ruler shown in this view
======================  ==========================================================

:class:`SliceTools` holds the state of the drag in progress and turns events into calls on
the view's public API, so every action can also be driven without a mouse.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QKeyEvent, QMouseEvent, QWheelEvent

from workstation.render import ImageLayer, Window
from workstation.render.measure import Ruler

if TYPE_CHECKING:
    from workstation.ui.slice_view import SliceView

__all__ = ["Drag", "SliceTools"]

DRAG_START = 3  # px a left press must move to become a drag (else it is a click)
ZOOM_DRAG_PX = 100.0  # px of right-drag that double (up) or halve (down) the zoom
WHEEL_ZOOM = 1.25  # zoom factor per Ctrl+wheel notch

_SCROLL_KEYS = {
    Qt.Key.Key_Up: 1,
    Qt.Key.Key_Right: 1,
    Qt.Key.Key_Down: -1,
    Qt.Key.Key_Left: -1,
    Qt.Key.Key_PageUp: 10,
    Qt.Key.Key_PageDown: -10,
}
_COMMAND_MODIFIERS = (
    Qt.KeyboardModifier.ControlModifier
    | Qt.KeyboardModifier.AltModifier
    | Qt.KeyboardModifier.MetaModifier
)


class Drag(enum.Enum):
    """What a mouse drag does."""

    WINDOW = "window"
    MEASURE = "measure"
    PAN = "pan"
    ZOOM = "zoom"


@dataclass
class _Press:
    drag: Drag
    button: Qt.MouseButton
    start: QPointF
    last: QPointF
    window: Window | None  # at the press, for window/level drags
    start_lps: np.ndarray | None  # under the press, for rulers
    moving: bool = False


class SliceTools:
    """Turns a view's mouse, wheel and key events into actions on the view."""

    def __init__(self, view: SliceView) -> None:
        self.view = view
        self.draft: Ruler | None = None  # the ruler being drawn (not yet in the measurements)
        self._press: _Press | None = None

    @property
    def dragging(self) -> Drag | None:
        """The drag in progress, if any."""
        press = self._press
        return press.drag if press is not None and press.moving else None

    # -- mouse --------------------------------------------------------------------------------
    def press(self, event: QMouseEvent) -> bool:
        """Start a drag (or a click); ``True`` if the event was used."""
        if self._press is not None or self.view.current_slice is None:
            return False
        button = event.button()
        shift = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        drag: Drag | None = None
        if button == Qt.MouseButton.MiddleButton or (button == Qt.MouseButton.LeftButton and shift):
            drag = Drag.PAN
        elif button == Qt.MouseButton.RightButton:
            drag = Drag.ZOOM
        elif button == Qt.MouseButton.LeftButton:
            drag = Drag.MEASURE if self.view.tool == "measure" else Drag.WINDOW
        if drag is None:
            return False
        base = self.view.study_view.base
        window = base.window if isinstance(base, ImageLayer) else None
        start = event.position()
        start_lps = self.view.widget_to_lps(start) if drag is Drag.MEASURE else None
        self._press = _Press(drag, button, start, start, window, start_lps)
        return True

    def move(self, event: QMouseEvent) -> bool:
        """Follow the drag in progress; ``True`` if the event was used."""
        press = self._press
        if press is None or not event.buttons() & press.button:
            return False
        if self.view.current_slice is None:  # the image went away mid-drag
            self.cancel()
            return False
        position = event.position()
        delta = position - press.start
        if not press.moving:
            threshold = DRAG_START if press.drag in (Drag.WINDOW, Drag.MEASURE) else 1
            if abs(delta.x()) + abs(delta.y()) < threshold:
                return True
            press.moving = True
        step, press.last = position - press.last, position
        view = self.view
        base = view.study_view.base
        if press.drag is Drag.WINDOW and press.window is not None:
            if isinstance(base, ImageLayer):
                base.window = _dragged_window(press.window, delta.x(), delta.y())
        elif press.drag is Drag.PAN:
            view.pan_by(step.x(), step.y())
        elif press.drag is Drag.ZOOM:
            view.zoom_by(2.0 ** (-step.y() / ZOOM_DRAG_PX), about=press.start)
        elif press.drag is Drag.MEASURE and press.start_lps is not None:
            self.draft = Ruler(press.start_lps, view.widget_to_lps(position))
            view.update()
        return True

    def release(self, event: QMouseEvent) -> bool:
        """End the drag (or the click); ``True`` if the event was used."""
        press = self._press
        if press is None or event.button() != press.button:
            return False
        self._press = None
        view = self.view
        if press.drag is Drag.WINDOW and not press.moving:
            view.set_cursor_at(event.position())
        elif press.drag is Drag.MEASURE:
            self.draft = None
            if press.moving and press.start_lps is not None and view.current_slice is not None:
                view.add_measurement(Ruler(press.start_lps, view.widget_to_lps(event.position())))
            view.update()
        return True

    def cancel(self) -> None:
        """Forget the drag in progress (the widget lost the mouse, or closes)."""
        self._press = None
        if self.draft is not None:
            self.draft = None
            self.view.update()

    def wheel(self, event: QWheelEvent) -> bool:
        """Scroll slices; with Ctrl, zoom about the mouse."""
        notches = event.angleDelta().y() / 120.0
        if notches == 0:
            return False
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.view.zoom_by(WHEEL_ZOOM**notches, about=event.position())
            return True
        steps = round(notches)
        if steps == 0:
            steps = 1 if notches > 0 else -1
        self.view.scroll_slices(steps)
        return True

    # -- keys ---------------------------------------------------------------------------------
    def key(self, event: QKeyEvent) -> bool:
        """Handle a key press; ``True`` if the key is one of ours."""
        if event.modifiers() & _COMMAND_MODIFIERS:
            return False
        view = self.view
        key = Qt.Key(event.key())
        steps = _SCROLL_KEYS.get(key)
        if steps is not None:
            view.scroll_slices(steps)
        elif key == Qt.Key.Key_Home:
            view.go_to_slice(0)
        elif key == Qt.Key.Key_End:
            view.go_to_slice(-1)
        elif key == Qt.Key.Key_Space:
            view.cine.toggle()
        elif key == Qt.Key.Key_R:
            view.reset_view()
        elif key == Qt.Key.Key_I:
            view.smooth = not view.smooth
        elif key == Qt.Key.Key_M:
            view.tool = "window" if view.tool == "measure" else "measure"
        elif key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            view.remove_last_measurement()
        else:
            return False
        return True


def _dragged_window(start: Window, dx: float, dy: float) -> Window:
    """Right widens the window, down raises the level; the rate scales with the width."""
    rate = max(start.width, 1.0) / 256.0
    width = max(1.0, start.width + dx * rate)
    return Window(start.center + dy * rate, width, start.function)

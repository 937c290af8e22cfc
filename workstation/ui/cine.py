"""Cine: play a :class:`~workstation.ui.slice_view.SliceView`'s slices as a movie.

A :class:`QTimer` on the GUI thread moves the view one slice per tick (never blocking); after
the last slice it loops to the first. Playback stops by itself when the view has nothing to
show (its volume went away) or closes. The view moves the shared cursor, so the other views'
crosshairs follow the playing slice.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, QTimer, Signal

if TYPE_CHECKING:
    from workstation.ui.slice_view import SliceView

__all__ = ["DEFAULT_FPS", "MAX_FPS", "CineController"]

DEFAULT_FPS = 10.0
MAX_FPS = 100.0


class CineController(QObject):
    """Plays ``view``'s slices at :attr:`fps` frames per second, looping.

    Signals
    -------
    running_changed(bool)
        Playback started (``True``) or stopped (``False``).
    """

    running_changed = Signal(bool)

    def __init__(self, view: SliceView, fps: float = DEFAULT_FPS) -> None:
        super().__init__(view)  # a child of the view: it goes when the view goes
        self.view = view
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self._tick)
        self._fps = DEFAULT_FPS
        self.fps = fps

    @property
    def fps(self) -> float:
        """Frames (slices) per second, in ``(0, MAX_FPS]``."""
        return self._fps

    @fps.setter
    def fps(self, value: float) -> None:
        value = float(value)
        if not (math.isfinite(value) and 0.0 < value <= MAX_FPS):
            raise ValueError(f"cine speed must be in (0, {MAX_FPS:g}] frames/s, got {value!r}")
        self._fps = value
        self._timer.setInterval(max(1, round(1000.0 / value)))

    @property
    def running(self) -> bool:
        """Whether it is playing."""
        return self._timer.isActive()

    def start(self) -> None:
        """Play from the slice on screen (nothing happens if the view shows nothing)."""
        if self.running or self.view.slice_index() is None:
            return
        self._timer.start()
        self.running_changed.emit(True)

    def stop(self) -> None:
        """Stop on the slice on screen."""
        if not self.running:
            return
        self._timer.stop()
        self.running_changed.emit(False)

    def toggle(self) -> None:
        """Start if stopped, stop if playing."""
        if self.running:
            self.stop()
        else:
            self.start()

    def _tick(self) -> None:
        position = self.view.slice_index()
        if position is None:
            self.stop()
            return
        index, count = position
        self.view.go_to_slice(index + 1 if 0 <= index < count - 1 else 0)

"""Plain-callback events for the Qt-free render models (napari-style, no Qt).

Models own :class:`Event` objects; widgets connect callbacks, and disconnect them when they go
away. A Qt adapter in ``workstation.ui`` can forward an event to a signal when it needs queued
delivery.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["Event"]


class Event:
    """A named event: callbacks are called in connection order by :meth:`emit`.

    A callback disconnected while an emit is running is not called by that emit; one connected
    during it is called from the next emit on. Exceptions raised by callbacks propagate.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._callbacks: list[Callable[..., Any]] = []
        self._blocked = 0

    def __repr__(self) -> str:
        return f"<Event {self.name!r}: {len(self._callbacks)} callback(s)>"

    @property
    def callbacks(self) -> tuple[Callable[..., Any], ...]:
        """The connected callbacks, in call order."""
        return tuple(self._callbacks)

    def connect(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        """Call ``callback`` on every emit (connecting twice has no effect); returns it."""
        if not callable(callback):
            raise TypeError(f"{self.name}: callback must be callable, got {callback!r}")
        if callback not in self._callbacks:
            self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callable[..., Any] | None = None) -> None:
        """Stop calling ``callback`` (all callbacks when ``None``); unknown ones are ignored."""
        if callback is None:
            self._callbacks.clear()
        elif callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, *args: Any) -> None:
        """Call each connected callback with ``args`` (nothing happens while blocked)."""
        if self._blocked:
            return
        for callback in tuple(self._callbacks):
            if callback in self._callbacks:
                callback(*args)

    @contextmanager
    def blocked(self) -> Iterator[None]:
        """Suppress emits inside the ``with`` block (e.g. while a widget writes back)."""
        self._blocked += 1
        try:
            yield
        finally:
            self._blocked -= 1

"""Progress and cancel protocols for long work.

Every long operation is a plain function ``f(inputs, *, progress=None, cancel=None)``. It calls
``progress(done, total, message)`` (throttled) and checks ``cancel`` at natural points (per file,
per frame). The Qt layer adapts these to signals; the CLI to a progress bar; tests to lists.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from workstation.core.errors import Cancelled


@runtime_checkable
class Progress(Protocol):
    """Receives progress reports: ``done`` of ``total`` units, with a short message."""

    def __call__(self, done: int, total: int, message: str = "") -> None: ...


ProgressFn = Callable[[int, int, str], None]


class CancelToken:
    """A thread-safe cancellation flag shared between a caller and a worker."""

    __slots__ = ("_event", "reason")

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = "cancelled"

    def cancel(self, reason: str = "cancelled") -> None:
        """Ask the work to stop at its next checkpoint."""
        self.reason = reason
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called."""
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise :class:`Cancelled` if cancellation was requested."""
        if self._event.is_set():
            raise Cancelled(self.reason)


def check_cancel(cancel: CancelToken | None) -> None:
    """Raise :class:`Cancelled` when ``cancel`` is set; a ``None`` token never cancels."""
    if cancel is not None and cancel.cancelled:
        raise Cancelled(cancel.reason)


def throttled(progress: ProgressFn | None, *, interval: float = 0.05) -> ProgressFn:
    """Wrap ``progress`` so it is called at most every ``interval`` seconds.

    The first and the final report (``done == total``) always pass through. ``None`` gives a
    function that does nothing, so callers never test for it.
    """
    if progress is None:
        return _ignore
    last = [-math.inf]  # so the first report passes whatever its ``done``

    def report(done: int, total: int, message: str = "") -> None:
        now = time.monotonic()
        if done >= total or done == 0 or now - last[0] >= interval:
            last[0] = now
            progress(done, total, message)

    return report


def _ignore(done: int, total: int, message: str = "") -> None:
    """A progress sink that drops every report."""

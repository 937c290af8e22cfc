"""The status bar's sync indicator: syncs in the background and says how it went.

Every ``interval_s`` (and on click) it runs :func:`~workstation.sync.status.sync_and_report`
on a worker (never the GUI thread) and shows its one-line status: off (not enrolled), up to
date, N queued, offline (items stay queued and are retried), or the error.
"""

from __future__ import annotations

from PySide6.QtCore import QTimer, Slot
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QLabel, QWidget

from workstation.ui.tasks import TaskRunner

__all__ = ["SyncIndicator"]

_COLOURS = {"ok": "#2e7d32", "queued": "#e07000", "offline": "#e07000", "error": "#c62828"}


def _sync_task(*, progress: object, cancel: object) -> object:
    from workstation.sync.status import sync_and_report

    return sync_and_report()


class SyncIndicator(QLabel):
    """A label that syncs now and then (``start()``), and when clicked."""

    def __init__(self, parent: QWidget | None = None, *, interval_s: float = 60.0) -> None:
        super().__init__("Sync: …", parent)
        self.setToolTip("Results sync to the registry, sealed for your site. Click to sync now.")
        self.state = "unknown"
        self.runner = TaskRunner(self, threads=1)
        self.runner.finished.connect(self._show)
        self.runner.failed.connect(lambda message, _d: self._set("error", f"Sync: {message}"))
        self.timer = QTimer(self)
        self.timer.setInterval(int(interval_s * 1000))
        self.timer.timeout.connect(self.sync_now)

    def start(self) -> None:
        """Sync now and then every interval."""
        self.sync_now()
        self.timer.start()

    @Slot()
    def sync_now(self) -> None:
        if not self.runner.busy:
            self.runner.start(_sync_task)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self.sync_now()
        super().mousePressEvent(event)

    @Slot(object)
    def _show(self, status: object) -> None:
        self._set(str(getattr(status, "state", "error")), str(getattr(status, "text", status)))

    def _set(self, state: str, text: str) -> None:
        self.state = state
        self.setText(text)
        colour = _COLOURS.get(state)
        self.setStyleSheet(f"color: {colour};" if colour else "")

    def shutdown(self) -> None:
        self.timer.stop()
        self.runner.shutdown()

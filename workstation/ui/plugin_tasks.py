"""Plugin tasks: ``context.run_task`` on worker threads, with progress and Cancel.

Each task gets its own :class:`~workstation.ui.tasks.TaskRunner` (a plugin may run several at
once). The newest running task shows in the status bar (title, progress bar, Cancel). The
worker boundary logs an unexpected exception with its traceback; here the failure is shown in
the problems panel and handed to the plugin's ``on_failed``. The plugin's callbacks are plugin
code too: an exception there is caught, logged and shown the same way.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from workstation.ui.tasks import TaskRunner

if TYPE_CHECKING:
    from workstation.ui.plugin_host import PluginHost

__all__ = ["PluginTasks"]

log = logging.getLogger(__name__)


class PluginTasks(QObject):
    """The running plugin tasks and their status-bar widget (:attr:`widget`)."""

    def __init__(self, host: PluginHost) -> None:
        super().__init__(host)
        self.host = host
        self.running: list[tuple[TaskRunner, str]] = []
        self.widget = QWidget()
        layout = QHBoxLayout(self.widget)
        layout.setContentsMargins(0, 0, 0, 0)
        self.label = QLabel("")
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(180)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("cancel the plugin's task")
        self.cancel_button.clicked.connect(self.cancel_latest)
        for widget in (self.label, self.progress, self.cancel_button):
            layout.addWidget(widget)
        host.window.statusBar().addPermanentWidget(self.widget)
        self.widget.hide()

    def start(
        self,
        plugin: str,
        function: Callable[..., Any],
        on_done: Callable[[Any], None],
        on_failed: Callable[[str], None] | None,
        title: str,
    ) -> Callable[[], None]:
        """Run ``function(progress=, cancel=)``; returns a function that cancels it."""
        runner = TaskRunner(self, threads=1)
        text = f"{title or 'task'} ({plugin})"
        entry = (runner, text)

        def settle() -> None:
            if entry in self.running:
                self.running.remove(entry)
            self._show()
            runner.deleteLater()

        def done(result: object) -> None:
            settle()
            self._call(plugin, on_done, result)

        def failed(message: str, details: str) -> None:
            settle()
            self.host.window.report_problem(f"plugin {plugin}: {text} failed: {message}",
                                            details=details)  # fmt: skip
            if on_failed is not None:
                self._call(plugin, on_failed, message)

        def cancelled() -> None:
            settle()
            self.host.window.statusBar().showMessage(f"{text}: cancelled", 10_000)
            if on_failed is not None:
                self._call(plugin, on_failed, "cancelled")

        def progress(done_: int, total: int, message: str) -> None:
            if self.running and self.running[-1] is entry:
                self.progress.setRange(0, max(total, 0))
                self.progress.setValue(done_)
                self.progress.setFormat(f"{message} %p%" if message else "%p%")

        runner.finished.connect(done)
        runner.failed.connect(failed)
        runner.cancelled.connect(cancelled)
        runner.progress.connect(progress)
        self.running.append(entry)
        self._show()
        runner.start(function)
        return runner.cancel

    def _call(self, plugin: str, callback: Callable[..., Any], value: object) -> None:
        try:
            callback(value)
        except Exception as error:  # noqa: BLE001 - the plugin boundary: the app runs on
            details = traceback.format_exc()
            log.error("plugin %s failed in a task callback:\n%s", plugin, details)
            self.host.plugin_failed(plugin, f"{type(error).__name__}: {error}", details, box=False)

    def _show(self) -> None:
        if not self.running:
            self.widget.hide()
            return
        self.label.setText(self.running[-1][1])
        self.progress.setRange(0, 0)  # busy until the task reports progress
        self.widget.show()

    def cancel_latest(self) -> None:
        """Cancel the task the status bar shows."""
        if self.running:
            self.running[-1][0].cancel()

    def shutdown(self) -> None:
        for runner, _ in list(self.running):
            runner.shutdown()

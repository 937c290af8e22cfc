"""Run long workflow functions off the GUI thread ("latest wins").

A task is a plain function ``f(*, progress, cancel)`` (and ``partial`` when asked for) as the
rest of the workstation writes them; :class:`TaskRunner` runs it on a :class:`QThreadPool` and
delivers its progress, partial results and outcome to the GUI thread through queued signals::

    runner = TaskRunner(parent=window)
    runner.progress.connect(bar.set_progress)          # (done, total, message)
    runner.finished.connect(show)                      # (result)
    runner.failed.connect(panel.add)                   # (message, traceback)
    runner.start(functools.partial(load, path))        # cancels the previous task first

One runner runs one kind of task: starting a task cancels the one before it, whose later
signals are dropped, so a superseded result never reaches the UI. The worker boundary is one
of the three places allowed a broad ``except``: unexpected errors are logged with their
traceback and reported through :attr:`TaskRunner.failed`, never lost.
"""

from __future__ import annotations

import itertools
import logging
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal, Slot

from workstation.core.errors import Cancelled, WorkstationError
from workstation.core.tasks import CancelToken

__all__ = ["TaskRunner", "describe_error"]

log = logging.getLogger(__name__)

_ids = itertools.count(1)


def describe_error(error: BaseException) -> str:
    """The user-facing text of an error: its message, plus the path it concerns."""
    message = str(error) or type(error).__name__
    path = getattr(error, "path", None)
    if isinstance(error, WorkstationError) and path is not None and str(path) not in message:
        message = f"{message} ({path})"
    return message


class _Emitter(QObject):
    """Signals of one task, emitted from the worker thread (delivery is queued)."""

    progress = Signal(int, int, int, str)
    partial = Signal(int, object)
    finished = Signal(int, object)
    failed = Signal(int, str, str)
    cancelled = Signal(int)


class _Job(QRunnable):
    def __init__(
        self,
        task_id: int,
        fn: Callable[..., Any],
        cancel: CancelToken,
        emitter: _Emitter,
        *,
        with_partial: bool,
    ) -> None:
        super().__init__()
        self.setAutoDelete(False)  # the runner holds it until its outcome arrives
        self.task_id = task_id
        self.fn = fn
        self.cancel = cancel
        self.emitter = emitter
        self.with_partial = with_partial

    def run(self) -> None:
        task_id, emitter, cancel = self.task_id, self.emitter, self.cancel

        def progress(done: int, total: int, message: str = "") -> None:
            if not cancel.cancelled:
                _emit(emitter.progress, task_id, int(done), int(total), str(message))

        def partial(value: object) -> None:
            if not cancel.cancelled:
                _emit(emitter.partial, task_id, value)

        kwargs: dict[str, Any] = {"progress": progress, "cancel": cancel}
        if self.with_partial:
            kwargs["partial"] = partial
        try:
            result = self.fn(**kwargs)
        except Cancelled:
            _emit(emitter.cancelled, task_id)
        except WorkstationError as error:
            _emit(emitter.failed, task_id, describe_error(error), "")
        except Exception as error:  # the worker boundary: log the traceback and report it
            details = traceback.format_exc()
            log.exception("task %d failed unexpectedly", task_id)
            _emit(emitter.failed, task_id, f"unexpected error: {describe_error(error)}", details)
        else:
            if cancel.cancelled:
                _emit(emitter.cancelled, task_id)
            else:
                _emit(emitter.finished, task_id, result)


def _emit(signal: Any, *args: Any) -> None:
    """Emit unless the runner's emitter is gone (its window closed while the task ran): an
    exception must not escape a worker into Qt's thread pool."""
    try:
        signal.emit(*args)
    except RuntimeError:  # "Internal C++ object already deleted": nobody is listening
        log.debug("a task's outcome was dropped: its runner no longer exists")


class TaskRunner(QObject):
    """Runs one kind of task at a time on its own thread pool; the newest task wins.

    Signals (GUI thread, only for the current task)
    -----------------------------------------------
    started()
    progress(done, total, message)
    partial(obj)
        What the task handed to its ``partial`` callback.
    finished(result)
    failed(message, traceback)
        ``traceback`` is empty for expected (:class:`WorkstationError`) errors.
    cancelled()
    """

    started = Signal()
    progress = Signal(int, int, str)
    partial = Signal(object)
    finished = Signal(object)
    failed = Signal(str, str)
    cancelled = Signal()

    def __init__(self, parent: QObject | None = None, *, threads: int = 2) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(threads)
        self._emitter = _Emitter()
        queued = Qt.ConnectionType.QueuedConnection
        self._emitter.progress.connect(self._on_progress, queued)
        self._emitter.partial.connect(self._on_partial, queued)
        self._emitter.finished.connect(self._on_finished, queued)
        self._emitter.failed.connect(self._on_failed, queued)
        self._emitter.cancelled.connect(self._on_cancelled, queued)
        self._current: _Job | None = None
        self._jobs: dict[int, _Job] = {}

    @property
    def busy(self) -> bool:
        """True while the current task has not reported its outcome."""
        return self._current is not None

    def start(self, fn: Callable[..., Any], *, with_partial: bool = False) -> CancelToken:
        """Cancel the running task (if any) and run ``fn(progress=, cancel=[, partial=])``.

        Returns the new task's cancel token.
        """
        self.cancel()
        token = CancelToken()
        job = _Job(next(_ids), fn, token, self._emitter, with_partial=with_partial)
        self._jobs[job.task_id] = job
        self._current = job
        self.started.emit()
        self._pool.start(job)
        return token

    def cancel(self) -> None:
        """Ask the current task to stop; its outcome is reported as :attr:`cancelled`."""
        if self._current is not None:
            self._current.cancel.cancel("superseded or cancelled by the user")

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Cancel and wait for the workers (when the window closes); True if they stopped."""
        self.cancel()
        return bool(self._pool.waitForDone(timeout_ms))

    # -- delivery on the GUI thread -----------------------------------------------------------
    def _is_current(self, task_id: int) -> bool:
        job = self._current
        return job is not None and job.task_id == task_id and not job.cancel.cancelled

    def _settle(self, task_id: int) -> str:
        """Forget a task that reported its outcome: ``"current"``, ``"cancelled"`` (the
        current task, but cancelled meanwhile) or ``"stale"`` (superseded)."""
        self._jobs.pop(task_id, None)
        job = self._current
        if job is None or job.task_id != task_id:
            return "stale"
        self._current = None
        return "cancelled" if job.cancel.cancelled else "current"

    @Slot(int, int, int, str)
    def _on_progress(self, task_id: int, done: int, total: int, message: str) -> None:
        if self._is_current(task_id):
            self.progress.emit(done, total, message)

    @Slot(int, object)
    def _on_partial(self, task_id: int, value: object) -> None:
        if self._is_current(task_id):
            self.partial.emit(value)

    @Slot(int, object)
    def _on_finished(self, task_id: int, result: object) -> None:
        state = self._settle(task_id)
        if state == "current":
            self.finished.emit(result)
        elif state == "cancelled":
            self.cancelled.emit()

    @Slot(int, str, str)
    def _on_failed(self, task_id: int, message: str, details: str) -> None:
        state = self._settle(task_id)
        if state == "current":
            self.failed.emit(message, details)
        elif state == "cancelled":
            self.cancelled.emit()

    @Slot(int)
    def _on_cancelled(self, task_id: int) -> None:
        if self._settle(task_id) != "stale":
            self.cancelled.emit()

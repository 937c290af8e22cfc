"""Start the GUI: :func:`run_gui` (``workstation open`` and ``workstation`` with no command)."""

from __future__ import annotations

import logging
import sys
import traceback
from types import TracebackType

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from workstation.ui.main_window import MainWindow

__all__ = ["run_gui"]

log = logging.getLogger(__name__)

SCREENSHOT_TIMEOUT_MS = 300_000


def run_gui(
    path: str | None,
    *,
    screenshot: str | None = None,
    layout: str = "1x3",
    size: tuple[int, int] = (1200, 520),
) -> int:
    """Show the main window, then load ``path`` (default: the bundled demo study).

    With ``screenshot``, save the window as PNG once the series has loaded and the views have
    painted, and return 0; return 1 (message on stderr) if loading failed. Otherwise run until
    the window is closed.
    """
    from workstation.config import demo_study_path

    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    window = MainWindow(layout=layout)
    window.resize(*size)
    window.show()  # paint first; the series loads afterwards, on a worker thread
    source = path if path is not None else str(demo_study_path())
    outcome = {"code": 0}

    def finish(code: int) -> None:
        outcome["code"] = code
        window.close()
        app.exit(code)

    if screenshot is not None:

        def save(_volume: object) -> None:
            # Deferred so that the final repaint requests are handled before the grab.
            QTimer.singleShot(0, lambda: finish(_save(window, screenshot)))

        def fail(message: str) -> None:
            sys.stderr.write(f"error: {message}\n")
            finish(1)

        def timeout() -> None:
            sys.stderr.write("error: the study did not load in time; no screenshot taken\n")
            finish(1)

        window.loaded.connect(save)
        window.load_failed.connect(fail)
        window.load_cancelled.connect(lambda: fail("loading was cancelled"))
        timer = QTimer(window)
        timer.setSingleShot(True)
        timer.timeout.connect(timeout)
        timer.start(SCREENSHOT_TIMEOUT_MS)

    QTimer.singleShot(0, lambda: window.open(source))
    previous_hook = sys.excepthook
    sys.excepthook = _ExceptHook(window, previous_hook)
    try:
        code = app.exec()
    finally:
        sys.excepthook = previous_hook
        window.deleteLater()
    return outcome["code"] if screenshot is not None else int(code)


def _save(window: MainWindow, target: str) -> int:
    window.repaint()
    if not window.grab().save(target, "PNG"):
        sys.stderr.write(f"error: cannot write the screenshot {target}\n")
        return 1
    sys.stdout.write(f"saved {target}\n")
    return 0


class _ExceptHook:
    """The top-level hook: log an unexpected error and show it in the problems panel."""

    def __init__(self, window: MainWindow, previous: object) -> None:
        self.window = window
        self.previous = previous

    def __call__(
        self, kind: type[BaseException], error: BaseException, tb: TracebackType | None
    ) -> None:
        details = "".join(traceback.format_exception(kind, error, tb))
        log.error("unexpected error in the GUI:\n%s", details)
        try:
            self.window.report_problem(f"unexpected error: {error}", details=details)
        except RuntimeError:  # the window is already gone
            sys.stderr.write(details)

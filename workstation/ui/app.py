"""Start the GUI: :func:`run_gui` (``workstation open`` and ``workstation`` with no command)."""

from __future__ import annotations

import logging
import sys
import traceback
from types import TracebackType
from typing import Any

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QApplication

from workstation.render.tissue import TISSUE_LAYER_NAME
from workstation.ui.main_window import MainWindow
from workstation.ui.screenshot import grab_window

__all__ = ["run_gui"]

log = logging.getLogger(__name__)

SCREENSHOT_TIMEOUT_MS = 300_000


def run_gui(
    path: str | None,
    *,
    screenshot: str | None = None,
    layout: str = "2x2",
    tissue: bool = False,
    clip_3d: bool = False,
    analyze: str | None = None,
    plugin_panel: str | None = None,
    size: tuple[int, int] = (1400, 900),
) -> int:
    """Show the main window, then load ``path`` (default: the bundled demo study).

    ``tissue`` adds the demo template's tissue labels as a layer once the series has loaded;
    ``clip_3d`` cuts the 3D view at the crosshair (the octant facing the camera); ``analyze``
    runs that model from the Analyze panel once the series has loaded and moves the crosshair to
    its top finding; ``plugin_panel`` opens that plugin panel once plugins are verified.
    With ``screenshot``, save the window as PNG once the series has loaded, the requested layers
    are in and the views (the 3D view included, when it runs) have drawn, and return 0; return 1
    (message on stderr) if loading failed. Otherwise run until the window is closed.
    """
    from workstation.config import demo_study_path
    from workstation.logs import configure_logging

    logging_setup = configure_logging(level=logging.INFO)  # <home>/logs, PHI masked
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    window = MainWindow(layout=layout)
    window.resize(*size)
    window.show()  # paint first; the series loads afterwards, on a worker thread
    source = path if path is not None else str(demo_study_path())
    outcome = {"code": 0}

    def finish(code: int) -> None:
        outcome["code"] = code
        app.exit(code)
        window.close()

    if tissue:

        def add_tissue(_volume: object) -> None:
            window.loaded.disconnect(add_tissue)  # for the first series only
            window.actions_.add_demo_tissue_labels()

        window.loaded.connect(add_tissue)
    if clip_3d:
        window.grid.view3d_ready.connect(
            lambda view: view is not None and view.set_clip_to_crosshair(True)
        )
    if analyze:
        _analyze_when_loaded(window, analyze)
    if plugin_panel:
        window.plugins.open_panel_when_ready(plugin_panel)
    quit_on_close = app.quitOnLastWindowClosed()
    if screenshot is not None:
        # finish() exits the loop itself; a "last window closed" quit would be left pending and
        # end the next event loop of this process at once (tests run several in one process).
        app.setQuitOnLastWindowClosed(False)
        _ScreenshotWhenReady(
            window,
            screenshot,
            tissue=tissue,
            analysis=bool(analyze),
            panel=plugin_panel,
            finish=finish,
        )

    QTimer.singleShot(0, lambda: window.open(source))
    previous_hook = sys.excepthook
    sys.excepthook = _ExceptHook(window, previous_hook)
    try:
        code = app.exec()
    finally:
        sys.excepthook = previous_hook
        app.setQuitOnLastWindowClosed(quit_on_close)
        window.deleteLater()
        logging_setup.close()
    return outcome["code"] if screenshot is not None else int(code)


class _ScreenshotWhenReady(QObject):
    """Saves the window once everything asked for is on screen: the series, the tissue layer,
    the 3D scene (when the layout shows one and it could start)."""

    def __init__(
        self,
        window: MainWindow,
        target: str,
        *,
        tissue: bool,
        analysis: bool,
        finish: Any,
        panel: str | None = None,
    ) -> None:
        super().__init__(window)
        self.window, self.target, self.finish = window, target, finish
        self.waiting = {"series", "3d"} if window.grid.shows_3d else {"series"}
        if tissue:
            self.waiting.add("tissue")
            if window.grid.shows_3d:
                self.waiting.add("tissue 3d")
        if analysis:
            self.waiting.add("analysis")
            if window.grid.shows_3d:
                self.waiting.add("findings 3d")
            window.analyze_panel.shown.connect(lambda _a: self._done("analysis"))
            window.analyze_panel.stopped.connect(lambda why: self._fail(f"analysis: {why}"))
        if panel:
            self.waiting.add("panel")
            window.plugins.plugins_changed.connect(lambda: self._panel_shown(panel))
        window.loaded.connect(lambda _volume: self._done("series"))
        window.load_failed.connect(lambda message: self._fail(message))
        window.load_cancelled.connect(lambda: self._fail("loading was cancelled"))
        window.study_view.events.inserted.connect(self._inserted)
        window.grid.view3d_ready.connect(self._view3d_ready)
        timer = QTimer(self)
        timer.setSingleShot(True)
        timer.timeout.connect(lambda: self._fail("the study did not load in time"))
        timer.start(SCREENSHOT_TIMEOUT_MS)

    def _inserted(self, _index: int, layer: object) -> None:
        if getattr(layer, "name", "") == TISSUE_LAYER_NAME:
            self._done("tissue")

    def _view3d_ready(self, view: object) -> None:
        if view is None:  # no OpenGL display: the cell explains; the 2D views are the picture
            self._done("3d")
            self._done("tissue 3d")
            self._done("findings 3d")
        else:
            view.scene_ready.connect(lambda: self._done("3d"))  # type: ignore[attr-defined]
            view.surfaces_ready.connect(self._surfaces_ready)  # type: ignore[attr-defined]

    def _surfaces_ready(self, key: object) -> None:
        name = str(getattr(key, "name", ""))
        if name == TISSUE_LAYER_NAME:
            self._done("tissue 3d")
        elif name.startswith("Findings ("):
            self._done("findings 3d")

    def _panel_shown(self, key: str) -> None:
        dock = self.window.plugins.docks.get(key)
        if dock is not None:
            self._done("panel")
        else:
            self._fail(f"the plugin panel {key} did not open (see 'workstation plugins list')")

    def _done(self, what: str) -> None:
        self.waiting.discard(what)
        if not self.waiting:
            # Deferred so that the final repaint requests are handled before the grab.
            QTimer.singleShot(200, lambda: self.finish(_save(self.window, self.target)))

    def _fail(self, message: str) -> None:
        sys.stderr.write(f"error: {message}; no screenshot taken\n")
        self.finish(1)


def _analyze_when_loaded(window: MainWindow, model: str) -> None:
    """Run ``model`` from the Analyze panel and put the crosshair on its top finding."""
    panel = window.analyze_panel

    def go_to_top(analysis: Any) -> None:
        if analysis.findings:
            window.study_view.cursor_lps = analysis.findings[0].centroid_lps
        view3d = window.grid.view3d
        if view3d is not None and hasattr(view3d, "set_preset"):
            view3d.set_preset("MR glass")  # the finding surfaces inside the brain stay visible

    panel.shown.connect(go_to_top)
    window.analyze_dock.show()
    window.analyze_dock.raise_()
    panel.run_model(model)


def _save(window: MainWindow, target: str) -> int:
    if not grab_window(window).save(target, "PNG"):
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

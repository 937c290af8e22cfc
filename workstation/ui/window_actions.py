"""The main window's menus and toolbar: open, recent studies, layouts, tools, layers, screenshot.

Tools act on every slice view (measure, smooth interpolation, reset zoom/pan); cine plays the
slice view that last had the keyboard focus (the axial view by default). The views also take
their own keys (``M``, ``I``, ``R``, ``Space``, see :class:`~workstation.ui.slice_view.SliceView`);
the toolbar follows them through their signals. Layouts switch with ``1``, ``2``, ``3``.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, Slot
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QApplication, QComboBox, QFileDialog, QLabel, QMenu, QToolBar

from workstation.core.errors import WorkstationError
from workstation.ui.screenshot import grab_window
from workstation.ui.slice_view import SliceView
from workstation.ui.tasks import TaskRunner
from workstation.workflow.recent import RecentStudies
from workstation.workflow.remote import is_url

if TYPE_CHECKING:
    from workstation.ui.main_window import MainWindow
    from workstation.ui.models_panel import ModelsDialog
    from workstation.ui.pacs_dialog import PacsDialog

__all__ = ["WindowActions"]

log = logging.getLogger(__name__)

LAYOUT_TITLES = {"1x1": "1×1", "1x3": "1×3", "2x2": "2×2 + 3D"}


class WindowActions(QObject):
    """Builds and owns the window's actions; keeps their checked state in step with the views."""

    def __init__(self, window: MainWindow, recent: RecentStudies | None = None) -> None:
        super().__init__(window)
        self.window = window
        self.recent = recent if recent is not None else _default_recent()
        self.pacs_dialog: PacsDialog | None = None
        self.models_dialog: ModelsDialog | None = None
        self._labels_runner = TaskRunner(self)
        self._labels_runner.finished.connect(self._labels_loaded)
        self._labels_runner.failed.connect(
            lambda message, details: window.report_problem(message, details=details)
        )

        toolbar = QToolBar("View")
        toolbar.setObjectName("view-toolbar")
        window.addToolBar(toolbar)
        toolbar.addWidget(QLabel(" W/L "))
        self.presets = QComboBox()
        self.presets.setMinimumContentsLength(24)
        self.presets.setEnabled(False)
        self.presets.currentIndexChanged.connect(window._preset_chosen)
        toolbar.addWidget(self.presets)
        toolbar.addSeparator()

        self.layouts = QActionGroup(self)
        for number, (name, title) in enumerate(LAYOUT_TITLES.items(), start=1):
            action = QAction(title, self.layouts, checkable=True)
            action.setShortcut(QKeySequence(str(number)))
            # One main window: the keys work whichever window of the app is active.
            action.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
            action.setToolTip(f"layout {title} ({number})")
            action.setData(name)
            action.setChecked(name == window.grid.layout_name)
            toolbar.addAction(action)
        self.layouts.triggered.connect(lambda action: window.set_layout(action.data()))
        window.grid.layout_changed.connect(self._layout_changed)
        toolbar.addSeparator()

        self.measure = self._toggle(toolbar, "Measure", "distance measurement (M)", self._measure)
        self.smooth = self._toggle(toolbar, "Smooth", "smooth interpolation (I)", self._smooth)
        self.smooth.setChecked(True)
        self.cine = self._toggle(toolbar, "Cine", "play the slices (Space)", self._cine)
        self.reset = QAction("Reset", self)
        self.reset.setToolTip("reset zoom and pan (R)")
        self.reset.triggered.connect(self._reset)
        toolbar.addAction(self.reset)
        for view in window.grid.slice_views.values():
            view.smooth_changed.connect(self.smooth.setChecked)
            view.tool_changed.connect(lambda tool: self.measure.setChecked(tool == "measure"))
            view.cine.running_changed.connect(self._cine_changed)

        self.tissue = QAction("Demo tissue labels", self)
        self.tissue.setToolTip("grey/white matter labels of the demo template, as a labels layer")
        self.tissue.triggered.connect(self.add_demo_tissue_labels)
        toolbar.addSeparator()
        toolbar.addAction(self.tissue)
        self._build_menus()

    def _toggle(self, toolbar: QToolBar, text: str, tip: str, slot: object) -> QAction:
        action = QAction(text, self, checkable=True)
        action.setToolTip(tip)
        action.toggled.connect(slot)
        toolbar.addAction(action)
        return action

    def _build_menus(self) -> None:
        window = self.window
        bar = window.menuBar()
        file_menu = bar.addMenu("&File")
        open_action = file_menu.addAction("&Open folder…", self.open_folder)
        open_action.setShortcut(QKeySequence.StandardKey.Open)
        pacs_action = file_menu.addAction("Open from &PACS…", self.open_pacs)
        pacs_action.setShortcut(QKeySequence("Ctrl+Shift+O"))
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        file_menu.addSeparator()
        file_menu.addAction("Save &screenshot…", self.save_screenshot)
        file_menu.addSeparator()
        quit_action = file_menu.addAction("&Quit", window.close)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        view_menu = bar.addMenu("&View")
        for action in self.layouts.actions():
            view_menu.addAction(action)
        view_menu.addSeparator()
        for action in (self.measure, self.smooth, self.cine, self.reset):
            view_menu.addAction(action)
        view_menu.addSeparator()
        for dock in (window.browser_dock, window.layers_dock, window.problems_dock):
            view_menu.addAction(dock.toggleViewAction())
        layers_menu = bar.addMenu("&Layers")
        layers_menu.addAction(self.tissue)
        analyze_menu = bar.addMenu("&Analyze")
        panel = window.analyze_dock
        analyze_menu.addAction("Show the &Analyze panel", lambda: (panel.show(), panel.raise_()))
        analyze_menu.addAction("&Run analysis", window.analyze_panel.run)
        analyze_menu.addAction("&Models…", self.open_models)
        # Plugins: filled by the window's PluginHost (workstation.ui.plugin_host).
        self.plugins_menu = bar.addMenu("&Plugins")

    # -- studies --------------------------------------------------------------------------------
    def remember(self, source: str | os.PathLike[str] | list[str]) -> None:
        """Add an opened folder/file/URL to the recent studies (a failure is only logged)."""
        if isinstance(source, list):
            return
        text = os.fspath(source)
        if is_url(text):
            from workstation.dicom.dicomweb import parse_dicomweb_url

            try:
                text = parse_dicomweb_url(text).url  # never the credentials
            except ValueError:
                return
        try:
            self.recent.add(text)
        except WorkstationError as error:  # never the source itself: paths can hold names
            log.warning("cannot update the recent studies list: %s", type(error).__name__)

    @Slot()
    def open_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.window, "Open a DICOM folder")
        if folder:
            self.window.open(folder)

    @Slot()
    def open_pacs(self) -> None:
        """Show the (one, non-modal) PACS dialog; a series chosen there streams into the views."""
        if self.pacs_dialog is None:
            from workstation.ui.pacs_dialog import PacsDialog

            self.pacs_dialog = PacsDialog(self.window)
            self.pacs_dialog.series_chosen.connect(self.window.load)
        self.pacs_dialog.show()
        self.pacs_dialog.raise_()
        self.pacs_dialog.activateWindow()

    @Slot()
    def open_models(self) -> None:
        """Show the (one, non-modal) Models dialog: versions, stages, history, changes."""
        if self.models_dialog is None:
            from workstation.ui.models_panel import ModelsDialog

            self.models_dialog = ModelsDialog(self.window)
        else:
            self.models_dialog.panel.refresh()
        self.models_dialog.show()
        self.models_dialog.raise_()
        self.models_dialog.activateWindow()

    def _fill_recent(self) -> None:
        menu: QMenu = self.recent_menu
        menu.clear()
        entries = self.recent.entries()
        for entry in entries:
            action = menu.addAction(entry.source)
            action.setEnabled(entry.exists)
            action.triggered.connect(lambda _=False, s=entry.source: self.window.open(s))
        if not entries:
            menu.addAction("(none)").setEnabled(False)
        menu.addSeparator()
        menu.addAction("Clear the list", self.recent.clear)

    @Slot()
    def save_screenshot(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self.window, "Save a screenshot", "screenshot.png", "PNG (*.png)"
        )
        if path and not grab_window(self.window).save(path, "PNG"):
            self.window.report_problem(f"cannot write the screenshot {path}")

    # -- views --------------------------------------------------------------------------------
    def _slice_views(self) -> list[SliceView]:
        return list(self.window.grid.slice_views.values())

    def _layout_changed(self, name: str) -> None:
        for action in self.layouts.actions():
            action.setChecked(action.data() == name)

    def _measure(self, on: bool) -> None:
        for view in self._slice_views():
            view.tool = "measure" if on else "window"

    def _smooth(self, on: bool) -> None:
        for view in self._slice_views():
            view.smooth = on

    def _reset(self) -> None:
        for view in self._slice_views():
            view.reset_view()

    def active_view(self) -> SliceView:
        """The slice view that last had the keyboard focus (the first one shown by default)."""
        focus = QApplication.focusWidget()
        if isinstance(focus, SliceView) and focus in self.window.views:
            return focus
        return self.window.views[0]

    def _cine(self, on: bool) -> None:
        view = self.active_view()
        if on != view.cine.running:
            view.cine.toggle()

    def _cine_changed(self, _running: bool) -> None:
        running = any(view.cine.running for view in self._slice_views())
        if running != self.cine.isChecked():
            self.cine.blockSignals(True)
            self.cine.setChecked(running)
            self.cine.blockSignals(False)

    # -- layers -------------------------------------------------------------------------------
    @Slot()
    def add_demo_tissue_labels(self) -> None:
        """Load the demo template's tissue labels (on a worker) and add them as a layer."""
        base = self.window.study_view.base
        if base is None:
            self.window.report_problem("open the demo study first: the labels belong to it")
            return
        from workstation.render import demo_tissue_labels

        volume = base.volume
        self._labels_runner.start(lambda *, progress, cancel: demo_tissue_labels(volume))

    def _labels_loaded(self, layer: object) -> None:
        from workstation.render import LabelsLayer

        study_view = self.window.study_view
        if not isinstance(layer, LabelsLayer) or study_view.base is None:
            return
        if any(existing.name == layer.name for existing in study_view.layers):
            return
        try:
            study_view.add(layer)
        except WorkstationError as error:
            self.window.report_problem(str(error))

    def shutdown(self) -> None:
        self._labels_runner.shutdown()
        if self.pacs_dialog is not None:
            self.pacs_dialog.shutdown()
        if self.models_dialog is not None:
            self.models_dialog.shutdown()


def _default_recent() -> RecentStudies:
    return RecentStudies()

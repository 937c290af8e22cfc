"""The main window: MPR and 3D views in a layout, progressive loading, tools, layers, problems.

Loading runs :func:`load_progressively` in a :class:`~workstation.ui.tasks.TaskRunner`: the
volume's geometry arrives first (the views appear with blank voxels), then batches of slices,
middle first, and the views repaint as they land. Expected errors
(:class:`~workstation.core.errors.WorkstationError`) and unexpected ones (logged with their
traceback) go to the non-modal "Problems" dock; the window stays usable.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent, QShowEvent
from PySide6.QtWidgets import (
    QDockWidget,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QWidget,
)

from workstation.core.volume import Volume
from workstation.dicom import Series
from workstation.render import (
    ImageLayer,
    StudyView,
    Window,
    auto_window,
    dicom_window,
    presets_for,
)
from workstation.ui.analyze_panel import AnalyzePanel
from workstation.ui.browser import StudyBrowser, local_paths, series_source
from workstation.ui.layer_panel import LayerPanel
from workstation.ui.plugin_host import PluginHost
from workstation.ui.slice_view import SliceView
from workstation.ui.sync_indicator import SyncIndicator
from workstation.ui.tasks import TaskRunner
from workstation.ui.view_grid import LAYOUTS, View3DFactory, ViewGrid, default_3d_factory
from workstation.ui.window_actions import WindowActions
from workstation.workflow import LoadUpdate, load_progressively
from workstation.workflow.remote import RemoteSeries, is_url

__all__ = ["LAYOUTS", "MainWindow"]

log = logging.getLogger(__name__)


class MainWindow(QMainWindow):
    """MPR and 3D views of one :class:`StudyView`, with loading, tools, layers and problems.

    Signals
    -------
    loaded(object)
        The volume finished loading (the views show all of it).
    load_failed(str)
        Loading failed (the message is also in the problems panel).
    load_cancelled()
    """

    loaded = Signal(object)
    load_failed = Signal(str)
    load_cancelled = Signal()

    def __init__(
        self,
        layout: str = "2x2",
        parent: QWidget | None = None,
        *,
        view3d_factory: View3DFactory = default_3d_factory,
        plugin_registry_factory: Callable[[], Any] | None = None,
    ) -> None:
        super().__init__(parent)
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
        self.setWindowTitle("Medical Workstation")
        self.study_view = StudyView()
        self.loading = False
        self._source: str | None = None
        self._window_set = False  # the first slice that lands sets the window

        self.grid = ViewGrid(self.study_view, layout, view3d_factory=view3d_factory)
        self.grid.setStyleSheet("background: #202020;")
        for view in self.grid.slice_views.values():
            view.status_changed.connect(self._show_status)
        self.grid.view3d_ready.connect(self._view3d_ready)
        self.setCentralWidget(self.grid)
        self._preset_windows: list[Window] = []

        self.problems = QListWidget()
        self.problems_dock = self._dock("Problems", "problems-dock", self.problems)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.problems_dock)
        self.problems_dock.hide()

        self.browser = StudyBrowser()
        self.browser_dock = self._dock("Studies", "browser-dock", self.browser)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.browser_dock)
        self.layer_panel = LayerPanel(self.study_view)
        self.layers_dock = self._dock("Layers", "layers-dock", self.layer_panel)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.layers_dock)
        self.resizeDocks([self.browser_dock], [260], Qt.Orientation.Horizontal)
        self.browser.series_activated.connect(self.load)
        self.browser.problem_selected.connect(self.report_problem)
        self.browser.scan_failed.connect(lambda message: self._on_failed(message, ""))
        self.setAcceptDrops(True)

        status = self.statusBar()
        self.status_label = QLabel("")
        status.addWidget(self.status_label, 1)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(240)
        self.progress.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_loading)
        status.addPermanentWidget(self.progress)
        status.addPermanentWidget(self.cancel_button)
        self.sync_indicator = SyncIndicator(self)
        status.addPermanentWidget(self.sync_indicator)
        self._show_loading(False)

        self.runner = TaskRunner(self)
        self.runner.progress.connect(self._on_progress)
        self.runner.partial.connect(self._on_partial)
        self.runner.finished.connect(self._on_loaded)
        self.runner.failed.connect(self._on_failed)
        self.runner.cancelled.connect(self._on_cancelled)
        self.study_view.events.changed.connect(self._layer_changed)
        self.analyze_panel = AnalyzePanel(self.study_view, is_busy=lambda: self.loading)
        self.analyze_dock = self._dock("Analyze", "analyze-dock", self.analyze_panel)
        self.tabifyDockWidget(self.layers_dock, self.analyze_dock)  # views keep their size
        self.layers_dock.raise_()
        for signal in (self.loaded, self.load_failed, self.load_cancelled):
            signal.connect(lambda *_: self.analyze_panel.refresh())
        self.actions_ = WindowActions(self)
        self.presets = self.actions_.presets
        # Plugins: the Plugins menu and panel docks (discovered after the first paint).
        self.plugins = PluginHost(
            self, self.actions_.plugins_menu, registry_factory=plugin_registry_factory
        )

    def _dock(self, title: str, name: str, widget: QWidget) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        return dock

    @property
    def views(self) -> list[SliceView]:
        """The slice views the current layout shows."""
        return self.grid.views

    def set_layout(self, name: str) -> None:
        """Switch to layout ``1x1``, ``1x3`` or ``2x2`` (with 3D)."""
        self.grid.set_layout(name)
        if self.grid.shows_3d and self.isVisible():
            self.grid.ensure_3d()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        # The 3D view (pyvistaqt, VTK: about a second to import) starts after the first paint.
        QTimer.singleShot(0, self._start_3d)
        self.plugins.start()  # plugin discovery, after the first paint
        if not self.sync_indicator.timer.isActive():
            QTimer.singleShot(1000, self.sync_indicator.start)  # after the series starts loading

    def _start_3d(self) -> None:
        if self.grid.shows_3d:
            self.grid.ensure_3d()

    def _view3d_ready(self, view: object) -> None:
        if view is None:
            return
        failed = getattr(view, "failed", None)
        if failed is not None:
            failed.connect(lambda message, details: self.report_problem(message, details=details))
            view.status_changed.connect(self._show_status)  # type: ignore[attr-defined]
        if not self.loading and self.study_view.base is not None:
            _refresh_3d(view)

    # -- loading ------------------------------------------------------------------------------
    def open(self, source: str | os.PathLike[str] | list[str]) -> None:
        """Scan ``source`` into the study browser, then load its first loadable series; a
        DICOMweb study or series URL streams from the server instead."""
        self.runner.cancel()
        self.actions_.remember(source)
        if isinstance(source, str) and is_url(source):
            self.load(source)
            return
        self.loading = True
        self._show_loading(True)
        self.progress.setRange(0, 0)
        self.status_label.setText(f"scanning {source}")
        self.browser.scan(source, activate_first=True)

    def load(self, source: str | os.PathLike[str] | Series | RemoteSeries) -> None:
        """Start loading a series (a folder, file, scanned :class:`Series`, remote series or
        DICOMweb URL); a load in progress is cancelled."""
        if isinstance(source, RemoteSeries):
            self._source = str(source)
        elif isinstance(source, str) and is_url(source):
            self._source = _without_credentials(source)
        else:
            self._source = series_source(source)
        self.loading = True
        self._show_loading(True)
        self.progress.setRange(0, 0)  # busy until the scan reports a total
        self.status_label.setText(f"loading {self._source}")
        self.runner.start(functools.partial(load_progressively, source), with_partial=True)

    @Slot()
    def cancel_loading(self) -> None:
        """Stop the load in progress; what has landed stays on screen."""
        self.runner.cancel()

    def _show_loading(self, on: bool) -> None:
        self.progress.setVisible(on)
        self.cancel_button.setVisible(on)

    @Slot(int, int, str)
    def _on_progress(self, done: int, total: int, message: str) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress.setFormat(f"{message} %v/%m" if message else "%v/%m")

    @Slot(object)
    def _on_partial(self, update: object) -> None:
        if not isinstance(update, LoadUpdate):
            return
        base = self.study_view.base
        if base is None or base.volume is not update.volume:
            self._show_volume(update.volume)
            return
        if update.slices and not self._window_set:
            self._window_set = True
            window = dicom_window(update.volume) or auto_window(
                update.volume.array[update.slices[0]]
            )
            with self.study_view.events.changed.blocked():
                base.window = window  # type: ignore[attr-defined]
        self._invalidate_views()

    def _show_volume(self, volume: Volume) -> None:
        self.study_view.clear()
        self.study_view.cursor_lps = None
        for view in self.grid.slice_views.values():
            view.clear_measurements()
        self._window_set = False
        window = dicom_window(volume) or Window(0.0, 1.0)
        self.study_view.add(ImageLayer(volume, window=window, name="image"))

    @Slot(object)
    def _on_loaded(self, volume: object) -> None:
        self.loading = False
        self._show_loading(False)
        assert isinstance(volume, Volume)
        base = self.study_view.base
        if base is None or base.volume.array is not volume.array:
            self._show_volume(volume)
        self._fill_presets(volume)
        for warning in volume.warnings:
            self.report_problem(f"warning: {warning}", path=self._source)
        shape = "×".join(str(n) for n in volume.size)
        self.status_label.setText(f"loaded {self._source} ({shape})")
        self._invalidate_views()
        if self.grid.view3d is not None:
            _refresh_3d(self.grid.view3d)
        self.loaded.emit(volume)

    @Slot(str, str)
    def _on_failed(self, message: str, details: str) -> None:
        self.loading = False
        self._show_loading(False)
        self.status_label.setText("loading failed")
        self.report_problem(message, details=details)
        self.load_failed.emit(message)

    @Slot()
    def _on_cancelled(self) -> None:
        self.loading = False
        self._show_loading(False)
        self.status_label.setText("loading cancelled")
        self.load_cancelled.emit()

    # -- window / level -----------------------------------------------------------------------
    def _fill_presets(self, volume: Volume) -> None:
        presets = presets_for(volume)
        self._preset_windows = [window for _, window in presets]
        with _signals_blocked(self.presets):
            self.presets.clear()
            for name, window in presets:
                self.presets.addItem(f"{name}  (W {window.width:g} L {window.center:g})")
            self.presets.addItem("custom")
            self.presets.setEnabled(True)
        self._preset_chosen(0)

    @Slot(int)
    def _preset_chosen(self, index: int) -> None:
        base = self.study_view.base
        if 0 <= index < len(self._preset_windows) and isinstance(base, ImageLayer):
            base.window = self._preset_windows[index]

    def _layer_changed(self, layer: Any, field_name: str) -> None:
        """The model changed: show which preset (or "custom") the window now is."""
        if field_name != "window" or layer is not self.study_view.base or not self._preset_windows:
            return
        try:
            index = self._preset_windows.index(layer.window)
        except ValueError:
            index = self.presets.count() - 1
        with _signals_blocked(self.presets):
            self.presets.setCurrentIndex(index)

    # -- problems and status ------------------------------------------------------------------
    def report_problem(self, message: str, *, path: str | None = None, details: str = "") -> None:
        """Add a line to the problems panel (and show it); never modal."""
        text = message if not path or path in message else f"{message} ({path})"
        item = QListWidgetItem(text)
        if details:
            item.setToolTip(details)
        self.problems.addItem(item)
        self.problems.scrollToBottom()
        self.problems_dock.show()

    @Slot(str)
    def _show_status(self, text: str) -> None:
        if text:
            self.statusBar().showMessage(text)
        else:
            self.statusBar().clearMessage()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if local_paths(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = local_paths(event.mimeData())
        if paths:
            event.acceptProposedAction()
            self.open(paths[0] if len(paths) == 1 else paths)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.runner.shutdown()
        self.plugins.shutdown()
        self.browser.shutdown()
        self.actions_.shutdown()
        self.analyze_panel.shutdown()
        self.sync_indicator.shutdown()
        self.study_view.events.changed.disconnect(self._layer_changed)
        self.layer_panel.detach()
        self.grid.detach()
        super().closeEvent(event)

    def _invalidate_views(self) -> None:
        for view in self.grid.slice_views.values():
            view.invalidate()


def _without_credentials(url: str) -> str:
    """``url`` as it may be shown and logged (no user:password@, no query)."""
    from workstation.dicom.dicomweb import parse_dicomweb_url

    try:
        return parse_dicomweb_url(url).url
    except ValueError:
        return "a DICOMweb URL"


def _refresh_3d(view: object) -> None:
    """Tell the 3D view that the volume is complete (it rebuilds its scene once)."""
    refresh = getattr(view, "refresh_volume", None)
    if callable(refresh):
        refresh()


class _signals_blocked:
    """Block a widget's signals while the model's state is copied into it."""

    def __init__(self, widget: QWidget) -> None:
        self.widget = widget

    def __enter__(self) -> None:
        self._was = self.widget.blockSignals(True)

    def __exit__(self, *exc: object) -> None:
        self.widget.blockSignals(self._was)

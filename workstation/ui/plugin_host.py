"""Plugins in the main window: the Plugins menu, panel docks and what a panel may use.

:class:`PluginHost` owns the :class:`~workstation.plugins.PluginRegistry`, discovered on a worker
once the window has painted (``QTimer.singleShot(0, ...)``) and again after an install or removal
(verification hashes every file, and may unlock the key store for this workstation's own key). Each
panel contribution is a Plugins-menu entry; choosing one imports the plugin (first use only),
calls its ``create(context)`` and shows the widget in a dock on the right. The context is a
:class:`WindowPanelContext` (the :class:`~workstation.plugins.api.PanelContext` protocol).

Plugin code is a boundary: an exception from ``create``, from a task's function or from its
callbacks is logged with its traceback, shown in the problems panel (and, for a panel that cannot
open, a message box), and the plugin is marked failed; the application runs on. While an
unsigned (developer-mode) plugin is usable, the title and a red status-bar label say so.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDockWidget, QLabel, QMenu, QMessageBox, QWidget

from workstation.plugins import Contribution, PluginError, PluginRegistry
from workstation.ui.plugin_context import WindowPanelContext
from workstation.ui.plugin_tasks import PluginTasks
from workstation.ui.tasks import TaskRunner

if TYPE_CHECKING:
    from workstation.ui.main_window import MainWindow
    from workstation.ui.plugin_manager import PluginManagerDialog

__all__ = ["DEVELOPER_TITLE", "PluginHost", "WindowPanelContext"]

log = logging.getLogger(__name__)

DEVELOPER_TITLE = " — DEVELOPER MODE: unsigned plugins"
DEVELOPER_STYLE = "color: white; background: #c62828; font-weight: bold; padding: 0 6px;"


class PluginHost(QObject):
    """The window's plugins: registry, Plugins menu, panel docks, developer-mode marking.

    Signals
    -------
    plugins_changed()
        A discovery finished: the registry, the menu and the docks are up to date.
    """

    plugins_changed = Signal()

    def __init__(
        self,
        window: MainWindow,
        menu: QMenu,
        *,
        registry_factory: Callable[[], PluginRegistry] | None = None,
    ) -> None:
        super().__init__(window)
        self.window = window
        self.menu = menu
        menu.setToolTipsVisible(True)  # a disabled entry's tooltip says why
        self.registry_factory = registry_factory or PluginRegistry.discover
        self.trust_factory: Callable[[], Any] | None = None  # install_bundle's trust; None: default
        self.registry = PluginRegistry([])
        self.docks: dict[str, QDockWidget] = {}
        self.panel_actions: dict[str, QAction] = {}
        self.manager: PluginManagerDialog | None = None
        self.message_box: QMessageBox | None = None
        self.tasks = PluginTasks(self)
        self._contexts: dict[str, WindowPanelContext] = {}
        self._started = False
        self.discovered = 0  # how many discoveries have been applied
        self._discoverer = TaskRunner(self, threads=1)
        self._discoverer.finished.connect(self._apply)
        self._discoverer.failed.connect(self._discovery_failed)
        self._title = window.windowTitle()
        self.developer_label = QLabel("DEVELOPER MODE")
        self.developer_label.setStyleSheet(DEVELOPER_STYLE)
        window.statusBar().addPermanentWidget(self.developer_label)
        self.developer_label.hide()
        self._fill_menu()

    def start(self) -> None:
        """Discover the plugins after the window's first paint (once)."""
        if not self._started:
            self._started = True
            QTimer.singleShot(0, self.rediscover)

    # -- discovery and the menu ------------------------------------------------------------
    def rediscover(self) -> None:
        """Read the plugins again on a worker (verification hashes files and may unlock the key
        store), then rebuild the menu; :attr:`plugins_changed` follows."""
        self._started = True
        self._discoverer.start(lambda *, progress, cancel: self.registry_factory())

    def _discovery_failed(self, message: str, details: str) -> None:
        self.window.report_problem(f"plugins: {message}", details=details)
        self._apply(PluginRegistry([]))

    def _apply(self, registry: object) -> None:
        assert isinstance(registry, PluginRegistry)
        _carry_over(self.registry, registry)
        self.registry = registry
        offered = {c.key for c in registry.contributions("panels")}
        for key in [k for k in self.docks if k not in offered]:
            dock = self.docks.pop(key)
            dock.close()
            dock.deleteLater()
        names = {record.name for record in registry if record.usable}
        self._contexts = {n: c for n, c in self._contexts.items() if n in names}
        self._fill_menu()
        self._mark_developer_mode()
        if self.manager is not None:
            self.manager.refresh()
        self.discovered += 1
        self.plugins_changed.emit()

    def open_panel_when_ready(self, key: str) -> None:
        """Open ``key`` once the plugins are discovered (``workstation open --plugin-panel``)."""
        if self.discovered:
            self.open_panel(key)
            return

        def once() -> None:
            self.plugins_changed.disconnect(once)
            self.open_panel(key)

        self.plugins_changed.connect(once)

    def _fill_menu(self) -> None:
        self.menu.clear()
        self.panel_actions = {}
        for contribution in self.registry.contributions("panels"):
            action = self.menu.addAction(self._menu_text(contribution))
            action.setData(contribution.key)
            action.triggered.connect(functools.partial(self._open, contribution))
            self.panel_actions[contribution.key] = action
        for record in self.registry:  # a failed plugin's panels stay listed, disabled
            for contribution in record.contributions() if record.state == "failed" else ():
                if contribution.kind == "panels" and contribution.key not in self.panel_actions:
                    action = self.menu.addAction(self._menu_text(contribution))
                    action.setEnabled(False)
                    action.setToolTip(record.error)
                    self.panel_actions[contribution.key] = action
        if not self.panel_actions:
            self.menu.addAction("(no plugin panels)").setEnabled(False)
        self.menu.addSeparator()
        self.menu.addAction("Plugin &manager…", self.open_manager)

    def _menu_text(self, contribution: Contribution) -> str:
        title = contribution.name.replace("_", " ").capitalize()
        obj = self.registry._objects.get(contribution)
        if obj is not None:
            title = str(getattr(obj, "title", title))
        return f"{title} ({contribution.plugin})"

    def _mark_developer_mode(self) -> None:
        unsigned = [r.name for r in self.registry if r.source == "developer" and r.usable]
        on = bool(self.registry.unsigned_loaded)
        self.window.setWindowTitle(self._title + (DEVELOPER_TITLE if on else ""))
        self.developer_label.setVisible(on)
        self.developer_label.setToolTip(
            "Unsigned plugins loaded from source folders (developer mode):\n" + "\n".join(unsigned)
        )

    # -- panels ------------------------------------------------------------------------------
    def open_panel(self, key: str) -> QDockWidget | None:
        """Open the panel ``plugin/name`` (or ``name`` when unambiguous); None if it failed."""
        try:
            contribution = self.registry.find("panels", key)
        except PluginError as error:
            self.window.report_problem(str(error))
            return None
        return self._open(contribution)

    def _open(self, contribution: Contribution, *_: object) -> QDockWidget | None:
        dock = self.docks.get(contribution.key)
        if dock is None:
            dock = self._create_dock(contribution)
            if dock is None:
                return None
        dock.show()
        dock.raise_()
        return dock

    def _create_dock(self, contribution: Contribution) -> QDockWidget | None:
        plugin = contribution.plugin
        try:
            panel = self.registry.load(contribution)
            widget = panel.create(self.context(plugin))
            if not isinstance(widget, QWidget):
                raise PluginError(f"{contribution.key}: create() returned {type(widget).__name__}")
        except Exception as error:  # noqa: BLE001 - the plugin boundary: the app runs on
            details = traceback.format_exc()
            if not isinstance(error, PluginError):  # registry.load logged its own
                log.error("plugin %s failed to open %s:\n%s", plugin, contribution.key, details)
            self._fail(plugin, f"{contribution.key}: {type(error).__name__}: {error}")
            self.plugin_failed(plugin, f"{contribution.key} cannot open: {error}", details)
            return None
        title = str(getattr(panel, "title", contribution.name))
        dock = QDockWidget(f"{title} ({plugin})", self.window)
        dock.setObjectName(f"plugin-{contribution.key}")
        dock.setWidget(widget)
        self.window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        self.docks[contribution.key] = dock
        action = self.panel_actions.get(contribution.key)
        if action is not None:
            action.setText(self._menu_text(contribution))
        return dock

    def context(self, plugin: str) -> WindowPanelContext:
        """The (one) context of ``plugin``'s panels."""
        if plugin not in self._contexts:
            self._contexts[plugin] = WindowPanelContext(self, plugin)
        return self._contexts[plugin]

    def _fail(self, plugin: str, error: str) -> None:
        """Mark ``plugin`` failed (unless the registry already did, with its own reason)."""
        with contextlib.suppress(PluginError):
            if self.registry.get(plugin).state != "failed":
                self.registry.fail(plugin, error)

    def plugin_failed(self, plugin: str, message: str, details: str, *, box: bool = True) -> None:
        """Show a plugin's failure (problems panel, message box); disable its panels."""
        self.window.report_problem(f"plugin {plugin}: {message}", details=details)
        for key, action in self.panel_actions.items():
            if key.startswith(f"{plugin}/") and key not in self.docks:
                action.setEnabled(False)
                action.setToolTip(message)
        if box:
            self.message_box = QMessageBox(
                QMessageBox.Icon.Warning, "Plugin failed", f"plugin {plugin}: {message}"
            )
            self.message_box.setParent(self.window, self.message_box.windowFlags())
            self.message_box.setDetailedText(details)
            self.message_box.open()  # not blocking: the app runs on
        if self.manager is not None:
            self.manager.refresh()

    # -- the manager and shutdown ------------------------------------------------------------
    def open_manager(self) -> PluginManagerDialog:
        """Show the (one, non-modal) plugin manager."""
        from workstation.ui.plugin_manager import PluginManagerDialog

        if self.manager is None:
            self.manager = PluginManagerDialog(self)
        self.manager.refresh()
        self.manager.show()
        self.manager.raise_()
        return self.manager

    def shutdown(self) -> None:
        self._discoverer.shutdown()
        self.tasks.shutdown()
        if self.manager is not None:
            self.manager.shutdown()


def _carry_over(old: PluginRegistry, new: PluginRegistry) -> None:
    """Keep what is known of plugins that did not change (loaded objects, failures)."""
    for record in new:
        before = next((r for r in old if r.name == record.name and r.state != "shadowed"), None)
        if before is None or (before.folder, before.version) != (record.folder, record.version):
            continue
        if record.usable and before.state in ("loaded", "failed"):
            record.state, record.error = before.state, before.error
            new._objects.update({c: o for c, o in old._objects.items() if c.plugin == record.name})

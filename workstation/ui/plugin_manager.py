"""The plugin manager (Plugins → Plugin manager…): every plugin, its state, install and remove.

The same operations as ``workstation plugins list / install / remove``: the table shows each
plugin's version, state, source, who vouches for it ("unsigned (developer mode)" in red) and its
contributions; the selected plugin's error, folder and signers show below. Install verifies a
signed bundle (``*.mwp``) against the trust roots on a worker; a refusal is shown verbatim.
Every change is recorded in the audit trail, so, as in the CLI, a change is refused unless the
key store unlocks without a prompt. After a change the window rediscovers its plugins (a new
panel is usable at once; the dock of a removed one closes).
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from workstation.core.errors import WorkstationError
from workstation.plugins import PluginRecord
from workstation.plugins.developer import UNSIGNED
from workstation.ui.tasks import TaskRunner

if TYPE_CHECKING:
    from workstation.ui.plugin_host import PluginHost

__all__ = ["COLUMNS", "PluginManagerDialog", "install_task", "remove_task"]

COLUMNS = ("Name", "Version", "State", "Source", "Trusted by", "Contributions")
RED, ERROR_STYLE = "#c62828", "color: #c62828;"
STATE_COLOURS = {"loaded": "#2e7d32", "ready": "#2e7d32", "failed": RED, "refused": RED,
                 "incompatible": "#e07000", "shadowed": "#808080"}  # fmt: skip
NOT_RECORDED = (
    "plugin changes are recorded in the audit trail: unlock the key store without a prompt "
    "($WORKSTATION_PASSPHRASE or a keyring key store)"
)


def _actor() -> str:
    return f"workstation:{getpass.getuser()}"


def _audit(action: str, name: str, details: dict[str, Any]) -> None:
    """Record a plugin change (raises :class:`WorkstationError` when the store cannot open)."""
    from workstation.security.errors import KeyStoreError
    from workstation.workflow.analysis_store import open_default_store

    try:
        store = open_default_store(actor=_actor())
    except KeyStoreError as error:
        raise WorkstationError(f"{error}\n{NOT_RECORDED}") from None
    try:
        store.audit.record(
            actor=store.actor, action=action, object_type="plugin", object_id=name, details=details
        )
    finally:
        store.close()


def _check_audit() -> None:
    from workstation.security.errors import KeyStoreError
    from workstation.workflow.analysis_store import open_default_store

    try:
        open_default_store(actor=_actor()).close()
    except KeyStoreError as error:
        raise WorkstationError(f"{error}\n{NOT_RECORDED}") from None


def install_task(
    bundle: Path, root: Path, trust_factory: Callable[[], Any] | None, *, progress: Any, cancel: Any
) -> str:
    """The worker: check the audit trail opens, verify and install ``bundle``; a summary."""
    from workstation.plugins import installed
    from workstation.security.trust import TrustRoots

    progress(0, 0, "verifying the plugin bundle")
    _check_audit()
    trust = trust_factory() if trust_factory is not None else TrustRoots.load_default()
    try:
        plugin = installed.install_bundle(bundle, root=root, trust=trust, actor=_actor())
    except WorkstationError as error:
        _audit("plugin.refuse", Path(bundle).name, {"reason": str(error)[:500]})
        raise
    meta = plugin.metadata
    signers = ",".join(s.key_id for s in plugin.signers)
    details = {"version": meta.version, "trusted_by": plugin.trusted_by, "signers": signers}
    _audit("plugin.install", meta.name, details)
    return f"installed {meta.name} {meta.version} ({plugin.trusted_by})"


def remove_task(name: str, root: Path, *, progress: Any, cancel: Any) -> str:
    """The worker: remove the user-installed plugin ``name`` (audited)."""
    from workstation.plugins import installed

    _check_audit()
    receipt = installed.remove_plugin(name, root=root)
    _audit("plugin.remove", name, {"version": str(receipt.get("version", "?"))})
    return f"removed {name} {receipt.get('version', '')}".rstrip()


class PluginManagerDialog(QDialog):
    """The plugin manager: a non-modal dialog over the main window."""

    def __init__(self, host: PluginHost, parent: QWidget | None = None) -> None:
        super().__init__(parent or host.window)
        self.setWindowTitle("Plugin manager")
        self.host = host
        self.records: list[PluginRecord] = []
        self.confirm: Callable[[str], bool] = self._ask
        self._working = False

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.currentCellChanged.connect(lambda *_: self._show_details())
        self.details = QLabel("")
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.install_button = QPushButton("Install…")
        self.remove_button = QPushButton("Remove")
        self.refresh_button = QPushButton("Refresh")
        self.install_button.clicked.connect(self.choose_bundle)
        self.remove_button.clicked.connect(self.remove_selected)
        self.refresh_button.clicked.connect(self.host.rediscover)
        buttons = QHBoxLayout()
        for button in (self.install_button, self.remove_button, self.refresh_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.details)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        self.resize(900, 460)

        self.runner = TaskRunner(self, threads=1)
        self.runner.finished.connect(self._on_changed)
        self.runner.failed.connect(self._on_failed)
        self.runner.cancelled.connect(lambda: self._busy(False))

    # -- the table ---------------------------------------------------------------------------
    def refresh(self) -> None:
        """Show the host's registry as it is now."""
        current = self.selected()
        self.records = list(self.host.registry)
        self.table.setRowCount(len(self.records))
        for row, record in enumerate(self.records):
            kinds = ", ".join(f"{c.kind[:-1]} {c.name}" for c in record.contributions())
            values = (record.name, record.version, record.state, record.source,
                      record.trusted_by or "–", kinds or "–")  # fmt: skip
            for column, value in enumerate(values):
                item = QTableWidgetItem(value)
                if record.error:
                    item.setToolTip(record.error)
                self.table.setItem(row, column, item)
            colour = STATE_COLOURS.get(record.state)
            if colour:
                self.table.item(row, 2).setForeground(QBrush(QColor(colour)))
            if record.trusted_by == UNSIGNED:
                self.table.item(row, 4).setForeground(QBrush(QColor(RED)))
            if current is not None and record.name == current.name:
                self.table.selectRow(row)
        if self.table.currentRow() < 0 and self.records:
            self.table.selectRow(0)
        self._show_details()

    def selected(self) -> PluginRecord | None:
        row = self.table.currentRow()
        return self.records[row] if 0 <= row < len(self.records) else None

    def row_of(self, name: str) -> int:
        """The row showing ``name`` (-1 when none does)."""
        return next((i for i, r in enumerate(self.records) if r.name == name), -1)

    def _show_details(self) -> None:
        record = self.selected()
        self.remove_button.setEnabled(
            record is not None and record.source == "user" and not self._working
        )
        if record is None:
            self.details.setText("No plugins installed." if not self.records else "")
            return
        lines = [f"{record.name} {record.version}: {record.state}, {record.source}",
                 f"folder: {record.folder}"]  # fmt: skip
        if record.signers:
            lines.append(f"signed by {', '.join(record.signers)}; expires {record.expires}")
        if record.error:
            lines.append(f"error: {record.error}")
        self.details.setText("\n".join(lines))
        self.details.setStyleSheet(ERROR_STYLE if record.error else "")

    # -- changes -----------------------------------------------------------------------------
    @Slot()
    def choose_bundle(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Install a plugin bundle", "", "Plugin bundles (*.mwp)"
        )
        if path:
            self.install(Path(path))

    def install(self, bundle: Path) -> None:
        """Verify and install ``bundle`` on a worker (audited)."""
        from workstation.plugins.installed import user_root

        self._busy(True, f"installing {Path(bundle).name}…")
        trust = self.host.trust_factory
        self.runner.start(
            lambda *, progress, cancel: install_task(
                Path(bundle), user_root(), trust, progress=progress, cancel=cancel
            )
        )

    @Slot()
    def remove_selected(self) -> None:
        record = self.selected()
        if record is None:
            return
        if record.source != "user":
            self._say(f"{record.name} is a {record.source} plugin: remove it with "
                      "'workstation plugins' (system plugins: IT)", error=True)  # fmt: skip
            return
        if self.confirm(f"Remove the plugin {record.name} {record.version}?"):
            self.remove(record.name)

    def remove(self, name: str) -> None:
        """Remove the user-installed plugin ``name`` on a worker (audited)."""
        from workstation.plugins.installed import user_root

        self._busy(True, f"removing {name}…")
        self.runner.start(
            lambda *, progress, cancel: remove_task(
                name, user_root(), progress=progress, cancel=cancel
            )
        )

    def _ask(self, question: str) -> bool:
        answer = QMessageBox.question(self, "Plugin manager", question)
        return answer == QMessageBox.StandardButton.Yes

    @Slot(object)
    def _on_changed(self, summary: object) -> None:
        self._busy(False)
        self._say(str(summary))
        self.host.rediscover()  # rebuilds the menu and refreshes this table

    @Slot(str, str)
    def _on_failed(self, message: str, details: str) -> None:
        self._busy(False)
        self._say(message, error=True)
        if details:  # unexpected: the runner logged it; show it where problems go
            self.host.window.report_problem(f"plugin manager: {message}", details=details)

    def _busy(self, on: bool, text: str = "") -> None:
        self._working = on
        for button in (self.install_button, self.refresh_button):
            button.setEnabled(not on)
        if text:
            self._say(text)
        self._show_details()

    def _say(self, text: str, *, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet(ERROR_STYLE if error else "")

    def shutdown(self) -> None:
        self.runner.shutdown()

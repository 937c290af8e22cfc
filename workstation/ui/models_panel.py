"""The Models panel: the installed model versions, their stages and history, and the changes.

The same operations as ``workstation models`` (:mod:`workstation.cli_models`), on
:class:`~workstation.models.lifecycle.ModelLifecycle` in ``paths().models``: install a signed
bundle (verified against the trust roots first), promote a version one stage on (installed →
shadow → canary → active; the canary's share of studies comes from the spin box), roll a model
back. Every change is recorded in the audit trail, so, as in the CLI, a change is refused
("not recorded: ...") unless the key store unlocks without a prompt; listing is not. Every
lifecycle call runs on a :class:`~workstation.ui.tasks.TaskRunner` worker, never on the GUI
thread.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from workstation.ui.models_tasks import NOT_RECORDED, change_task, list_task, next_stage
from workstation.ui.tasks import TaskRunner

__all__ = ["NOTE", "NOT_RECORDED", "ModelsDialog", "ModelsPanel", "next_stage"]

NOTE = (
    "Models are verified (signed bundles) before use; demonstration models are not for "
    "clinical use."
)
STAGE_COLOURS = {
    "active": "#2e7d32",
    "canary": "#e07000",
    "shadow": "#1565c0",
    "blocked": "#c62828",
    "rolled-back": "#c62828",
    "retired": "#808080",
}
ERROR_STYLE = "color: #c62828;"
NOTE_STYLE = "color: #e07000; font-weight: bold;"
COLUMNS = ("Name", "Version", "Stage", "Installed", "Gates", "Last change")
HISTORY_COLUMNS = ("Time", "Change", "Reason", "Actor")
_ROLE_KEY = Qt.ItemDataRole.UserRole


class ModelsPanel(QWidget):
    """The model versions (stage in colour), the selected version's history, and the changes.

    ``folder`` defaults to ``paths().models`` (as ``workstation models``). Signals: ``listed``
    after each refresh, ``changed(ok, message)`` after each change (its result or why not).
    """

    listed = Signal()
    changed = Signal(bool, str)

    def __init__(self, parent: QWidget | None = None, *, folder: str | Path | None = None) -> None:
        super().__init__(parent)
        self.folder = Path(folder) if folder is not None else None
        self.rows: list[dict[str, Any]] = []
        self.history: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._select: tuple[str, str] | None = None

        self.note = QLabel(f"⚠ {NOTE}")
        self.note.setWordWrap(True)
        self.note.setStyleSheet(NOTE_STYLE)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.history_table = QTableWidget(0, len(HISTORY_COLUMNS))
        self.history_table.setHorizontalHeaderLabels(HISTORY_COLUMNS)
        self.history_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.history_table.verticalHeader().setVisible(False)
        header = self.history_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)

        self.install_button = QPushButton("Install bundle…")
        self.install_button.clicked.connect(self.choose_bundle)
        self.promote_button = QPushButton("Promote")
        self.promote_button.clicked.connect(self.promote)
        self.rollback_button = QPushButton("Rollback")
        self.rollback_button.clicked.connect(self.rollback)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.refresh)
        self.share = QSpinBox()
        self.share.setRange(1, 100)
        self.share.setValue(10)
        self.share.setSuffix(" %")
        self.share.setToolTip("the share of studies the canary is shown for")
        self.force = QCheckBox("Force (recorded)")
        self.force.setToolTip(
            "promote a blocked version without running its gates again (as --force)"
        )
        self.reason = QLineEdit()
        self.reason.setPlaceholderText("why (kept in the history and the audit trail)")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        buttons = QHBoxLayout()
        for button in (
            self.install_button,
            self.promote_button,
            self.rollback_button,
            self.refresh_button,
        ):
            buttons.addWidget(button)
        form = QFormLayout()
        form.addRow("Canary share", self.share)
        form.addRow("Reason", self.reason)
        form.addRow("", self.force)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.table)
        split.addWidget(self.history_table)
        layout = QVBoxLayout(self)
        layout.addWidget(self.note)
        layout.addWidget(split, 1)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.status)

        self.list_runner = TaskRunner(self, threads=1)
        self.list_runner.finished.connect(self._listed)
        self.list_runner.failed.connect(lambda m, _d: self._say(f"cannot list the models: {m}"))
        self.change_runner = TaskRunner(self, threads=1)
        self.change_runner.finished.connect(self._changed)
        self.change_runner.failed.connect(self._refused)
        self._update_buttons()
        self.refresh()

    # -- listing ------------------------------------------------------------------------------
    @Slot()
    def refresh(self) -> None:
        """List the versions again (on a worker)."""
        folder = self.folder
        self.list_runner.start(
            lambda *, progress, cancel: list_task(folder, progress=progress, cancel=cancel)
        )

    @property
    def busy(self) -> bool:
        """True while a listing or a change has not finished."""
        return self.list_runner.busy or self.change_runner.busy

    @Slot(object)
    def _listed(self, result: object) -> None:
        listing: dict[str, Any] = result  # type: ignore[assignment]
        keep = self._select or self.selected_key()
        self._select = None
        self.rows = list(listing["rows"])
        self.history = dict(listing["history"])
        self.table.blockSignals(True)
        self.table.setRowCount(len(self.rows))
        chosen = -1
        for n, row in enumerate(self.rows):
            stage = row["stage"]
            if "canary_share" in row:
                stage = f"{stage} ({row['canary_share']:.0%})"
            values = (
                row["name"],
                row["version"],
                stage,
                row["installed"],
                row["gates"] or "-",
                f"{row.get('last_change') or ''}  {row.get('last_reason') or ''}".strip(),
            )
            for column, value in enumerate(values):
                item = QTableWidgetItem(str(value))
                item.setData(_ROLE_KEY, (row["name"], row["version"]))
                if column == 2 and row["stage"] in STAGE_COLOURS:
                    item.setForeground(QBrush(QColor(STAGE_COLOURS[row["stage"]])))
                self.table.setItem(n, column, item)
            if keep == (row["name"], row["version"]):
                chosen = n
        self.table.blockSignals(False)
        if chosen < 0 and self.rows:
            chosen = 0
        if chosen >= 0:
            self.table.selectRow(chosen)
        self._selection_changed()
        if not self.rows and not self.status.text():
            self._say(f"no model versions installed in {listing['folder']}", error=False)
        self.listed.emit()

    def selected_key(self) -> tuple[str, str] | None:
        """``(name, version)`` of the selected row."""
        items = self.table.selectedItems()
        return None if not items else tuple(items[0].data(_ROLE_KEY))  # type: ignore[return-value]

    def selected_row(self) -> dict[str, Any] | None:
        """The ``list()`` row of the selected version."""
        key = self.selected_key()
        return next((r for r in self.rows if (r["name"], r["version"]) == key), None)

    def select(self, name: str, version: str) -> bool:
        """Select a version's row; False when it is not listed."""
        for n, row in enumerate(self.rows):
            if (row["name"], row["version"]) == (name, version):
                self.table.selectRow(n)
                return True
        return False

    @Slot()
    def _selection_changed(self) -> None:
        key = self.selected_key()
        steps = self.history.get(key, []) if key is not None else []
        self.history_table.setRowCount(len(steps))
        for n, step in enumerate(steps):
            move = f"{step.get('from') or '—'} → {step.get('to')}"
            if step.get("forced"):
                move += " (forced)"
            values = (step.get("time", ""), move, step.get("reason", ""), step.get("actor", ""))
            for column, value in enumerate(values):
                self.history_table.setItem(n, column, QTableWidgetItem(str(value)))
        self._update_buttons()

    def history_rows(self) -> list[tuple[str, ...]]:
        """The history view's text, row by row (time, change, reason, actor)."""
        table = self.history_table
        return [
            tuple(table.item(n, c).text() for c in range(table.columnCount()))
            for n in range(table.rowCount())
        ]

    def _update_buttons(self) -> None:
        row = self.selected_row()
        target = None if row is None else next_stage(row["stage"])
        self.promote_button.setEnabled(target is not None)
        self.promote_button.setText(f"Promote to {target}" if target else "Promote")
        self.rollback_button.setEnabled(row is not None)
        self.share.setEnabled(target == "canary")

    # -- changes ------------------------------------------------------------------------------
    @Slot()
    def choose_bundle(self) -> None:
        """Ask for a ``.mwb`` bundle and install it."""
        from workstation.inference.catalogue import shipped_models_dir

        path, _ = QFileDialog.getOpenFileName(
            self, "Install a model bundle", str(shipped_models_dir()), "Model bundles (*.mwb)"
        )
        if path:
            self.install(path)

    def install(self, bundle: str | Path) -> None:
        """Verify ``bundle`` and install it (stage ``installed``)."""
        source = Path(bundle)
        reason = self.reason.text().strip()

        def change(lifecycle: Any) -> tuple[str, tuple[str, str]]:
            done = lifecycle.install(source, reason=reason)
            return f"{done.name} {done.version}: {done.stage}", (done.name, done.version)

        self._start(change, f"installing {source.name}…")

    @Slot()
    def promote(self) -> None:
        """Promote the selected version one stage on (the canary share from the spin box)."""
        row = self.selected_row()
        target = None if row is None else next_stage(row["stage"])
        if row is None or target is None:
            self._say("choose a version that can be promoted (not the active one)")
            return
        name, version = row["name"], row["version"]
        share = self.share.value() / 100 if target == "canary" else None
        force, reason = self.force.isChecked(), self.reason.text().strip()

        def change(lifecycle: Any) -> tuple[str, tuple[str, str]]:
            done = lifecycle.promote(
                name, version, target, canary_share=share, force=force, reason=reason
            )
            return f"{done.name} {done.version}: {done.stage}", (done.name, done.version)

        self._start(change, f"promoting {name} {version} to {target}…")

    @Slot()
    def rollback(self) -> None:
        """Roll the selected model's canary, else its active version, back."""
        row = self.selected_row()
        if row is None:
            self._say("choose a model to roll back")
            return
        name = row["name"]
        reason = self.reason.text().strip() or "rolled back by hand"

        def change(lifecycle: Any) -> tuple[str, tuple[str, str]]:
            done = lifecycle.rollback(name, reason=reason)
            active = lifecycle.in_stage(name, "active")
            took = (lifecycle.last_rollback_s or 0) * 1000
            now = f"; active: {active.version}" if active else ""
            message = f"rolled back {done.name} {done.version} in {took:.1f} ms{now}"
            return message, (done.name, done.version)

        self._start(change, f"rolling {name} back…")

    def _start(self, change: Callable[[Any], Any], message: str) -> None:
        if self.change_runner.busy:
            self._say("a model change is still running")
            return
        self._say(message, error=False)
        folder = self.folder
        self.change_runner.start(
            lambda *, progress, cancel: change_task(
                change, folder, progress=progress, cancel=cancel
            )
        )

    @Slot(object)
    def _changed(self, result: object) -> None:
        ok, message, key = result  # type: ignore[misc]
        self._say(message, error=not ok)
        if ok:
            self._select = key
            self.reason.clear()
            self.force.setChecked(False)
        self.changed.emit(bool(ok), str(message))
        self.refresh()

    @Slot(str, str)
    def _refused(self, message: str, _details: str) -> None:
        self._say(f"refused: {message}")
        self.changed.emit(False, message)
        self.refresh()  # a failed gate changes the stage (blocked)

    def _say(self, message: str, *, error: bool = True) -> None:
        self.status.setText(message)
        self.status.setStyleSheet(ERROR_STYLE if error else "")

    def shutdown(self) -> None:
        """Wait for the workers (when the window closes)."""
        self.list_runner.shutdown()
        self.change_runner.shutdown()


class ModelsDialog(QDialog):
    """The Models panel in a non-modal dialog (Analyze → Models…)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.panel = ModelsPanel(self)
        layout = QVBoxLayout(self)
        layout.addWidget(self.panel)
        self.resize(820, 560)

    def shutdown(self) -> None:
        self.panel.shutdown()

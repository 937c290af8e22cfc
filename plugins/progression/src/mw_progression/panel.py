"""The Progression dock panel (PySide6; the only module that imports Qt)."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from PySide6.QtCore import Qt  # noqa: TID251 - a plugin panel brings its own Qt
from PySide6.QtWidgets import (  # noqa: TID251
    QCheckBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from mw_progression.analysis import Analysis, analyse, resimulate, years_between
from mw_progression.plot import trend_figure
from mw_progression.regions import REGIONS
from workstation.plugins.api import PanelContext, SeriesInfo

__all__ = ["DISCLAIMER_TEXT", "ProgressionPanel", "ProgressionWidget"]

DISCLAIMER_TEXT = (
    "Simulation — assumed treatment effect, not a prediction; demonstration, not for clinical use."
)
KEY_ROLE = Qt.ItemDataRole.UserRole


class ProgressionPanel:
    """Plugin entry point: ``medical_workstation.panels`` → ``progression``."""

    title = "Progression"

    def create(self, context: PanelContext) -> QWidget:
        """The panel's widget."""
        return ProgressionWidget(context)


class ProgressionWidget(QWidget):
    """Pick a patient's series, run the analysis in a task, explore the simulation."""

    def __init__(self, context: PanelContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.analysis: Analysis | None = None
        self._cancel: Any = None
        layout = QVBoxLayout(self)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Series (by patient, study date)"])
        layout.addWidget(self.tree)
        options = QHBoxLayout()
        self.bspline = QCheckBox("B-spline")
        self.effect = QSlider(Qt.Orientation.Horizontal)
        self.effect.setRange(0, 100)
        self.effect.setValue(50)
        self.effect_label = QLabel()
        self.horizon = QDoubleSpinBox()
        self.horizon.setRange(0.5, 30.0)
        self.horizon.setValue(5.0)
        self.horizon.setSuffix(" yr")
        for widget in (self.bspline, QLabel("Effect"), self.effect, self.effect_label):
            options.addWidget(widget)
        options.addWidget(QLabel("Horizon"))
        options.addWidget(self.horizon)
        layout.addLayout(options)
        buttons = QHBoxLayout()
        self.refresh_button = QPushButton("Refresh list")
        self.refresh_button.setToolTip("List the series the study browser shows now")
        buttons.addWidget(self.refresh_button)
        self.run_button = QPushButton("Run")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout.addLayout(buttons)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        layout.addWidget(self.message)
        self.volumes_table = QTableWidget(0, 4)
        self.volumes_table.setHorizontalHeaderLabels(
            ["Years", "Parenchyma (mL)", "Ventricles (mL)", "Lesion (mL)"]
        )
        self.rates_table = QTableWidget(0, 3)
        self.rates_table.setHorizontalHeaderLabels(["Region", "mL/yr (95 % CI)", "%/yr (95 % CI)"])
        layout.addWidget(self.volumes_table)
        layout.addWidget(self.rates_table)
        self.figure = Figure(figsize=(9, 3.6), layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        layout.addWidget(self.canvas)
        self.disclaimer = QLabel(DISCLAIMER_TEXT)
        self.disclaimer.setWordWrap(True)
        self.disclaimer.setStyleSheet("color: #a33; font-weight: bold")
        layout.addWidget(self.disclaimer)
        self.refresh_button.clicked.connect(self.populate)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.effect.valueChanged.connect(self._resimulate)
        self.horizon.valueChanged.connect(self._resimulate)
        self._update_effect_label()
        self._listed: tuple[str, ...] = ()
        self.populate()

    def showEvent(self, event: Any) -> None:
        """Re-list when the browser's series changed while the panel was hidden."""
        super().showEvent(event)
        if tuple(s.key for s in self.context.series()) != self._listed:
            self.populate()

    # -- series list --------------------------------------------------------------------------
    def populate(self) -> None:
        """List the context's series by patient, sorted by study date; check the default set."""
        self.tree.clear()
        groups: dict[str, list[SeriesInfo]] = defaultdict(list)
        listed = list(self.context.series())
        self._listed = tuple(s.key for s in listed)
        for info in listed:
            groups[info.patient_key].append(info)
        chosen = self._default_patient(groups)
        defaults = self._default_series(groups.get(chosen, []))
        for n, (patient, items) in enumerate(groups.items(), start=1):
            top = QTreeWidgetItem([f"Patient {n} ({patient[:8]})"])
            self.tree.addTopLevelItem(top)
            for info in sorted(items, key=lambda s: (s.study_date or "99999999", s.series_uid)):
                date = info.study_date
                shown = f"{date[:4]}-{date[4:6]}-{date[6:]}" if len(date) == 8 else "no date"
                child = QTreeWidgetItem([f"{shown}  {info.description}  ({info.images} images)"])
                child.setData(0, KEY_ROLE, info)
                child.setFlags(child.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                checked = info.key in defaults
                child.setCheckState(
                    0, Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked
                )
                top.addChild(child)
            top.setExpanded(True)

    def _default_patient(self, groups: dict[str, list[SeriesInfo]]) -> str | None:
        volume = self.context.current_volume()
        if volume is not None:
            shown = {volume.metadata.get("series_uid"), volume.metadata.get("key")}
            for patient, items in groups.items():
                if any(i.series_uid in shown or i.key in shown for i in items):
                    return patient
        return next(iter(groups), None)

    def _default_series(self, items: list[SeriesInfo]) -> set[str]:
        """One series per study date: the one on screen for its date, else the first."""
        volume = self.context.current_volume()
        shown = set()
        if volume is not None:
            shown = {volume.metadata.get("series_uid"), volume.metadata.get("key")}
        by_date: dict[str, SeriesInfo] = {}
        for info in sorted(items, key=lambda s: s.series_uid):
            on_screen = info.series_uid in shown or info.key in shown
            if info.study_date not in by_date or on_screen:
                by_date[info.study_date] = info
        return {info.key for info in by_date.values()}

    def checked(self) -> list[SeriesInfo]:
        """The checked series, in the list's order (by study date)."""
        out = []
        for t in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(t)
            for c in range(top.childCount()):
                child = top.child(c)
                if child.checkState(0) == Qt.CheckState.Checked:
                    out.append(child.data(0, KEY_ROLE))
        return out

    # -- running ------------------------------------------------------------------------------
    def run(self) -> None:
        """Start the analysis of the checked series (first by date = baseline) in a task."""
        if self.tree.topLevelItemCount() == 0:  # opened before the browser listed anything
            self.populate()
        chosen = self.checked()
        if len({s.patient_key for s in chosen}) != 1 or len(chosen) < 2:
            self.message.setText("Check at least two series of one patient.")
            return
        times = years_between([s.study_date for s in chosen])
        if times is None:
            self.message.setText("A checked series has no study date: the times are unknown.")
            return
        if len(set(times)) < len(times):
            self.message.setText("Two checked series share a study date: keep one per timepoint.")
            return
        self.message.setText("Running…")
        keys = [s.key for s in chosen]
        bspline = self.bspline.isChecked()
        effect, horizon = self.effect.value() / 100.0, self.horizon.value()
        context = self.context

        def work(progress: Any = None, cancel: Any = None) -> Analysis:
            volumes = []
            for n, key in enumerate(keys):
                if progress is not None:
                    progress(n, len(keys) + 1, f"loading series {n + 1} of {len(keys)}")
                volumes.append(context.load_series(key, cancel=cancel))
            return analyse(
                volumes,
                times,
                bspline=bspline,
                effect=effect,
                horizon=horizon,
                progress=progress,
                cancel=cancel,
            )

        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self._cancel = context.run_task(
            work, on_done=self._done, on_failed=self._failed, title="Progression analysis"
        )

    def cancel(self) -> None:
        """Cancel the running task."""
        if self._cancel is not None:
            self._cancel()
        self._finish()

    def _finish(self) -> None:
        self._cancel = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _failed(self, message: str) -> None:
        self._finish()
        self.message.setText(f"Failed: {message}")

    def _done(self, analysis: Analysis) -> None:
        self._finish()
        self.analysis = analysis
        self._resimulate()  # uses the slider's current value
        self._fill_tables()
        if analysis.change is not None:
            self.context.show_overlay(
                "Change since baseline",
                analysis.change,
                kind="heatmap",
                colormap="coolwarm",
                opacity=0.5,
            )
        self.message.setText("Done. Volumes measured; projections are simulations.")
        self.context.status("Progression analysis done")

    def _fill_tables(self) -> None:
        analysis = self.analysis
        if analysis is None:
            return
        self.volumes_table.setRowCount(len(analysis.times))
        for row, (t, v) in enumerate(zip(analysis.times, analysis.volumes, strict=True)):
            cells = [f"{t:.2f}"] + [f"{v.get(r):.2f}" for r in REGIONS]
            for col, text in enumerate(cells):
                self.volumes_table.setItem(row, col, QTableWidgetItem(text))
        self.rates_table.setRowCount(len(analysis.fits))
        for row, fit in enumerate(analysis.fits):
            lo, hi = fit.ci95
            plo, phi = fit.ci95_percent
            percent = (
                f"{fit.rate_percent:+.2f} ({plo:+.2f} … {phi:+.2f})"
                if math.isfinite(fit.rate_percent)
                else "n/a (baseline ≈ 0)"
            )
            cells = [fit.region, f"{fit.rate:+.2f} ({lo:+.2f} … {hi:+.2f})", percent]
            for col, text in enumerate(cells):
                self.rates_table.setItem(row, col, QTableWidgetItem(text))
        self.volumes_table.resizeColumnsToContents()
        self.rates_table.resizeColumnsToContents()

    def _update_effect_label(self) -> None:
        self.effect_label.setText(f"{self.effect.value()} % (assumed)")

    def _resimulate(self, *_: Any) -> None:
        self._update_effect_label()
        if self.analysis is None:
            return
        resimulate(self.analysis, self.effect.value() / 100.0, self.horizon.value())
        trend_figure(self.analysis.fits, self.analysis.simulations, self.figure)
        self.canvas.draw_idle()

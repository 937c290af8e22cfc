"""The "ROI statistics" dock panel: a sphere at the crosshair, measured on the current volume.

The workstation instantiates :class:`RoiPanel` (no arguments) and calls :meth:`RoiPanel.create`
once, the first time the user opens the panel from the Plugins menu. Everything the panel needs
from the application comes through the ``context`` (a ``workstation.plugins.api.PanelContext``):

- ``current_volume()`` and ``cursor_lps()``: what to measure and where;
- ``run_task(...)``: the computation runs in a worker, the result comes back on the GUI thread;
- ``show_overlay(...)``: the sphere is drawn over the image as a label layer;
- ``status(...)``: a short message in the status bar.

The arithmetic lives in :mod:`mw_measure_example.stats`, which has no Qt in it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from mw_measure_example.stats import SphereStats, sphere_mask, sphere_stats, to_csv

__all__ = ["RoiPanel", "RoiWidget"]

OVERLAY_NAME = "ROI sphere"


class RoiPanel:
    """The panel contribution (entry point ``medical_workstation.panels: roi``)."""

    title = "ROI statistics"

    def create(self, context: Any) -> QWidget:
        return RoiWidget(context)


class RoiWidget(QWidget):
    """Radius, Measure, the results form and Copy as CSV."""

    def __init__(self, context: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._context = context
        self._stats: SphereStats | None = None

        self.radius = QDoubleSpinBox(suffix=" mm", decimals=1, minimum=0.5, maximum=500.0)
        self.radius.setValue(10.0)
        self.show_sphere = QCheckBox("Show sphere on the image", checked=True)
        self.measure_button = QPushButton("Measure at crosshair")
        self.copy_button = QPushButton("Copy as CSV", enabled=False)
        self.message = QLabel("Place the crosshair and press Measure.", wordWrap=True)

        self.fields: dict[str, QLabel] = {}
        results = QFormLayout()
        for key, label in (
            ("voxels", "Voxels"),
            ("volume_ml", "Volume (mL)"),
            ("mean", "Mean"),
            ("sd", "SD"),
            ("min", "Min"),
            ("max", "Max"),
        ):
            self.fields[key] = QLabel("–")
            results.addRow(label, self.fields[key])

        settings = QFormLayout()
        settings.addRow("Radius", self.radius)
        buttons = QHBoxLayout()
        buttons.addWidget(self.measure_button)
        buttons.addWidget(self.copy_button)
        layout = QVBoxLayout(self)
        layout.addLayout(settings)
        layout.addWidget(self.show_sphere)
        layout.addLayout(buttons)
        layout.addLayout(results)
        layout.addWidget(self.message)
        layout.addStretch(1)

        self.measure_button.clicked.connect(self.measure)
        self.copy_button.clicked.connect(self.copy_csv)

    # -- actions -----------------------------------------------------------------------------
    def measure(self) -> None:
        """Measure the sphere at the crosshair (in a worker, through ``context.run_task``)."""
        volume = self._context.current_volume()
        center = self._context.cursor_lps()
        if volume is None or center is None:
            self.message.setText("Open an image and place the crosshair first.")
            return
        radius = self.radius.value()
        show = self.show_sphere.isChecked()

        def work(*, progress: Any = None, cancel: Any = None) -> tuple[SphereStats, Any]:
            # Runs in a worker thread: no widgets here, only numpy.
            stats = sphere_stats(volume, center, radius)
            overlay = None
            if show:
                mask = sphere_mask(volume, center, radius).astype(np.uint8)
                overlay = volume.with_array(mask)
            return stats, overlay

        self.measure_button.setEnabled(False)
        self.message.setText("Measuring…")
        self._context.run_task(
            work, on_done=self._done, on_failed=self._failed, title="ROI statistics"
        )

    def copy_csv(self) -> None:
        """Put the last measurement on the clipboard as CSV (header + one row)."""
        if self._stats is None:
            return
        QApplication.clipboard().setText(to_csv(self._stats))
        self._context.status("ROI statistics copied as CSV")

    # -- results (GUI thread) ----------------------------------------------------------------
    def _done(self, result: tuple[SphereStats, Any]) -> None:
        stats, overlay = result
        self._stats = stats
        self.measure_button.setEnabled(True)
        self.copy_button.setEnabled(True)
        self.fields["voxels"].setText(str(stats.voxels))
        for key in ("volume_ml", "mean", "sd", "min", "max"):
            value = getattr(stats, key)
            self.fields[key].setText("–" if math.isnan(value) else f"{value:.4g}")
        if stats.voxels == 0:
            self.message.setText("The sphere lies outside the image.")
        else:
            where = ", ".join(f"{c:.1f}" for c in stats.center_lps)
            self.message.setText(f"Sphere of {stats.radius_mm:g} mm at LPS ({where}) mm")
        if overlay is not None:
            self._context.show_overlay(
                OVERLAY_NAME, overlay, kind="labels", opacity=0.3, label_names={1: "ROI"}
            )

    def _failed(self, message: str) -> None:
        self.measure_button.setEnabled(True)
        self.message.setText(f"Measurement failed: {message}")

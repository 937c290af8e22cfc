"""The Analyze panel: real demo models on the demo lesion series (no mocks).

The analysis itself (about 20 s on a CPU) runs once, in one test that checks the layers, the
findings list, the crosshair jump, the details and the save status.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from workstation.inference.catalogue import DISCLAIMER
from workstation.render import HeatmapLayer, LabelsLayer
from workstation.ui.analyze_panel import AnalyzePanel
from workstation.ui.main_window import MainWindow

LESION_SERIES = Path(__file__).resolve().parents[2] / "resources" / "demo" / "brain_mr_lesion"
LESION_LPS = np.array([32.0, 2.0, 18.0])  # the true lesion centre (build_lesion_series.py)
LOAD_MS = 60_000
MODELS_MS = 30_000
RUN_MS = 240_000  # about 20 s on an idle CPU; much more on a busy one


def _models_listed(panel: AnalyzePanel, qtbot: QtBot) -> None:
    qtbot.waitUntil(lambda: panel.model_combo.count() >= 2, timeout=MODELS_MS)


def _load_lesion_series(window: MainWindow, qtbot: QtBot) -> None:
    with qtbot.waitSignal(window.loaded, timeout=LOAD_MS):
        window.load(str(LESION_SERIES))
    assert window.study_view.base is not None
    assert window.study_view.base.volume.shape == (189, 233, 197)


def _choose(panel: AnalyzePanel, model: str, explain: str | None) -> None:
    panel.model_combo.setCurrentIndex(panel.model_combo.findData(model))
    panel.explain_combo.setCurrentIndex(panel.explain_combo.findData(explain))


def test_the_panel_lists_the_demo_models_with_the_disclaimer(
    window: MainWindow, qtbot: QtBot
) -> None:
    panel = window.analyze_panel
    assert DISCLAIMER == "demonstration model — not for clinical use"
    _models_listed(panel, qtbot)
    names = [panel.model_combo.itemData(n) for n in range(panel.model_combo.count())]
    assert {"demo-lesion-seg", "demo-lesion-cls"} <= set(names)
    assert all(" " in panel.model_combo.itemText(n) for n in range(len(names)))  # name version
    window.analyze_dock.raise_()  # tabbed with the layers panel
    qtbot.waitUntil(panel.disclaimer.isVisible)
    assert DISCLAIMER in panel.disclaimer.text()
    tip = panel.model_combo.itemData(0, Qt.ItemDataRole.ToolTipRole)
    assert DISCLAIMER in tip and "Intended use" in tip and "Training data" in tip
    assert not panel.run_button.isEnabled()  # no volume loaded
    _choose(panel, "demo-lesion-seg", "gradcam")
    assert panel.confirm.isEnabled() and panel.confirm.isChecked()
    request = panel.request()
    assert request is not None and request.confirm_with == "demo-lesion-cls"
    assert request.explain == "gradcam"
    _choose(panel, "demo-lesion-cls", None)
    assert not panel.confirm.isEnabled()
    request = panel.request()
    assert request is not None and request.confirm_with is None and request.explain is None


def test_running_the_segmentation_model_adds_layers_and_findings(
    window: MainWindow, qtbot: QtBot
) -> None:
    panel = window.analyze_panel
    _models_listed(panel, qtbot)
    _load_lesion_series(window, qtbot)
    _choose(panel, "demo-lesion-seg", "gradcam")
    assert panel.run_button.isEnabled()
    view = window.study_view
    base = view.base
    assert base is not None
    qtbot.mouseClick(panel.run_button, Qt.MouseButton.LeftButton)
    assert panel.cancel_button.isEnabled()
    with qtbot.waitSignal(panel.runner.finished, timeout=RUN_MS):
        pass
    assert panel.status.text().startswith("done"), panel.status.text()

    heatmaps = [layer for layer in view.layers if isinstance(layer, HeatmapLayer)]
    labels = [layer for layer in view.layers if isinstance(layer, LabelsLayer)]
    assert [layer.name for layer in heatmaps] == ["Grad-CAM (demo-lesion-seg)"]
    assert [layer.name for layer in labels] == ["Findings (demo-lesion-seg)"]
    for layer in (*heatmaps, *labels):
        assert layer.volume.shape == base.volume.shape
        assert np.allclose(layer.volume.origin, base.volume.origin)
        assert np.allclose(layer.volume.spacing, base.volume.spacing)
    assert heatmaps[0].opacity == pytest.approx(0.5) and heatmaps[0].colormap == "inferno"
    assert labels[0].data.max() >= 1

    tree = panel.findings
    assert tree.topLevelItemCount() >= 1
    centroids = [np.array(tree.centroid(n)) for n in range(tree.topLevelItemCount())]
    distances = [float(np.linalg.norm(c - LESION_LPS)) for c in centroids]
    row = int(np.argmin(distances))
    assert distances[row] < 15.0, centroids
    view.cursor_lps = base.volume.index_to_lps((0.0, 0.0, 0.0))
    item = tree.topLevelItem(row)
    rect = tree.visualItemRect(item)
    qtbot.mouseClick(tree.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert view.cursor_lps is not None
    assert np.allclose(view.cursor_lps, centroids[row])

    details = panel.details.text()
    assert "lesion probability" in details and "Grad-CAM" in details
    assert "Deletion AUC" in details and "Insertion AUC" in details
    qtbot.waitUntil(lambda: "saved" in panel.save_status.text(), timeout=30_000)
    assert panel.save_status.text().startswith(("saved to the encrypted store as ", "not saved: "))

    # A second run of the same model replaces its layers (no Grad-CAM: only the findings).
    _choose(panel, "demo-lesion-seg", None)
    panel.confirm.setChecked(False)
    with qtbot.waitSignal(panel.runner.finished, timeout=RUN_MS):
        panel.run()
    names = [layer.name for layer in view.layers]
    assert names.count("Findings (demo-lesion-seg)") == 1
    assert "Grad-CAM (demo-lesion-seg)" not in names


def test_cancel_returns_to_idle_without_layers(window: MainWindow, qtbot: QtBot) -> None:
    panel = window.analyze_panel
    _models_listed(panel, qtbot)
    _load_lesion_series(window, qtbot)
    _choose(panel, "demo-lesion-seg", "gradcam")
    count = len(window.study_view)
    with qtbot.waitSignal(panel.runner.cancelled, timeout=RUN_MS):
        qtbot.mouseClick(panel.run_button, Qt.MouseButton.LeftButton)
        qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
    assert panel.status.text() == "cancelled"
    assert not panel.cancel_button.isEnabled() and not panel.progress.isVisible()
    assert panel.run_button.isEnabled()
    assert len(window.study_view) == count and panel.findings.topLevelItemCount() == 0

"""The main window around the views: layouts, the layers panel, demo tissue labels, recents."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from workstation.config import demo_study_path
from workstation.render import ImageLayer, LabelsLayer, ViewPlane
from workstation.render.tissue import TISSUE_LAYER_NAME
from workstation.ui.main_window import MainWindow
from workstation.workflow.recent import RecentStudies

LOAD_MS = 60_000
Grab = Callable[..., np.ndarray]


def _load(window: MainWindow, qtbot: QtBot, folder: Path | str) -> None:
    with qtbot.waitSignal(window.loaded, timeout=LOAD_MS):
        window.load(str(folder))


def _labels(window: MainWindow, volume: Any) -> LabelsLayer:
    data = np.zeros(volume.array.shape, dtype=np.uint8)
    data[:, : data.shape[1] // 2] = 1
    return LabelsLayer(volume.with_array(data), label_names={1: "front"}, name="test labels")


def test_layout_keys_switch_between_1x1_1x3_and_2x2(
    window: MainWindow, qtbot: QtBot, marker_series: Any, display: None
) -> None:
    _load(window, qtbot, marker_series.folder)
    assert [view.plane for view in window.views] == list(ViewPlane)
    window.activateWindow()  # the layout keys are shortcuts: they need an active window
    qtbot.waitUntil(window.isActiveWindow)
    qtbot.keyClick(window.views[0], Qt.Key.Key_1)
    assert window.grid.layout_name == "1x1"
    assert [view.plane for view in window.views] == [ViewPlane.AXIAL]
    assert not window.grid.slice_views[ViewPlane.CORONAL].isVisible()
    qtbot.keyClick(window.views[0], Qt.Key.Key_3)
    assert window.grid.layout_name == "2x2"
    qtbot.waitUntil(lambda: window.grid.view3d is not None, timeout=30_000)
    assert window.grid.view3d.isVisible()
    assert all(view.isVisible() for view in window.views) and len(window.views) == 3
    window.activateWindow()  # without a window manager the native VTK window took the focus
    qtbot.waitUntil(window.isActiveWindow)
    qtbot.keyClick(window.views[0], Qt.Key.Key_2)
    assert window.grid.layout_name == "1x3" and not window.grid.view3d.isVisible()
    checked = [a.data() for a in window.actions_.layouts.actions() if a.isChecked()]
    assert checked == ["1x3"]


def test_unknown_layout_is_refused(window: MainWindow) -> None:
    with pytest.raises(ValueError, match="unknown layout"):
        window.set_layout("3x3")


def test_layer_panel_lists_top_first_and_edits_the_model(
    window: MainWindow, qtbot: QtBot, marker_series: Any
) -> None:
    _load(window, qtbot, marker_series.folder)
    view = window.study_view
    labels = view.add(_labels(window, view.base.volume))  # type: ignore[union-attr]
    panel = window.layer_panel
    assert panel.list.count() == 2
    assert panel.list.item(0).text().startswith("test labels")
    assert panel.list.item(1).text().startswith("image")
    panel.list.item(0).setCheckState(Qt.CheckState.Unchecked)
    assert labels.visible is False
    labels.visible = True  # and back: the panel follows the model
    assert panel.list.item(0).checkState() == Qt.CheckState.Checked
    panel.list.setCurrentRow(0)
    panel.opacity.setValue(25)
    assert labels.opacity == pytest.approx(0.25)
    assert not panel.colormap.isEnabled()  # labels have their own colours
    panel.list.setCurrentRow(1)
    assert view.selected is view.base and not panel.remove_button.isEnabled()
    panel.colormap.setCurrentText("viridis")
    assert isinstance(view.base, ImageLayer) and view.base.colormap == "viridis"
    panel.list.setCurrentRow(0)
    qtbot.mouseClick(panel.remove_button, Qt.MouseButton.LeftButton)
    assert len(view) == 1 and panel.list.count() == 1


def test_demo_tissue_labels_appear_as_a_coloured_layer(
    window: MainWindow, qtbot: QtBot, grab: Grab
) -> None:
    _load(window, qtbot, demo_study_path())
    before = grab(window.views[0]).astype(int)
    with qtbot.waitSignal(window.layer_panel.list.model().rowsInserted, timeout=30_000):
        window.actions_.tissue.trigger()
    layer = window.study_view.layers[-1]
    assert isinstance(layer, LabelsLayer) and layer.name == TISSUE_LAYER_NAME
    assert set(np.unique(layer.data)) == {0, 1, 2, 3}
    after = grab(window.views[0]).astype(int)
    colourful = lambda rgba: (rgba[..., :3].max(axis=2) - rgba[..., :3].min(axis=2)) > 40  # noqa: E731
    assert colourful(after).sum() > 20 * max(colourful(before).sum(), 100)


def test_demo_tissue_labels_on_another_series_are_refused_in_the_problems_panel(
    window: MainWindow, qtbot: QtBot, marker_series: Any
) -> None:
    _load(window, qtbot, marker_series.folder)
    count = window.problems.count()
    window.actions_.tissue.trigger()
    qtbot.waitUntil(lambda: window.problems.count() > count, timeout=30_000)
    assert "grid" in window.problems.item(window.problems.count() - 1).text()
    assert len(window.study_view) == 1


def test_opened_folders_go_to_the_recent_studies(
    window: MainWindow, qtbot: QtBot, marker_series: Any
) -> None:
    with qtbot.waitSignal(window.loaded, timeout=LOAD_MS):
        window.open(str(marker_series.folder))
    entries = RecentStudies(window.actions_.recent.path).entries()
    assert [entry.source for entry in entries][:1] == [str(marker_series.folder)]
    window.actions_._fill_recent()
    texts = [action.text() for action in window.actions_.recent_menu.actions()]
    assert str(marker_series.folder) in texts

"""Plugins in the main window: the Plugins menu, panel docks, the panel context, isolation of a
broken plugin, and the DEVELOPER MODE marking. Real signed bundles, throwaway keys."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import plugin_fixtures
import pytest
from plugin_fixtures import (
    BROKEN_KEY,
    BROKEN_NAME,
    MEASURE,
    MEASURE_NAME,
    ROI_KEY,
    Bundles,
    install,
)
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from workstation.core.volume import Volume
from workstation.plugins.developer import DeveloperMode
from workstation.render import HeatmapLayer, LabelsLayer
from workstation.ui.plugin_context import patient_key
from workstation.ui.plugin_host import DEVELOPER_TITLE

# The shared fixtures (a module, not a conftest: only these tests use them).
bundles = plugin_fixtures.bundles
make_window = plugin_fixtures.make_window
_clean_imports = plugin_fixtures._clean_imports


LOAD_MS = 60_000


def _menu_texts(window: Any) -> list[str]:
    return [a.text() for a in window.actions_.plugins_menu.actions() if a.text()]


def _load(window: Any, qtbot: QtBot, folder: Any) -> None:
    with qtbot.waitSignal(window.loaded, timeout=LOAD_MS):
        window.open(str(folder))


def test_the_plugins_menu_lists_panels_and_opens_one_in_a_dock(
    bundles: Bundles, make_window: Callable[..., Any]
) -> None:
    install(bundles, bundles.measure)
    window = make_window()
    assert f"Roi ({MEASURE_NAME})" in _menu_texts(window)  # nothing imported yet
    assert "Plugin &manager…" in _menu_texts(window)
    assert window.plugins.registry.get(MEASURE_NAME).state == "ready"

    window.plugins.panel_actions[ROI_KEY].trigger()
    dock = window.plugins.docks[ROI_KEY]
    assert dock.isVisible() and dock.widget().isVisible()
    assert window.dockWidgetArea(dock) == Qt.DockWidgetArea.RightDockWidgetArea
    assert dock.windowTitle() == f"ROI statistics ({MEASURE_NAME})"
    assert f"ROI statistics ({MEASURE_NAME})" in _menu_texts(window)
    assert window.plugins.registry.get(MEASURE_NAME).state == "loaded"

    dock.close()
    assert window.plugins.open_panel(ROI_KEY) is dock  # created once, shown again
    assert dock.isVisible()
    assert DEVELOPER_TITLE not in window.windowTitle()
    assert not window.plugins.developer_label.isVisibleTo(window)


def test_the_roi_panel_measures_the_loaded_volume_through_the_context(
    bundles: Bundles, make_window: Callable[..., Any], qtbot: QtBot, marker_series: Any
) -> None:
    install(bundles, bundles.measure)
    window = make_window()
    _load(window, qtbot, marker_series.folder)
    window.study_view.cursor_lps = marker_series.marker_lps
    widget = window.plugins.open_panel(ROI_KEY).widget()
    widget.radius.setValue(3.0)
    widget.measure_button.click()
    qtbot.waitUntil(lambda: widget.fields["voxels"].text() != "–", timeout=10_000)
    assert int(widget.fields["voxels"].text()) > 0
    assert float(widget.fields["max"].text()) == pytest.approx(1000)
    layer = window.study_view[f"ROI sphere ({MEASURE_NAME})"]
    assert isinstance(layer, LabelsLayer) and layer.label_names == {1: "ROI"}

    widget.measure_button.click()  # a second measurement replaces the layer
    qtbot.waitUntil(lambda: widget.measure_button.isEnabled(), timeout=10_000)
    names = [layer.name for layer in window.study_view.layers]
    assert names.count(f"ROI sphere ({MEASURE_NAME})") == 1


def test_a_broken_panel_is_reported_and_the_window_runs_on(
    bundles: Bundles, make_window: Callable[..., Any], qtbot: QtBot
) -> None:
    install(bundles, bundles.measure, bundles.broken)
    window = make_window()
    assert window.plugins.open_panel(BROKEN_KEY) is None
    problems = [window.problems.item(i).text() for i in range(window.problems.count())]
    assert any("the broken panel always fails" in text for text in problems)
    assert window.problems.item(window.problems.count() - 1).toolTip()  # the traceback
    assert not window.plugins.panel_actions[BROKEN_KEY].isEnabled()
    assert window.plugins.registry.get(BROKEN_NAME).state == "failed"
    box = window.plugins.message_box
    assert box is not None and "always fails" in box.text()
    box.close()
    assert BROKEN_KEY not in window.plugins.docks
    assert window.plugins.open_panel(ROI_KEY) is not None  # the other plugin still works
    with qtbot.waitSignal(window.plugins.plugins_changed):
        window.plugins.rediscover()
    action = window.plugins.panel_actions[BROKEN_KEY]  # still failed: listed, disabled
    assert not action.isEnabled() and "always fails" in action.toolTip()
    assert window.plugins.registry.get(MEASURE_NAME).state == "loaded"
    assert window.plugins.docks[ROI_KEY].isVisible()
    window.set_layout("1x1")


def test_open_panel_when_ready_waits_for_discovery(
    bundles: Bundles, make_window: Callable[..., Any], qtbot: QtBot
) -> None:
    install(bundles, bundles.measure)
    window = make_window()
    with qtbot.waitSignal(window.plugins.plugins_changed):
        window.plugins.rediscover()
        window.plugins.open_panel_when_ready(ROI_KEY)
    assert window.plugins.docks[ROI_KEY].isVisible()


def test_a_failing_task_goes_to_on_failed_and_the_problems_panel(
    make_window: Callable[..., Any], qtbot: QtBot
) -> None:
    window = make_window()
    context = window.plugins.context("mw-some-plugin")
    outcome: dict[str, Any] = {}

    def explode(*, progress: Any, cancel: Any) -> None:
        progress(1, 2, "halfway")
        raise ValueError("plugin arithmetic went wrong")

    context.run_task(explode, on_done=lambda r: None, on_failed=outcome.setdefault, title="Sum")
    qtbot.waitUntil(lambda: bool(outcome), timeout=5000)
    (message,) = outcome
    assert "plugin arithmetic went wrong" in message
    problems = [window.problems.item(i).text() for i in range(window.problems.count())]
    assert any("mw-some-plugin" in t and "went wrong" in t for t in problems)

    def bad_callback(result: Any) -> None:
        raise KeyError("callback bug")

    context.run_task(lambda *, progress, cancel: 42, on_done=bad_callback)
    qtbot.waitUntil(lambda: window.problems.count() == len(problems) + 1, timeout=5000)
    assert "callback bug" in window.problems.item(window.problems.count() - 1).text()
    assert not window.plugins.tasks.running

    done: list[Any] = []
    cancel = context.run_task(_slow, on_done=done.append, on_failed=done.append, title="Slow")
    assert window.plugins.tasks.widget.isVisibleTo(window)
    cancel()
    qtbot.waitUntil(lambda: done == ["cancelled"], timeout=5000)
    assert not window.plugins.tasks.widget.isVisibleTo(window)


def _slow(*, progress: Any, cancel: Any) -> None:
    import time

    for _ in range(500):
        cancel.raise_if_cancelled()
        time.sleep(0.01)


def test_series_lists_the_browser_and_load_series_loads_one(
    make_window: Callable[..., Any], qtbot: QtBot, marker_series: Any
) -> None:
    window = make_window()
    _load(window, qtbot, marker_series.folder)
    context = window.plugins.context("mw-some-plugin")
    (info,) = context.series()
    catalog = window.browser.catalog
    patient = catalog.patients[0]
    assert info.patient_key == patient_key(patient.patient_id, patient.name)
    assert re.fullmatch(r"[0-9a-f]{64}", info.patient_key)
    assert patient.patient_id not in info.patient_key
    assert info.images == window.study_view.base.volume.size[2]
    loaded: list[Any] = []
    context.run_task(
        lambda *, progress, cancel: context.load_series(info.key, progress=progress, cancel=cancel),
        on_done=loaded.append,
    )
    qtbot.waitUntil(lambda: bool(loaded), timeout=LOAD_MS)
    assert isinstance(loaded[0], Volume)
    assert np.array_equal(loaded[0].array, window.study_view.base.volume.array)


def test_an_overlay_on_another_grid_is_resampled_and_replaced(
    make_window: Callable[..., Any], qtbot: QtBot, marker_series: Any
) -> None:
    window = make_window()
    _load(window, qtbot, marker_series.folder)
    base = window.study_view.base.volume
    coarse = Volume(
        np.ones(tuple(max(1, n // 2) for n in base.array.shape), dtype=np.float32),
        tuple(2 * s for s in base.spacing),
        base.origin,
        base.direction,
    )
    context = window.plugins.context("mw-some-plugin")
    context.show_overlay("change", coarse, kind="heatmap", colormap="coolwarm", opacity=0.4)
    context.show_overlay("change", coarse)
    name = "change (mw-some-plugin)"
    layers = [layer for layer in window.study_view.layers if layer.name == name]
    assert len(layers) == 1 and isinstance(layers[0], HeatmapLayer)
    assert layers[0].volume.array.shape == base.array.shape
    with pytest.raises(ValueError, match="heatmap"):
        context.show_overlay("x", coarse, kind="contours")


def test_developer_mode_plugins_mark_the_title_and_status_bar(
    make_window: Callable[..., Any], qtbot: QtBot
) -> None:
    mode = DeveloperMode.load()
    mode.enabled = True
    mode.add(MEASURE)
    mode.save()
    window = make_window()
    assert window.windowTitle().endswith(DEVELOPER_TITLE)
    assert "DEVELOPER MODE" in window.windowTitle()
    label = window.plugins.developer_label
    assert label.isVisibleTo(window) and MEASURE_NAME in label.toolTip()
    record = window.plugins.registry.get(MEASURE_NAME)
    assert record.source == "developer" and record.trusted_by == "unsigned (developer mode)"

    mode.enabled = False
    mode.save()
    with qtbot.waitSignal(window.plugins.plugins_changed):
        window.plugins.rediscover()
    assert DEVELOPER_TITLE not in window.windowTitle()
    assert not label.isVisibleTo(window)

"""Cine playback of a SliceView, and the Home/End keys."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from workstation.core.volume import Volume
from workstation.render import ImageLayer, StudyView, ViewPlane, Window
from workstation.ui.cine import DEFAULT_FPS, CineController
from workstation.ui.slice_view import SliceView

WAIT_MS = 10_000  # generous: the machine may be busy; nothing here measures speed


@pytest.fixture
def view(qtbot: QtBot) -> SliceView:
    array = np.zeros((6, 20, 30), dtype=np.int16)
    study = StudyView([ImageLayer(Volume(array=array), window=Window(0, 10))])
    widget = SliceView(study, ViewPlane.AXIAL)
    qtbot.addWidget(widget)
    widget.resize(200, 200)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def _index(view: SliceView) -> int:
    position = view.slice_index()
    assert position is not None
    return position[0]


def test_home_and_end_jump_to_the_first_and_last_slice(view: SliceView, qtbot: QtBot) -> None:
    qtbot.keyClick(view, Qt.Key.Key_End)
    assert view.slice_index() == (5, 6)
    qtbot.keyClick(view, Qt.Key.Key_Home)
    assert view.slice_index() == (0, 6)
    view.go_to_slice(-2)
    assert view.slice_index() == (4, 6)
    view.go_to_slice(99)
    assert view.slice_index() == (5, 6)


def test_the_view_owns_one_controller_made_on_demand(view: SliceView) -> None:
    assert view._cine is None
    cine = view.cine
    assert isinstance(cine, CineController) and view.cine is cine
    assert cine.fps == DEFAULT_FPS == 10.0 and not cine.running


def test_fps_is_validated(view: SliceView) -> None:
    cine = view.cine
    cine.fps = 25
    assert cine.fps == 25.0
    for bad in (0, -1, float("nan"), 1000):
        with pytest.raises(ValueError, match="frames/s"):
            cine.fps = bad


def test_plays_forward_and_loops(view: SliceView, qtbot: QtBot) -> None:
    view.go_to_slice(3)
    seen: list[int] = []
    view.study_view.events.cursor.connect(lambda _point: seen.append(_index(view)))
    cine = view.cine
    cine.fps = 50
    with qtbot.waitSignal(cine.running_changed, check_params_cb=lambda on: on is True):
        cine.start()
    assert cine.running
    # Wait for 3 -> 4 -> 5 -> 0 (the loop) -> 1, however long the machine takes.
    qtbot.waitUntil(lambda: len(seen) >= 4, timeout=WAIT_MS)
    cine.stop()
    assert seen[:4] == [4, 5, 0, 1]
    assert not cine.running
    stopped_at = list(seen)
    qtbot.wait(100)
    assert seen == stopped_at  # stopped means stopped


def test_space_toggles_cine(view: SliceView, qtbot: QtBot) -> None:
    with qtbot.waitSignal(view.cine.running_changed, check_params_cb=lambda on: on is True):
        qtbot.keyClick(view, Qt.Key.Key_Space)
    with qtbot.waitSignal(view.cine.running_changed, check_params_cb=lambda on: on is False):
        qtbot.keyClick(view, Qt.Key.Key_Space)
    assert not view.cine.running


def test_stops_when_the_volume_goes_away(view: SliceView, qtbot: QtBot) -> None:
    view.cine.fps = 50
    view.cine.toggle()
    assert view.cine.running
    with qtbot.waitSignal(
        view.cine.running_changed, timeout=WAIT_MS, check_params_cb=lambda on: on is False
    ):
        view.study_view.clear()
    assert not view.cine.running
    view.cine.start()  # nothing to play
    assert not view.cine.running


def test_stops_when_the_view_closes(view: SliceView) -> None:
    view.cine.start()
    assert view.cine.running
    view.close()
    assert not view.cine.running

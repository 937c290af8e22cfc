"""SliceView on an in-memory volume: painting, scrolling, clicking, window/level."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from pytestqt.qtbot import QtBot

from workstation.core.volume import Volume
from workstation.render import ImageLayer, StudyView, ViewPlane, Window, slice_index_of
from workstation.ui.slice_view import SliceView

Grab = Callable[..., np.ndarray]


def _volume() -> Volume:
    array = np.zeros((10, 20, 30), dtype=np.int16)
    array[:, 5:15, 5:25] = 500
    return Volume(array=array, spacing=(1.0, 2.0, 3.0), origin=(0.0, 0.0, 0.0))


@pytest.fixture
def view(qtbot: QtBot) -> SliceView:
    study = StudyView([ImageLayer(_volume(), window=Window(250, 500))])
    widget = SliceView(study, ViewPlane.AXIAL)
    qtbot.addWidget(widget)
    widget.resize(300, 300)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def test_paints_the_image_keeping_the_physical_aspect(view: SliceView, grab: Grab) -> None:
    image = grab(view)
    assert image[..., :3].max() == 255  # the bright block, white through the window
    rect = view.image_rect()
    # 30 columns of 1 mm by 20 rows of 2 mm: 30 mm × 40 mm, scaled to fit 300 px high.
    assert rect.height() == pytest.approx(300)
    assert rect.width() == pytest.approx(300 * 30 / 40)
    assert view.slice_index() == (5, 10)


def test_empty_view_paints(qtbot: QtBot, grab: Grab) -> None:
    widget = SliceView(StudyView(), ViewPlane.CORONAL)
    qtbot.addWidget(widget)
    widget.resize(200, 200)
    assert grab(widget).shape[:2] == (200, 200)
    assert widget.current_slice is None


def test_wheel_and_keys_scroll_the_cursor(view: SliceView, qtbot: QtBot) -> None:
    study = view.study_view
    index, count = view.slice_index()  # type: ignore[misc]
    view.scroll_slices(2)
    assert view.slice_index() == (index + 2, count)
    # The cursor moves along the normal (+z, S) onto the slice centre, 3 mm apart.
    assert study.cursor_lps[2] == pytest.approx((index + 2) * 3.0)  # type: ignore[index]
    qtbot.keyClick(view, Qt.Key.Key_Down)
    assert view.slice_index() == (index + 1, count)
    view.scroll_slices(100)  # clamped to the last slice
    assert view.slice_index() == (count - 1, count)


def test_click_moves_the_cursor_in_plane(view: SliceView, qtbot: QtBot) -> None:
    study = view.study_view
    before = slice_index_of(study.base.volume, ViewPlane.AXIAL, study.cursor_lps)  # type: ignore[union-attr]
    target = view.pixel_to_widget((3, 7))
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=target.toPoint())
    cut = view.current_slice
    assert cut is not None
    assert np.allclose(cut.lps_to_pixel(study.cursor_lps), (3, 7), atol=0.2)
    after = slice_index_of(study.base.volume, ViewPlane.AXIAL, study.cursor_lps)  # type: ignore[union-attr]
    assert after == before  # a click stays on the slice


def test_drag_changes_window_level(view: SliceView, qtbot: QtBot) -> None:
    layer = view.study_view.base
    assert isinstance(layer, ImageLayer)
    cursor = view.study_view.cursor_lps
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=QPoint(100, 100))
    qtbot.mouseMove(view, QPoint(140, 120))
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=QPoint(140, 120))
    assert layer.window.width > 500
    assert layer.window.center > 250
    assert view.study_view.cursor_lps == cursor  # a drag is not a click


def test_status_text_reports_value_and_lps(view: SliceView) -> None:
    point = view.pixel_to_widget((10, 10))
    view._update_status(QPointF(point))  # what a mouse move calls
    assert "value 500" in view.status_text
    assert "LPS (10.0, 20.0," in view.status_text


def test_detaches_from_the_model_on_close(view: SliceView) -> None:
    events = view.study_view.events
    assert events.cursor.callbacks
    view.close()
    assert not events.cursor.callbacks

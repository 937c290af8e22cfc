"""SliceView on an in-memory volume: painting, scrolling, clicking, window/level, zoom/pan,
interpolation."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the fixtures' types (conftest modules are not importable by name)
    from conftest import MarkerSeries

from collections.abc import Callable

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from workstation.core.volume import Volume
from workstation.dicom import load_series
from workstation.render import (
    ImageLayer,
    StudyView,
    ViewPlane,
    Window,
    auto_window,
    slice_index_of,
)
from workstation.render.viewport import FIT
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


# -- zoom and pan -------------------------------------------------------------------------------
def _wheel(view: SliceView, pos: QPointF, notches: float, modifiers: Qt.KeyboardModifier) -> None:
    event = QWheelEvent(
        pos,
        QPointF(view.mapToGlobal(pos.toPoint())),
        QPoint(0, 0),
        QPoint(0, round(120 * notches)),
        Qt.MouseButton.NoButton,
        modifiers,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(view, event)


def _lps_at(view: SliceView, point: QPointF) -> np.ndarray:
    cut = view.current_slice
    assert cut is not None
    return cut.pixel_to_lps(view.widget_to_pixel(point))


def test_ctrl_wheel_zooms_about_the_mouse(view: SliceView) -> None:
    point = QPointF(95.0, 210.0)
    before, rect = _lps_at(view, point), view.image_rect()
    index = view.slice_index()
    _wheel(view, point, 2, Qt.KeyboardModifier.ControlModifier)
    assert view.viewport.zoom == pytest.approx(1.25**2)
    assert view.image_rect().width() == pytest.approx(rect.width() * 1.25**2)
    assert _lps_at(view, point) == pytest.approx(before)  # the point under the mouse stays
    assert view.slice_index() == index  # zooming is not scrolling
    _wheel(view, point, -2, Qt.KeyboardModifier.ControlModifier)
    assert view.viewport.zoom == pytest.approx(1.0)
    _wheel(view, point, 1, Qt.KeyboardModifier.NoModifier)
    assert view.slice_index()[0] == index[0] + 1  # type: ignore[index]


def test_right_drag_up_zooms_in_about_the_press(view: SliceView, qtbot: QtBot) -> None:
    start = QPoint(120, 180)
    before = _lps_at(view, QPointF(start))
    window = view.study_view.base.window  # type: ignore[union-attr]
    qtbot.mousePress(view, Qt.MouseButton.RightButton, pos=start)
    qtbot.mouseMove(view, QPoint(120, 130))
    qtbot.mouseMove(view, QPoint(121, 80))
    qtbot.mouseRelease(view, Qt.MouseButton.RightButton, pos=QPoint(121, 80))
    assert view.viewport.zoom == pytest.approx(2.0)  # 100 px up doubles
    assert _lps_at(view, QPointF(start)) == pytest.approx(before)
    assert view.study_view.base.window == window  # type: ignore[union-attr]
    qtbot.mousePress(view, Qt.MouseButton.RightButton, pos=start)
    qtbot.mouseMove(view, QPoint(120, 280))
    qtbot.mouseRelease(view, Qt.MouseButton.RightButton, pos=QPoint(120, 280))
    assert view.viewport.zoom == pytest.approx(1.0)  # and down zooms out


@pytest.mark.parametrize(
    ("button", "modifier"),
    [
        (Qt.MouseButton.MiddleButton, Qt.KeyboardModifier.NoModifier),
        (Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier),
    ],
)
def test_middle_and_shift_left_drags_pan(
    view: SliceView, qtbot: QtBot, button: Qt.MouseButton, modifier: Qt.KeyboardModifier
) -> None:
    view.zoom_by(1.5)
    anchor = view.pixel_to_widget((6, 9))
    window, cursor = view.study_view.base.window, view.study_view.cursor_lps  # type: ignore[union-attr]
    qtbot.mousePress(view, button, modifier, QPoint(100, 100))
    qtbot.mouseMove(view, QPoint(120, 110))
    qtbot.mouseMove(view, QPoint(140, 130))
    qtbot.mouseRelease(view, button, modifier, QPoint(140, 130))
    moved = view.pixel_to_widget((6, 9))
    assert (moved.x() - anchor.x(), moved.y() - anchor.y()) == pytest.approx((40, 30))
    assert view.viewport.zoom == pytest.approx(1.5)
    assert view.study_view.base.window == window  # type: ignore[union-attr]  # not W/L
    assert view.study_view.cursor_lps == cursor  # not a click


def test_r_key_and_reset_view_fit_the_window(view: SliceView, qtbot: QtBot) -> None:
    fitted = view.image_rect()
    with qtbot.waitSignal(view.viewport_changed):
        view.zoom_by(3.0, about=QPointF(40, 40))
    view.pan_by(25, -10)
    assert view.image_rect() != fitted
    qtbot.keyClick(view, Qt.Key.Key_R)
    assert view.viewport == FIT and view.image_rect() == fitted
    view.zoom_by(2.0)
    view.reset_view()
    assert view.image_rect() == fitted


def test_status_and_clicks_follow_the_zoom(view: SliceView, qtbot: QtBot) -> None:
    view.zoom_by(2.5, about=QPointF(60, 250))
    view.pan_by(-30, 12)
    point = view.pixel_to_widget((10, 10))
    assert view.widget_to_pixel(point) == pytest.approx((10, 10))
    view._update_status(point)
    assert "value 500" in view.status_text and "LPS (10.0, 20.0," in view.status_text
    target = view.pixel_to_widget((11, 12))
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=target.toPoint())
    cut = view.current_slice
    assert cut is not None
    assert cut.lps_to_pixel(view.study_view.cursor_lps) == pytest.approx((11, 12), abs=0.1)


def test_a_new_image_starts_fitted(view: SliceView) -> None:
    view.zoom_by(4.0)
    view.study_view.clear()
    view.study_view.add(ImageLayer(_volume(), window=Window(250, 500)))
    assert view.current_slice is not None
    assert view.viewport == FIT


def test_marker_lands_where_pixel_to_widget_says_when_zoomed(
    qtbot: QtBot, marker_series: MarkerSeries, grab: Grab
) -> None:
    volume = load_series(marker_series.folder)
    marker = marker_series.marker_lps
    study = StudyView([ImageLayer(volume, window=auto_window(volume.array))], cursor_lps=marker)
    for plane in ViewPlane:
        view = SliceView(study, plane)
        qtbot.addWidget(view)
        view.resize(400, 300)
        view.show()
        qtbot.waitExposed(view)
        cut = view.current_slice
        assert cut is not None
        near = view.pixel_to_widget(np.add(cut.lps_to_pixel(marker), (2.0, -3.0)))
        view.zoom_by(2.5, about=near)
        view.pan_by(-15, 10)
        grey = grab(view)[..., :3].astype(int).min(axis=2)  # overlays are coloured
        bright = np.argwhere(grey >= grey.max() - 10)
        assert grey.max() >= 250 and len(bright) > 9 * 2.5**2, plane
        y, x = bright.mean(axis=0) + 0.5  # pixel centres
        expected = view.pixel_to_widget(cut.lps_to_pixel(marker))
        assert abs(x - expected.x()) <= 2, (plane, x, expected.x())
        assert abs(y - expected.y()) <= 2, (plane, y, expected.y())


# -- interpolation ------------------------------------------------------------------------------
def _edge_column(view: SliceView, grab: Grab) -> np.ndarray:
    """Greys down the widget's middle column across the block's top edge, zoomed 8x."""
    cut = view.current_slice
    assert cut is not None
    view.study_view.cursor_lps = cut.pixel_to_lps((17, 2))  # the crosshair out of the way
    edge = view.pixel_to_widget((4.5, 15))  # between row 4 (0) and row 5 (500)
    view.zoom_by(8.0, about=edge)
    view.pan_by(150 - edge.x(), 150 - edge.y())
    grey = grab(view)[40:260, 150, :3].astype(int)  # pixel centres at 90 and 210
    # Grey, no overlay here (within the 16-bit colour depth pytest-xvfb's display may have).
    assert (grey.max(axis=1) - grey.min(axis=1)).max() <= 8
    return grey[:, 0]


def test_smooth_off_shows_hard_edged_pixels(view: SliceView, qtbot: QtBot, grab: Grab) -> None:
    with qtbot.waitSignal(view.smooth_changed, check_params_cb=lambda on: on is False):
        qtbot.keyClick(view, Qt.Key.Key_I)
    assert view.smooth is False
    column = _edge_column(view, grab)
    assert set(column.tolist()) == {0, 255}
    assert column[0] == 0 and column[-1] == 255


def test_smooth_on_interpolates(view: SliceView, grab: Grab) -> None:
    assert view.smooth is True
    column = _edge_column(view, grab)
    assert column[0] < 10 and column[-1] > 245
    assert ((column > 20) & (column < 235)).sum() >= 10  # a ramp, not a step

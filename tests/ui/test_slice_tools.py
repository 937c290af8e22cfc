"""The SliceView's tools: the measure tool (rulers) and its keys, shared between views."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from pytestqt.qtbot import QtBot

from workstation.core.volume import Volume
from workstation.render import ImageLayer, StudyView, ViewPlane, Window
from workstation.render.measure import Measurements, Ruler
from workstation.ui.slice_view import SliceView

Grab = Callable[..., np.ndarray]
SIZE = 300
# i: 1 mm (x, L), j: 2 mm (y, P), k: 3 mm (z, S): every view has anisotropic pixels.
SPACING = (1.0, 2.0, 3.0)
SHAPE = (10, 20, 30)  # k, j, i
# Physical (width, height) in mm of each view: (x, y) axial, (x, z) coronal, (y, z) sagittal.
EXTENT = {
    ViewPlane.AXIAL: (30 * 1.0, 20 * 2.0),
    ViewPlane.CORONAL: (30 * 1.0, 10 * 3.0),
    ViewPlane.SAGITTAL: (20 * 2.0, 10 * 3.0),
}


def _study() -> StudyView:
    array = np.zeros(SHAPE, dtype=np.int16)
    array[:, 5:15, 5:25] = 500
    volume = Volume(array=array, spacing=SPACING, origin=(0.0, 0.0, 0.0))
    return StudyView([ImageLayer(volume, window=Window(250, 500))])


def _show(qtbot: QtBot, study: StudyView, plane: ViewPlane) -> SliceView:
    widget = SliceView(study, plane)
    qtbot.addWidget(widget)
    widget.resize(SIZE, SIZE)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


@pytest.fixture
def view(qtbot: QtBot) -> SliceView:
    return _show(qtbot, _study(), ViewPlane.AXIAL)


def _drag(qtbot: QtBot, view: SliceView, start: QPoint, end: QPoint) -> None:
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=start)
    middle = (start + end) / 2
    qtbot.mouseMove(view, middle)
    qtbot.mouseMove(view, end)
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=end)


def _is_yellow(grab: Grab, view: SliceView, point: QPointF, radius: int = 2) -> bool:
    image = grab(view).astype(int)
    x, y = round(point.x()), round(point.y())
    patch = image[y - radius : y + radius + 1, x - radius : x + radius + 1, :3]
    r, g, b = patch[..., 0], patch[..., 1], patch[..., 2]
    return bool(((r > 150) & (g > 120) & (b < 60)).any())  # yellow, antialiased


def test_m_key_toggles_the_tool(view: SliceView, qtbot: QtBot) -> None:
    assert view.tool == "window"
    with qtbot.waitSignal(view.tool_changed, check_params_cb=lambda name: name == "measure"):
        qtbot.keyClick(view, Qt.Key.Key_M)
    assert view.tool == "measure"
    qtbot.keyClick(view, Qt.Key.Key_M)
    assert view.tool == "window"
    with pytest.raises(ValueError, match="unknown tool"):
        view.tool = "scissors"  # type: ignore[assignment]


@pytest.mark.parametrize("plane", list(ViewPlane))
@pytest.mark.parametrize("zoom", [1.0, 2.0])
def test_ruler_length_is_true_on_anisotropic_pixels(
    qtbot: QtBot, plane: ViewPlane, zoom: float
) -> None:
    view = _show(qtbot, _study(), plane)
    view.tool = "measure"
    view.zoom_by(zoom)
    window = view.study_view.base.window  # type: ignore[union-attr]
    start, end = QPoint(70, 90), QPoint(230, 170)
    with qtbot.waitSignal(view.measurement_added) as added:
        _drag(qtbot, view, start, end)
    ruler = added.args[0]
    assert isinstance(ruler, Ruler)
    assert view.measurements.rulers == (ruler,)
    # The truth from the widget geometry alone: fit to window, then the zoom, in px per mm.
    width_mm, height_mm = EXTENT[plane]
    px_per_mm = min(SIZE / width_mm, SIZE / height_mm) * zoom
    truth = math.hypot(end.x() - start.x(), end.y() - start.y()) / px_per_mm
    assert ruler.length_mm == pytest.approx(truth, rel=1e-9)
    assert ruler.label == f"{truth:.1f} mm"
    cut = view.current_slice
    assert cut is not None
    assert cut.distance([ruler.start, ruler.end]) == pytest.approx(0, abs=1e-9)  # on the slice
    assert view.visible_measurements() == [ruler]
    assert view.study_view.base.window == window  # type: ignore[union-attr]  # not W/L


def test_a_click_with_the_measure_tool_adds_nothing(view: SliceView, qtbot: QtBot) -> None:
    view.tool = "measure"
    cursor = view.study_view.cursor_lps
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=QPoint(150, 150))
    assert len(view.measurements) == 0
    assert view.study_view.cursor_lps == cursor


def test_ruler_is_drawn_and_follows_its_slice(view: SliceView, qtbot: QtBot, grab: Grab) -> None:
    view.tool = "measure"
    _drag(qtbot, view, QPoint(60, 250), QPoint(220, 250))
    (ruler,) = view.measurements.rulers
    middle = QPointF(140, 250)
    assert _is_yellow(grab, view, middle)
    view.scroll_slices(1)
    assert view.visible_measurements() == []
    assert not _is_yellow(grab, view, middle)  # gone on the next slice
    qtbot.keyClick(view, Qt.Key.Key_Down)
    assert view.visible_measurements() == [ruler]
    assert _is_yellow(grab, view, middle)  # and back on its own
    view.zoom_by(1.5, about=middle)
    assert _is_yellow(grab, view, middle)  # zooming moves it with the image


def test_ruler_shows_in_every_view_that_holds_it(qtbot: QtBot, grab: Grab) -> None:
    study = _study()
    axial = _show(qtbot, study, ViewPlane.AXIAL)
    coronal = _show(qtbot, study, ViewPlane.CORONAL)
    assert axial.measurements is coronal.measurements
    cut = axial.current_slice
    assert cut is not None
    # Along one row of the axial slice through the cursor: it lies in the coronal plane too.
    row = float(cut.lps_to_pixel(study.cursor_lps)[0])  # type: ignore[arg-type]
    axial.tool = "measure"
    _drag(qtbot, axial, axial.pixel_to_widget((row, 4)).toPoint(), QPoint(200, 0))
    assert len(axial.measurements) == 1 and coronal.visible_measurements() == []  # slanted
    axial.measurements.clear()
    start, end = axial.pixel_to_widget((row, 4)), axial.pixel_to_widget((row, 22))
    _drag(qtbot, axial, start.toPoint(), end.toPoint())
    (ruler,) = axial.measurements.rulers
    assert coronal.visible_measurements() == [ruler]
    coronal_cut = coronal.current_slice
    assert coronal_cut is not None
    a, b = (coronal.pixel_to_widget(coronal_cut.lps_to_pixel(p)) for p in (ruler.start, ruler.end))
    assert _is_yellow(grab, coronal, (a + b) / 2)
    coronal.clear_measurements()
    assert axial.visible_measurements() == []
    assert not _is_yellow(grab, axial, (start + end) / 2)


def test_delete_and_backspace_remove_the_last_ruler_shown(view: SliceView, qtbot: QtBot) -> None:
    view.tool = "measure"
    _drag(qtbot, view, QPoint(60, 60), QPoint(120, 90))
    first = view.measurements.rulers[0]
    view.scroll_slices(2)
    _drag(qtbot, view, QPoint(60, 60), QPoint(120, 90))
    _drag(qtbot, view, QPoint(60, 160), QPoint(220, 190))
    _, second, _third = view.measurements.rulers
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    assert view.measurements.rulers == (first, second)
    view.scroll_slices(-2)
    qtbot.keyClick(view, Qt.Key.Key_Backspace)  # the last one on this slice: the first
    assert view.measurements.rulers == (second,)
    qtbot.keyClick(view, Qt.Key.Key_Delete)  # nothing shown here: nothing removed
    assert view.measurements.rulers == (second,)
    assert view.remove_last_measurement() is None


def test_views_can_share_an_injected_list(qtbot: QtBot) -> None:
    shared = Measurements()
    a = SliceView(StudyView(), ViewPlane.AXIAL, measurements=shared)
    b = SliceView(StudyView(), ViewPlane.AXIAL, measurements=shared)
    qtbot.addWidget(a)
    qtbot.addWidget(b)
    assert a.measurements is b.measurements is shared
    a.close()
    assert b._measurements_changed in shared.events.changed.callbacks
    assert a._measurements_changed not in shared.events.changed.callbacks


@pytest.mark.parametrize("tool", ["window", "measure"])
def test_the_image_going_away_mid_drag_ends_the_drag(
    view: SliceView, qtbot: QtBot, tool: str
) -> None:
    view.tool = tool  # type: ignore[assignment]
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=QPoint(60, 60))
    qtbot.mouseMove(view, QPoint(100, 90))
    view.study_view.clear()
    qtbot.mouseMove(view, QPoint(140, 120))
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=QPoint(140, 120))
    assert view.tools.dragging is None and view.tools.draft is None
    assert len(view.measurements) == 0


def test_the_ruler_shows_while_it_is_drawn(view: SliceView, qtbot: QtBot, grab: Grab) -> None:
    view.tool = "measure"
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=QPoint(60, 250))
    qtbot.mouseMove(view, QPoint(140, 250))
    qtbot.mouseMove(view, QPoint(220, 250))
    assert view.tools.dragging is not None and view.tools.draft is not None
    assert len(view.measurements) == 0  # not yet
    assert _is_yellow(grab, view, QPointF(140, 250))
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=QPoint(220, 250))
    assert view.tools.draft is None and len(view.measurements) == 1

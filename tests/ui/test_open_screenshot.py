"""The main window end to end: progressive loading, geometry on screen, CLI screenshots."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage
from pytestqt.qtbot import QtBot

from workstation.cli import main
from workstation.render import ViewPlane, slice_index_of
from workstation.ui.main_window import MainWindow
from workstation.ui.tasks import TaskRunner

Grab = Callable[..., np.ndarray]
LOAD_MS = 30_000


def _load(window: MainWindow, qtbot: QtBot, folder: Path) -> None:
    with qtbot.waitSignal(window.loaded, timeout=LOAD_MS):
        window.load(str(folder))


def test_bright_marker_is_drawn_where_the_geometry_says(
    window: MainWindow, qtbot: QtBot, marker_series: object, grab: Grab
) -> None:
    _load(window, qtbot, marker_series.folder)  # type: ignore[attr-defined]
    marker = marker_series.marker_lps  # type: ignore[attr-defined]
    window.study_view.cursor_lps = marker
    assert [view.plane for view in window.views] == [
        ViewPlane.AXIAL,
        ViewPlane.CORONAL,
        ViewPlane.SAGITTAL,
    ]
    for view in window.views:
        image = grab(view).astype(int)
        grey = image[..., :3].min(axis=2)  # overlays are coloured; the image is grey
        assert grey.max() >= 250, view.plane
        assert (grey > 0).mean() < 0.5, view.plane  # a marker, not a blank white view
        bright = np.argwhere(grey >= grey.max() - 10)
        y, x = bright.mean(axis=0) + 0.5  # pixel centres
        cut = view.current_slice
        assert cut is not None
        expected = view.pixel_to_widget(cut.lps_to_pixel(marker))
        assert abs(x - expected.x()) <= 2, (view.plane, x, expected.x())
        assert abs(y - expected.y()) <= 2, (view.plane, y, expected.y())


def test_views_follow_scrolling_and_clicks(
    window: MainWindow, qtbot: QtBot, marker_series: object
) -> None:
    _load(window, qtbot, marker_series.folder)  # type: ignore[attr-defined]
    axial, coronal, sagittal = window.views
    volume = window.study_view.base.volume  # type: ignore[union-attr]
    index, count = axial.slice_index()  # type: ignore[misc]
    axial.scroll_slices(-3)
    qtbot.keyClick(axial, Qt.Key.Key_Up)
    assert axial.slice_index() == (index - 2, count)
    assert coronal.slice_index()[1] == 40  # type: ignore[index]  # the others keep their slices
    # A click in the axial view moves the crosshair: the coronal and sagittal slices follow.
    target = axial.pixel_to_widget((5, 9))
    qtbot.mouseClick(axial, Qt.MouseButton.LeftButton, pos=target.toPoint())
    cursor = window.study_view.cursor_lps
    cut = axial.current_slice
    assert cut is not None and np.allclose(cut.lps_to_pixel(cursor), (5, 9), atol=0.2)
    assert coronal.slice_index()[0] == slice_index_of(volume, ViewPlane.CORONAL, cursor)  # type: ignore[index]
    assert coronal.slice_index()[0] == 5  # type: ignore[index]  # row 5 = the 6th j (A→P)
    assert sagittal.slice_index()[0] == slice_index_of(volume, ViewPlane.SAGITTAL, cursor)  # type: ignore[index]
    assert sagittal.current_slice is not None
    assert abs(sagittal.current_slice.distance(cursor)) < 0.4  # within half a voxel (0.8 mm)


def test_presets_follow_the_model(window: MainWindow, qtbot: QtBot, marker_series: object) -> None:
    _load(window, qtbot, marker_series.folder)  # type: ignore[attr-defined]
    assert window.presets.isEnabled() and window.presets.count() >= 2
    base = window.study_view.base
    base.window = (5, 3)  # type: ignore[union-attr]
    assert window.presets.currentText() == "custom"
    window.presets.setCurrentIndex(0)
    assert base.window == window._preset_windows[0]  # type: ignore[union-attr]


def test_a_folder_without_series_is_reported(
    window: MainWindow, qtbot: QtBot, tmp_path: Path
) -> None:
    with qtbot.waitSignal(window.load_failed, timeout=LOAD_MS) as failed:
        window.load(str(tmp_path))
    assert failed.args and failed.args[0]
    assert window.problems_dock.isVisible() and window.problems.count() == 1
    assert not window.loading


def test_loading_can_be_cancelled(
    window: MainWindow, qtbot: QtBot, marker_series: object, grab: Grab
) -> None:
    # Cancel on the first partial result: the outcome arrives after it, so it must be
    # reported as cancelled whether or not the worker got to finish meanwhile.
    window.runner.partial.connect(lambda _update: window.cancel_loading())
    with qtbot.waitSignal(window.load_cancelled, timeout=LOAD_MS):
        window.load(str(marker_series.folder))  # type: ignore[attr-defined]
    assert not window.loading and not window.cancel_button.isVisible()
    window.runner.partial.disconnect()
    window.runner.partial.connect(window._on_partial)
    _load(window, qtbot, marker_series.folder)  # type: ignore[attr-defined]  # still works
    assert grab(window.views[0]).shape[0] > 0


def test_latest_task_wins(qtbot: QtBot) -> None:
    runner = TaskRunner()
    release = threading.Event()
    results: list[object] = []
    runner.finished.connect(results.append)

    def slow(*, progress: object, cancel: object) -> str:
        release.wait(5)
        return "first"

    def fast(*, progress: object, cancel: object) -> str:
        return "second"

    first = runner.start(slow)
    with qtbot.waitSignal(runner.finished, timeout=5000):
        runner.start(fast)
    assert first.cancelled
    release.set()
    assert runner.shutdown()
    qtbot.wait(50)
    assert results == ["second"]


def test_worker_errors_are_reported_not_raised(qtbot: QtBot) -> None:
    runner = TaskRunner()

    def broken(*, progress: object, cancel: object) -> None:
        raise RuntimeError("boom")

    with qtbot.waitSignal(runner.failed, timeout=5000) as failed:
        runner.start(broken)
    message, details = failed.args
    assert "boom" in message and "RuntimeError" in details
    assert runner.shutdown()


# -- the command line ---------------------------------------------------------------------------
def test_open_screenshot_writes_a_png(
    qtbot: QtBot, write_marker: Callable[..., object], tmp_path: Path
) -> None:
    png = tmp_path / "out.png"
    # At the volume's centre, where the views start: (47/2, 39/2, 15/2) rounds to (24, 20, 8).
    folder = str(write_marker((24, 20, 8), name="centred").folder)  # type: ignore[attr-defined]
    assert main(["open", folder, "--screenshot", str(png), "--layout", "1x3"]) == 0
    image = QImage(str(png)).convertToFormat(QImage.Format.Format_RGBA8888)
    assert not image.isNull() and image.width() > 600
    pixels = np.frombuffer(image.constBits(), np.uint8, image.sizeInBytes())
    rgba = pixels.reshape(image.height(), image.bytesPerLine())[:, : image.width() * 4]
    grey = rgba.reshape(image.height(), image.width(), 4)[..., :3].min(axis=2)
    views = grey[80:-80]  # between the toolbar and the status bar
    assert (views >= 250).sum() >= 3 * 9  # the marker, in each of the three views
    assert (views < 40).mean() > 0.5  # on the black background of the views


def test_open_without_series_fails_with_the_message(
    qtbot: QtBot, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "out.png"
    (tmp_path / "empty").mkdir()
    assert main(["open", str(tmp_path / "empty"), "--screenshot", str(png)]) == 1
    assert "error:" in capsys.readouterr().err
    assert not png.exists()


def test_2x2_without_an_opengl_display_still_shows_the_2d_views(
    write_marker: Callable[..., object], tmp_path: Path
) -> None:
    """Qt's offscreen platform has no OpenGL window: the 3D cell says so, the rest works."""
    png = tmp_path / "out.png"
    folder = str(write_marker((24, 20, 8), name="centred").folder)  # type: ignore[attr-defined]
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    command = [sys.executable, "-m", "workstation", "open", folder, "--screenshot", str(png)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    image = QImage(str(png))
    assert not image.isNull() and image.width() >= 1200


def test_open_with_a_plugin_panel_waits_for_it(
    qtbot: QtBot,
    write_marker: Callable[..., object],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``--plugin-panel`` opens the panel once plugins are verified, before the screenshot."""
    from workstation.plugins.developer import DeveloperMode

    home = tmp_path / "home"
    monkeypatch.setenv("WORKSTATION_HOME", str(home))
    mode = DeveloperMode.load(home)
    mode.add(Path(__file__).resolve().parents[2] / "plugins" / "measure_example")
    mode.enabled = True
    mode.save()
    folder = str(write_marker((24, 20, 8), name="centred").folder)  # type: ignore[attr-defined]
    png = tmp_path / "out.png"
    args = ["open", folder, "--layout", "1x1", "--screenshot", str(png)]
    assert main([*args, "--plugin-panel", "mw-measure-example/roi"]) == 0
    assert png.is_file()

"""UI test fixtures: a display for the 3D view, and a synthetic series with one bright marker.

The Qt platform is chosen in ``tests/conftest.py`` (``xcb`` under the Xvfb that pytest-xvfb
starts, else ``offscreen``). The 3D view (a VTK OpenGL widget) needs ``xcb``: its tests take
the :func:`display` fixture, which skips without one, unless ``MEDWS_REQUIRE_DISPLAY=1`` (set
by ``.ci/run``) turns the missing display into a failure.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("PySide6.QtWidgets")

from collections.abc import Callable

from PySide6.QtGui import QImage
from PySide6.QtWidgets import QWidget


@pytest.fixture(autouse=True)
def _private_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: Any) -> None:
    """Every UI test gets its own workstation home (recent studies, settings, cache)."""
    monkeypatch.setenv("WORKSTATION_HOME", str(tmp_path_factory.mktemp("home")))


@pytest.fixture
def display() -> None:
    """Skip (or fail, under ``MEDWS_REQUIRE_DISPLAY=1``) unless Qt runs on a display (xcb)."""
    if os.environ.get("QT_QPA_PLATFORM") == "xcb":
        return
    message = "the 3D view needs a display: install Xvfb (pytest-xvfb starts it)"
    if os.environ.get("MEDWS_REQUIRE_DISPLAY") == "1":
        pytest.fail(message)
    pytest.skip(message)


SPACING = (0.8, 0.9, 2.5)
ORIGIN = (-12.5, 30.0, 7.25)
SHAPE = (16, 40, 48)  # k, j, i
MARKER_IJK = (30, 14, 6)  # centre of the bright 3×3×3 cube (i, j, k): off-centre on purpose


@dataclass
class MarkerSeries:
    """A series of zeros with a bright cube centred on ``marker_lps``."""

    folder: Path
    marker_lps: np.ndarray


@pytest.fixture
def write_marker(make_series: Callable[..., Any]) -> Callable[..., MarkerSeries]:
    """Factory: a series of zeros with a bright 3×3×3 cube centred on voxel ``(i, j, k)``."""

    def write(ijk: tuple[int, int, int] = MARKER_IJK, name: str = "marker") -> MarkerSeries:
        stored = np.zeros(SHAPE, dtype=np.uint16)
        i, j, k = ijk
        stored[k - 1 : k + 2, j - 1 : j + 2, i - 1 : i + 2] = 1000
        stored[0, 0, 0] = 1  # a little background so the auto window is not degenerate
        written = make_series(name, stored=stored, spacing=SPACING, origin=ORIGIN)
        lps = np.asarray(ORIGIN) + np.asarray(ijk, dtype=float) * np.asarray(SPACING)
        return MarkerSeries(written.folder, lps)

    return write


@pytest.fixture
def marker_series(write_marker: Callable[..., MarkerSeries]) -> MarkerSeries:
    """The marker off the volume's centre (so the views must move to show it)."""
    return write_marker()


def grab_array(widget: QWidget) -> np.ndarray:
    """``(H, W, 4)`` RGBA ``uint8`` of the widget as it paints (device pixels)."""
    image = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGBA8888)
    height, width = image.height(), image.width()
    buffer = np.frombuffer(image.constBits(), dtype=np.uint8, count=image.sizeInBytes())
    rows = buffer.reshape(height, image.bytesPerLine())[:, : width * 4]
    return rows.reshape(height, width, 4).copy()


@pytest.fixture
def grab() -> Callable[[QWidget], np.ndarray]:
    """:func:`grab_array`, for tests."""
    return grab_array


@pytest.fixture
def window(qtbot: Any) -> Any:
    """The main window in the 1×3 layout, shown and exposed."""
    from workstation.ui.main_window import MainWindow

    widget = MainWindow(layout="1x3")
    qtbot.addWidget(widget)
    widget.resize(1200, 500)
    widget.show()
    qtbot.waitExposed(widget)
    return widget

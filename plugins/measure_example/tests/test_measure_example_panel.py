"""The ROI panel with a fake PanelContext (pytest-qt's ``qtbot`` drives the widget)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from workstation.core.volume import Volume
from workstation.plugins.api import Panel

from mw_measure_example.panel import RoiPanel
from mw_measure_example.stats import CSV_HEADER


class FakeContext:
    """Just enough of ``PanelContext``: tasks run at once, overlays and messages are recorded."""

    plugin_name = "mw-measure-example"

    def __init__(self, volume, cursor, tmp_path: Path):
        self.volume = volume
        self.cursor = cursor
        self.overlays = {}
        self.messages = []
        self._dir = tmp_path

    def current_volume(self):
        return self.volume

    def cursor_lps(self):
        return self.cursor

    def series(self):
        return []

    def load_series(self, key, *, progress=None, cancel=None):
        raise KeyError(key)

    def show_overlay(self, name, volume, **options):
        self.overlays[name] = (volume, options)

    def run_task(self, function, *, on_done, on_failed=None, title=""):
        try:
            result = function(progress=lambda *args: None, cancel=None)
        except Exception as error:  # report like the real context does
            if on_failed is not None:
                on_failed(str(error))
            return lambda: None
        on_done(result)
        return lambda: None

    def status(self, text):
        self.messages.append(text)

    def data_dir(self):
        return self._dir


@pytest.fixture
def volume():
    # Value 100 everywhere, 1 × 1 × 2 mm voxels; LPS origin at voxel 0.
    return Volume(np.full((10, 20, 20), 100, np.int16), spacing=(1.0, 1.0, 2.0))


def test_measure_and_copy(qtbot, volume, tmp_path):
    context = FakeContext(volume, (10.0, 10.0, 10.0), tmp_path)
    panel = RoiPanel()
    assert isinstance(panel, Panel) and panel.title == "ROI statistics"
    widget = panel.create(context)
    qtbot.addWidget(widget)

    widget.radius.setValue(2.0)
    qtbot.mouseClick(widget.measure_button, Qt.MouseButton.LeftButton)

    # r = 2 mm at voxel (10, 10, 5): slice k=5 holds the 13 in-plane points with x²+y² ≤ 4,
    # slices k=4 and 6 (dz = ±2 mm) one point each.
    assert widget.fields["voxels"].text() == "15"
    assert widget.fields["mean"].text() == "100"
    assert widget.fields["sd"].text() == "0"
    assert float(widget.fields["volume_ml"].text()) == pytest.approx(15 * 2 / 1000)
    mask_volume, options = context.overlays["ROI sphere"]
    assert options["kind"] == "labels" and int(mask_volume.array.sum()) == 15

    assert widget.copy_button.isEnabled()
    qtbot.mouseClick(widget.copy_button, Qt.MouseButton.LeftButton)
    header, row = QApplication.clipboard().text().splitlines()
    assert header.split(",") == list(CSV_HEADER)
    assert row.split(",")[4] == "15"
    assert context.messages


def test_without_volume_or_cursor(qtbot, tmp_path):
    context = FakeContext(None, None, tmp_path)
    widget = RoiPanel().create(context)
    qtbot.addWidget(widget)
    widget.measure()
    assert "first" in widget.message.text()
    assert not widget.copy_button.isEnabled()
    assert context.overlays == {}


def test_sphere_outside_the_image(qtbot, volume, tmp_path):
    context = FakeContext(volume, (500.0, 500.0, 500.0), tmp_path)
    widget = RoiPanel().create(context)
    qtbot.addWidget(widget)
    widget.show_sphere.setChecked(False)
    widget.measure()
    assert widget.fields["voxels"].text() == "0"
    assert widget.fields["mean"].text() == "–"
    assert "outside" in widget.message.text()
    assert context.overlays == {}

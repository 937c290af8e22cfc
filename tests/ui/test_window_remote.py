"""The main window streams a series from a real Orthanc given a DICOMweb URL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pydicom
import pytest
from orthanc import Orthanc, installed_or_skip
from pytestqt.qtbot import QtBot

from workstation.dicom import load_series
from workstation.ui.main_window import MainWindow
from workstation.workflow.recent import RecentStudies


@pytest.fixture(scope="module")
def orthanc() -> Iterator[Orthanc]:
    with Orthanc(installed_or_skip()) as server:
        yield server


def test_open_a_series_url_streams_it_into_the_views(
    window: MainWindow, qtbot: QtBot, orthanc: Orthanc, marker_series: Any
) -> None:
    files = sorted(marker_series.folder.rglob("*.dcm"))
    orthanc.upload(files)
    header = pydicom.dcmread(files[0], stop_before_pixels=True)
    url = f"{orthanc.dicomweb_url}/studies/{header.StudyInstanceUID}"
    shown = url.replace("http://", "http://alice:secret@")  # credentials never stay on disk
    with qtbot.waitSignal(window.loaded, timeout=60_000) as loaded:
        window.open(shown)
    np.testing.assert_array_equal(loaded.args[0].array, load_series(marker_series.folder).array)
    window.study_view.cursor_lps = marker_series.marker_lps
    assert window.views[0].current_slice is not None
    assert window.views[0].current_slice.image.max() >= 1000
    assert "secret" not in window.status_label.text()
    recent = RecentStudies(window.actions_.recent.path).entries()
    assert [entry.source for entry in recent] == [url]


def test_file_open_from_pacs_loads_the_chosen_series(
    window: MainWindow, qtbot: QtBot, orthanc: Orthanc, write_marker: Any
) -> None:
    marker = write_marker((20, 16, 7), name="pacs-marker")
    files = sorted(marker.folder.rglob("*.dcm"))
    orthanc.upload(files)
    header = pydicom.dcmread(files[0], stop_before_pixels=True)
    window.actions_.open_pacs()
    dialog = window.actions_.pacs_dialog
    assert dialog is not None and dialog.isVisible()
    form = dialog.server_form
    form.choose_new()
    form.url.setText(orthanc.dicomweb_url)
    with qtbot.waitSignal(dialog.search_finished, timeout=30_000):
        dialog.search_button.click()
    study = str(header.StudyInstanceUID)
    item = dialog.results.study_item(study)
    assert item is not None
    with qtbot.waitSignal(dialog.series_listed, timeout=30_000):
        item.setExpanded(True)
    dialog.results.setCurrentItem(dialog.results.series_items(study)[0])
    with qtbot.waitSignal(window.loaded, timeout=60_000) as loaded:
        dialog.open_button.click()
    np.testing.assert_array_equal(loaded.args[0].array, load_series(marker.folder).array)


def test_workstation_open_url_screenshot(
    qtbot: QtBot, orthanc: Orthanc, write_marker: Any, tmp_path: Any
) -> None:
    from PySide6.QtGui import QImage

    from workstation.cli import main

    marker = write_marker((24, 20, 8), name="cli-marker")
    files = sorted(marker.folder.rglob("*.dcm"))
    orthanc.upload(files)
    header = pydicom.dcmread(files[0], stop_before_pixels=True)
    url = f"{orthanc.dicomweb_url}/studies/{header.StudyInstanceUID}"
    png = tmp_path / "remote.png"
    assert main(["open", url, "--layout", "1x3", "--screenshot", str(png)]) == 0
    image = QImage(str(png))
    assert not image.isNull() and image.width() >= 1200


def test_workstation_open_unreachable_url_fails_with_a_message(
    qtbot: QtBot, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from workstation.cli import main

    png = tmp_path / "none.png"
    url = "http://127.0.0.1:9/dicom-web/studies/1.2.3"
    assert main(["open", url, "--layout", "1x3", "--screenshot", str(png)]) == 1
    assert "error:" in capsys.readouterr().err and not png.exists()

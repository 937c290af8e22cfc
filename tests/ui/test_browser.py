"""The study browser: the scanned tree, loading a series from it, drag and drop, problems."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QTreeWidgetItem
from pytestqt.qtbot import QtBot

from workstation.ui.main_window import MainWindow

LOAD_MS = 30_000


@pytest.fixture
def two_series(make_series, tmp_path: Path) -> Path:
    folder = tmp_path / "study"
    first = make_series(folder=folder, series_number=1, file_pattern="A{index:03d}.dcm")
    make_series(
        folder=folder,
        series_number=2,
        seed=1,
        slices=7,
        rows=24,
        columns=20,
        file_pattern="B{index:03d}.dcm",
        study_uid=pydicom.dcmread(first.paths[0]).StudyInstanceUID,
    )
    (folder / "junk.txt").write_text("not a DICOM file")
    return folder


def _top(window: MainWindow) -> list[QTreeWidgetItem]:
    tree = window.browser.tree
    return [tree.topLevelItem(i) for i in range(tree.topLevelItemCount())]


def test_tree_shows_patient_study_series_and_unused_files(
    window: MainWindow, qtbot: QtBot, two_series: Path
) -> None:
    with qtbot.waitSignal(window.browser.scanned, timeout=LOAD_MS):
        window.browser.scan(two_series)
    patient, unused = _top(window)
    assert patient.childCount() == 1  # one study
    study = patient.child(0)
    assert "2026-01-01" in study.text(0)
    assert study.childCount() == 2
    assert [study.child(i).text(2) for i in range(2)] == ["12", "7"]
    assert study.child(1).text(3) == "20×24"
    assert study.child(0).text(4) and study.child(0).text(1)
    assert unused.text(0) == "Files not used: 1"
    assert unused.childCount() == 1 and "junk.txt" in unused.child(0).toolTip(0)


def test_double_click_loads_the_series(window: MainWindow, qtbot: QtBot, two_series: Path) -> None:
    with qtbot.waitSignal(window.browser.scanned, timeout=LOAD_MS):
        window.browser.scan(two_series)
    second = window.browser.series_items()[1]
    tree = window.browser.tree
    tree.scrollToItem(second)
    rect = tree.visualItemRect(second)
    name = QPoint(rect.left() + 20, rect.center().y())  # on the visible part of the name
    qtbot.mouseClick(tree.viewport(), Qt.MouseButton.LeftButton, pos=name)
    with qtbot.waitSignal(window.loaded, timeout=LOAD_MS) as blocker:
        qtbot.mouseDClick(tree.viewport(), Qt.MouseButton.LeftButton, pos=name)
    assert blocker.args[0].array.shape == (7, 24, 20)
    assert window.study_view.base.volume.array.shape == (7, 24, 20)  # type: ignore[union-attr]


def test_enter_loads_the_current_series(window: MainWindow, qtbot: QtBot, two_series: Path) -> None:
    with qtbot.waitSignal(window.browser.scanned, timeout=LOAD_MS):
        window.browser.scan(two_series)
    window.browser.tree.setCurrentItem(window.browser.series_items()[0])
    with qtbot.waitSignal(window.loaded, timeout=LOAD_MS) as blocker:
        qtbot.keyClick(window.browser.tree, Qt.Key.Key_Return)
    assert blocker.args[0].array.shape == (12, 32, 32)


def test_dropping_a_folder_scans_and_loads(
    window: MainWindow, qtbot: QtBot, two_series: Path
) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(two_series))])
    event = QDropEvent(
        QPointF(600, 250),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    with qtbot.waitSignal(window.loaded, timeout=LOAD_MS) as blocker:
        window.dropEvent(event)  # QMainWindow's own event() keeps synthetic drops for its docks
    assert event.isAccepted()
    assert blocker.args[0].array.shape == (12, 32, 32)  # the first loadable series
    assert len(window.browser.series_items()) == 2
    assert not window.loading


def test_non_loadable_series_shows_its_problem(
    window: MainWindow, qtbot: QtBot, repeated_positions_folder: Path
) -> None:
    folder = repeated_positions_folder
    with qtbot.waitSignal(window.browser.scanned, timeout=LOAD_MS):
        window.browser.scan(folder)
    [item] = window.browser.series_items()
    assert "positions repeat" in item.toolTip(0)
    window.browser.tree.setCurrentItem(item)
    assert window.problems_dock.isVisible()
    assert "positions repeat" in window.problems.item(window.problems.count() - 1).text()


def test_opening_a_folder_without_loadable_series_fails(
    window: MainWindow, qtbot: QtBot, tmp_path: Path
) -> None:
    (tmp_path / "empty").mkdir()
    with qtbot.waitSignal(window.load_failed, timeout=LOAD_MS):
        window.open(str(tmp_path / "empty"))
    assert not window.loading and window.problems.count() == 1

"""The study browser: the scanned tree, loading a series from it, drag and drop, problems,
series thumbnails."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate, generate_frames
from PySide6.QtCore import QMimeData, QPoint, QPointF, QSize, Qt, QUrl
from PySide6.QtGui import QDropEvent, QIcon, QImage
from PySide6.QtWidgets import QTreeWidgetItem
from pytestqt.qtbot import QtBot

from workstation.ui.browser import THUMBNAIL_SIZE, StudyBrowser, placeholder_pixmap
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


# -- thumbnails ---------------------------------------------------------------------------------
SLICES, ROWS, COLUMNS = 5, 40, 30
RLE = "1.2.840.10008.1.2.5"


@pytest.fixture(autouse=True)
def _quiet_pydicom() -> Iterator[None]:
    # pydicom logs every decoder that fails on a corrupt file, with a traceback.
    logger = logging.getLogger("pydicom")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


@pytest.fixture
def browser(qtbot: QtBot) -> Iterator[StudyBrowser]:
    widget = StudyBrowser()
    qtbot.addWidget(widget)
    widget.resize(500, 400)
    widget.show()
    qtbot.waitExposed(widget)
    yield widget
    widget.shutdown()


def middle_bright_left() -> np.ndarray:
    """Noise; the middle slice has its left half bright, every other slice its right half."""
    rng = np.random.default_rng(3)
    stored = rng.integers(0, 200, (SLICES, ROWS, COLUMNS)).astype(np.uint16)
    for k in range(SLICES):
        half = np.s_[:, : COLUMNS // 2] if k == SLICES // 2 else np.s_[:, COLUMNS // 2 :]
        stored[k][half] += 800
    return stored


def write_study(make_series, folder: Path, count: int, **fields: object) -> list[Path]:
    """``count`` series of :func:`middle_bright_left` in one study; the files of each."""
    written, study_uid = [], None
    for number in range(1, count + 1):
        if study_uid is not None:
            fields["study_uid"] = study_uid
        series = make_series(
            folder=folder,
            series_number=number,
            stored=middle_bright_left(),
            spacing=(2.0, 0.5, 3.0),  # 60 mm wide, 20 mm high
            file_pattern=f"S{number}_{{index:03d}}.dcm",
            **fields,
        )
        study_uid = pydicom.dcmread(series.paths[0]).StudyInstanceUID
        written.append(series.paths)
    return written


def corrupt_middle(paths: list[Path]) -> None:
    """RLE-encode a series and cut its middle file's codestream (the header stays readable)."""
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.compress(RLE, encoding_plugin="pydicom")
        ds.save_as(path, enforce_file_format=True)
    ds = pydicom.dcmread(paths[SLICES // 2])
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    cut = frame[: len(frame) // 2]
    ds.PixelData = encapsulate([cut + b"\0" * (len(cut) % 2)])
    ds.save_as(paths[SLICES // 2])


def icon_rgba(icon: QIcon) -> np.ndarray:
    """``(H, W, 4)`` RGBA of an icon at the browser's icon size."""
    image = icon.pixmap(QSize(THUMBNAIL_SIZE, THUMBNAIL_SIZE)).toImage()
    image = image.convertToFormat(QImage.Format.Format_RGBA8888)
    buffer = np.frombuffer(image.constBits(), dtype=np.uint8, count=image.sizeInBytes())
    rows = buffer.reshape(image.height(), image.bytesPerLine())[:, : image.width() * 4]
    return rows.reshape(image.height(), image.width(), 4).copy()


def scan_with_thumbnails(qtbot: QtBot, browser: StudyBrowser, folder: Path) -> list[str]:
    """Scan ``folder``; the keys of thumbnail_ready, in order, until every row has its icon."""
    ready: list[str] = []
    browser.thumbnail_ready.connect(ready.append)
    with qtbot.waitSignal(browser.thumbnails_finished, timeout=LOAD_MS):
        browser.scan(folder)
    browser.thumbnail_ready.disconnect(ready.append)
    return ready


def test_series_rows_get_thumbnails_in_display_order(
    browser: StudyBrowser, qtbot: QtBot, make_series, tmp_path: Path
) -> None:
    write_study(make_series, tmp_path / "study", 3)
    ready = scan_with_thumbnails(qtbot, browser, tmp_path / "study")
    rows = browser.series_items()
    assert ready == [row.data(0, Qt.ItemDataRole.UserRole).key for row in rows]
    for row in rows:
        assert not row.icon(0).isNull()
        rgba = icon_rgba(row.icon(0))
        inside = np.argwhere(rgba[..., 3] == 255)  # the thumbnail, centred on a clear square
        (top, left), (bottom, right) = inside.min(axis=0), inside.max(axis=0)
        assert (bottom - top + 1, right - left + 1) == (16, THUMBNAIL_SIZE)  # 60 mm × 20 mm
        grey = rgba[top : bottom + 1, left : right + 1, 0].astype(int)
        half = THUMBNAIL_SIZE // 2
        assert grey[:, :half].min() > 150 and grey[:, half:].max() < 100  # the middle slice
        assert "no thumbnail" not in row.toolTip(0)


def test_unreadable_middle_slice_gets_the_placeholder(
    browser: StudyBrowser, qtbot: QtBot, make_series, tmp_path: Path
) -> None:
    first, second = write_study(make_series, tmp_path / "study", 2)
    corrupt_middle(second)
    scan_with_thumbnails(qtbot, browser, tmp_path / "study")
    good, bad = browser.series_items()
    assert bad.data(0, Qt.ItemDataRole.UserRole).slice_count == SLICES  # the scan kept it
    assert "no thumbnail" in bad.toolTip(0) and second[SLICES // 2].name in bad.toolTip(0)
    placeholder = icon_rgba(QIcon(placeholder_pixmap()))
    np.testing.assert_array_equal(icon_rgba(bad.icon(0)), placeholder)
    assert not np.array_equal(icon_rgba(good.icon(0)), placeholder)
    assert "no thumbnail" not in good.toolTip(0)
    assert first  # the good series' files are untouched


def test_a_new_scan_cancels_pending_thumbnails(
    browser: StudyBrowser, qtbot: QtBot, make_series, tmp_path: Path
) -> None:
    write_study(make_series, tmp_path / "old", 6)  # quick thumbnails
    for number in (1, 2):  # a longer scan: the old thumbnails would arrive during it
        make_series(
            folder=tmp_path / "new",
            slices=80,
            rows=8,
            columns=8,
            series_number=number,
            file_pattern=f"N{number}_{{index:03d}}.dcm",
        )
    ready: list[str] = []
    rescanned: list[bool] = []

    def scan_again(_catalog: object) -> None:
        # The old catalog's thumbnails have just been started: a new scan must drop them.
        if not rescanned:
            rescanned.append(True)
            ready.clear()
            browser.scan(tmp_path / "new")

    browser.scanned.connect(scan_again)
    browser.thumbnail_ready.connect(ready.append)
    with qtbot.waitSignal(browser.thumbnails_finished, timeout=LOAD_MS):
        browser.scan(tmp_path / "old")
    keys = [row.data(0, Qt.ItemDataRole.UserRole).key for row in browser.series_items()]
    assert len(keys) == 2 and browser.catalog is not None
    assert str(tmp_path / "new") in browser.catalog.root
    assert ready == keys  # nothing from the old scan arrived after the new one began

"""The study browser: the catalog of a scanned folder as a tree, patient → study → series.

The scan runs in a :class:`~workstation.ui.tasks.TaskRunner` (never on the GUI thread). Activating
a loadable series (double-click or Enter) emits :attr:`StudyBrowser.series_activated` with the
:class:`~workstation.dicom.Series`, which loads without rescanning the folder; selecting one
that cannot be loaded emits :attr:`StudyBrowser.problem_selected` with the reason. Files the
scan could not use are listed under a "Files not used: N" item.

After a scan, each series row gets a thumbnail of its middle slice as its icon
(:func:`workstation.workflow.thumbnails.series_thumbnails`, on a second one-thread
:class:`~workstation.ui.tasks.TaskRunner`): made in display order, shown as each arrives
(:attr:`StudyBrowser.thumbnail_ready`), cancelled by the next scan. A series whose pixels cannot
be read gets a placeholder, and the reason in its tooltip.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import QMimeData, QPoint, QRect, QSize, Qt, Signal, Slot
from PySide6.QtGui import QColor, QIcon, QImage, QKeyEvent, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLabel,
    QStyle,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from workstation.dicom import Catalog, Series, scan
from workstation.ui.tasks import TaskRunner
from workstation.workflow.thumbnails import Thumbnail, series_thumbnails

__all__ = [
    "COLUMNS",
    "THUMBNAIL_SIZE",
    "StudyBrowser",
    "local_paths",
    "placeholder_pixmap",
    "series_label",
    "series_source",
    "thumbnail_pixmap",
]

COLUMNS = ("Name", "Modality", "Slices", "Size", "Orientation")
#: Side of a series row's icon (thumbnail or placeholder), in device-independent pixels.
THUMBNAIL_SIZE = 48
_SERIES_ROLE = Qt.ItemDataRole.UserRole
_NOTES_ROLE = Qt.ItemDataRole.UserRole + 1  # the row's warnings / problem (tooltip text)


def local_paths(mime: QMimeData | None) -> list[str]:
    """The local files and folders of a drag's mime data (empty when there are none)."""
    if mime is None or not mime.hasUrls():
        return []
    return [url.toLocalFile() for url in mime.urls() if url.isLocalFile() and url.toLocalFile()]


def series_label(series: Series) -> str:
    """A short name of a series: its number and description."""
    number = f"#{series.number} " if series.number is not None else ""
    return f"{number}{series.description or series.key}".strip()


def series_source(source: str | os.PathLike[str] | Series) -> str:
    """What a load reads, for messages: a path, or a series' name and folder."""
    if isinstance(source, Series):
        files = source.files
        folder = os.path.dirname(files[0]) if files else ""
        return f"{series_label(source)} in {folder}" if folder else series_label(source)
    return str(source)


class _Tree(QTreeWidget):
    """A tree whose Enter key acts as a double-click on the current item."""

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentItem():
            self.itemDoubleClicked.emit(self.currentItem(), 0)
            return
        super().keyPressEvent(event)


class StudyBrowser(QWidget):
    """Patients, studies and series of the last scanned folder.

    Signals
    -------
    series_activated(object)
        A loadable :class:`Series` was double-clicked (or Enter), or picked after a scan that
        asked for it (``scan(..., activate_first=True)``).
    problem_selected(str)
        A series that cannot be loaded was selected; the text says why.
    scanned(object)
        A scan finished; the :class:`Catalog` is shown.
    scan_failed(str)
        A scan failed, or (``activate_first``) found no loadable series.
    thumbnail_ready(str)
        A series row (its key) got its icon: the thumbnail, or the placeholder when its pixels
        cannot be read (the tooltip then says why).
    thumbnails_finished()
        Every series of the shown catalog has its icon (never for superseded work).
    """

    series_activated = Signal(object)
    problem_selected = Signal(str)
    scanned = Signal(object)
    scan_failed = Signal(str)
    thumbnail_ready = Signal(str)
    thumbnails_finished = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.catalog: Catalog | None = None
        self._activate_first = False
        self.status = QLabel("No folder opened")
        self.status.setWordWrap(True)
        self.tree = _Tree()
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setExpandsOnDoubleClick(False)
        self.tree.setIconSize(QSize(THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        self.tree.itemDoubleClicked.connect(self._activated)
        self.tree.currentItemChanged.connect(self._selected)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.status)
        layout.addWidget(self.tree)

        self.runner = TaskRunner(self, threads=1)
        self.runner.finished.connect(self._on_scanned)
        self.runner.failed.connect(self._on_failed)
        self.runner.cancelled.connect(lambda: self.status.setText("scan cancelled"))

        self._thumbnail_rows: list[QTreeWidgetItem] = []
        self.thumbnailer = TaskRunner(self, threads=1)
        self.thumbnailer.partial.connect(self._on_thumbnail)
        self.thumbnailer.finished.connect(self._on_thumbnails_done)
        self.thumbnailer.failed.connect(self._on_thumbnails_failed)

    @property
    def scanning(self) -> bool:
        """True while a scan runs."""
        return self.runner.busy

    def scan(
        self, source: str | os.PathLike[str] | Sequence[str], *, activate_first: bool = False
    ) -> None:
        """Scan ``source`` (a folder, a file or a list of them) on a worker thread."""
        paths: str | list[str] = (
            [str(p) for p in source]
            if isinstance(source, Sequence) and not isinstance(source, str)
            else str(source)
        )
        self.thumbnailer.cancel()  # the rows they are for are about to go
        self._activate_first = activate_first
        shown = paths if isinstance(paths, str) else ", ".join(paths)
        self.status.setText(f"scanning {shown}")
        self.runner.start(functools.partial(scan, paths))

    def shutdown(self) -> None:
        """Stop a scan and thumbnails in progress (when the window closes)."""
        self.thumbnailer.cancel()
        self.runner.shutdown()
        self.thumbnailer.shutdown()

    # -- the tree -----------------------------------------------------------------------------
    def show_catalog(self, catalog: Catalog) -> None:
        """Fill the tree with ``catalog``, then make the series thumbnails on a worker."""
        self.thumbnailer.cancel()
        self._thumbnail_rows = []
        self.catalog = catalog
        self.tree.clear()
        warn = self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)
        for patient in catalog.patients:
            p_item = QTreeWidgetItem(self.tree, [patient.name or patient.patient_id or "?"])
            p_item.setToolTip(0, f"patient {patient.patient_id}")
            for study in patient.studies:
                text = " ".join(t for t in (_date(study.date), study.description) if t)
                s_item = QTreeWidgetItem(p_item, [text or study.uid])
                s_item.setToolTip(0, study.uid)
                for series in study.series:
                    self._add_series(s_item, series, warn)
        if catalog.problems:
            files = QTreeWidgetItem(self.tree, [f"Files not used: {len(catalog.problems)}"])
            files.setIcon(0, warn)
            for problem in catalog.problems:
                item = QTreeWidgetItem(files, [os.path.basename(problem.path) or problem.path])
                item.setToolTip(0, f"{problem.path}: {problem.reason}")
        self.tree.expandAll()
        for column in range(len(COLUMNS)):
            self.tree.resizeColumnToContents(column)
        count = sum(1 for _ in catalog.iter_series())
        self.status.setText(f"{catalog.root}: {count} series")
        self._start_thumbnails()

    def _add_series(self, parent: QTreeWidgetItem, series: Series, warn: object) -> None:
        info = series.to_json()
        size = f"{info['columns']}×{info['rows']}"
        item = QTreeWidgetItem(
            parent,
            [
                series_label(series),
                str(info["modality"] or ""),
                str(info["slices"]),
                size,
                str(info["orientation"] or ""),
            ],
        )
        item.setData(0, _SERIES_ROLE, series)
        notes = []
        if not info["loadable"]:
            notes.append(f"cannot be loaded: {info['problem']}")
        notes.extend(f"warning: {w}" for w in info["warnings"])
        if notes:
            item.setIcon(0, warn)  # type: ignore[arg-type]
            item.setData(0, _NOTES_ROLE, "\n".join(notes))
            _set_tooltip(item, "\n".join(notes))
        if not info["loadable"]:
            item.setForeground(0, self.palette().placeholderText())

    def series_items(self) -> list[QTreeWidgetItem]:
        """The series rows, in catalog order."""
        found = []
        stack = [self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount())]
        while stack:
            item = stack.pop(0)
            if isinstance(item.data(0, _SERIES_ROLE), Series):
                found.append(item)
            stack[0:0] = [item.child(i) for i in range(item.childCount())]
        return found

    # -- thumbnails ---------------------------------------------------------------------------
    def _start_thumbnails(self) -> None:
        """Thumbnails of the series rows, in display order, on the thumbnail worker."""
        self._thumbnail_rows = self.series_items()
        series = [row.data(0, _SERIES_ROLE) for row in self._thumbnail_rows]
        size = max(1, math.ceil(THUMBNAIL_SIZE * self.devicePixelRatioF()))
        self.thumbnailer.start(
            functools.partial(series_thumbnails, series, size=size), with_partial=True
        )

    @Slot(object)
    def _on_thumbnail(self, value: object) -> None:
        assert isinstance(value, Thumbnail)
        if value.index >= len(self._thumbnail_rows):
            return
        item = self._thumbnail_rows[value.index]
        series = item.data(0, _SERIES_ROLE)
        if not isinstance(series, Series) or series.key != value.key:
            return
        notes = str(item.data(0, _NOTES_ROLE) or "")
        badge = self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)
        ratio = self.devicePixelRatioF()
        if value.image is not None:
            pixmap = thumbnail_pixmap(value.image, ratio, badge if notes else None)
        else:
            pixmap = placeholder_pixmap(ratio, badge if notes else None)
            notes = "\n".join(t for t in (notes, f"no thumbnail: {value.problem}") if t)
        item.setIcon(0, QIcon(pixmap))
        if notes:
            _set_tooltip(item, notes)
        self.thumbnail_ready.emit(value.key)

    @Slot(object)
    def _on_thumbnails_done(self, _result: object) -> None:
        self.thumbnails_finished.emit()

    @Slot(str, str)
    def _on_thumbnails_failed(self, message: str, _details: str) -> None:
        # Unexpected (per-series errors come back as placeholders); the runner logged it.
        self.status.setText(f"{self.status.text()} (thumbnails failed: {message})")

    # -- events -------------------------------------------------------------------------------
    @Slot(object)
    def _on_scanned(self, catalog: object) -> None:
        assert isinstance(catalog, Catalog)
        self.show_catalog(catalog)
        self.scanned.emit(catalog)
        if self._activate_first:
            self._activate_first = False
            loadable = [s for s in catalog.iter_series() if s.stack.loadable]
            if loadable:
                for item in self.series_items():
                    if item.data(0, _SERIES_ROLE) is loadable[0]:
                        self.tree.setCurrentItem(item)
                self.series_activated.emit(loadable[0])
            else:
                reasons = [f"{series_label(s)}: {s.stack.problem}" for s in catalog.iter_series()]
                detail = f" ({'; '.join(reasons)})" if reasons else ""
                self.scan_failed.emit(f"no loadable series under {catalog.root}{detail}")

    @Slot(str, str)
    def _on_failed(self, message: str, _details: str) -> None:
        self._activate_first = False
        self.status.setText("scan failed")
        self.scan_failed.emit(message)

    @Slot(QTreeWidgetItem, int)
    def _activated(self, item: QTreeWidgetItem, _column: int) -> None:
        series = item.data(0, _SERIES_ROLE)
        if not isinstance(series, Series):
            return
        if series.stack.loadable:
            self.series_activated.emit(series)
        else:
            self._report(series)

    @Slot(QTreeWidgetItem, QTreeWidgetItem)
    def _selected(self, item: QTreeWidgetItem | None, _previous: object) -> None:
        series = item.data(0, _SERIES_ROLE) if item is not None else None
        if isinstance(series, Series) and not series.stack.loadable:
            self._report(series)

    def _report(self, series: Series) -> None:
        self.problem_selected.emit(
            f"series {series_label(series)} cannot be loaded: {series.stack.problem}"
        )


def _set_tooltip(item: QTreeWidgetItem, text: str) -> None:
    for column in range(len(COLUMNS)):
        item.setToolTip(column, text)


def thumbnail_pixmap(image: np.ndarray, ratio: float = 1.0, badge: QIcon | None = None) -> QPixmap:
    """A square icon pixmap with the ``uint8`` grey ``image`` centred (shrunk if too large),
    and ``badge`` (a warning) in its bottom-right corner."""
    grey = np.ascontiguousarray(image, dtype=np.uint8)
    height, width = grey.shape
    qimage = QImage(grey.tobytes(), width, height, width, QImage.Format.Format_Grayscale8).copy()
    side = max(1, math.ceil(THUMBNAIL_SIZE * ratio))
    scale = min(1.0, side / max(height, width))
    shown_w, shown_h = max(1, round(width * scale)), max(1, round(height * scale))
    canvas, painter = _canvas(side)
    target = QRect((side - shown_w) // 2, (side - shown_h) // 2, shown_w, shown_h)
    painter.drawImage(target, qimage)
    return _finish(canvas, painter, ratio, badge)


def placeholder_pixmap(ratio: float = 1.0, badge: QIcon | None = None) -> QPixmap:
    """The icon of a series without a thumbnail: a dark square crossed out."""
    side = max(1, math.ceil(THUMBNAIL_SIZE * ratio))
    canvas, painter = _canvas(side)
    margin = max(1, side // 8)
    box = QRect(margin, margin, side - 2 * margin, side - 2 * margin)
    painter.fillRect(box, QColor(48, 48, 48))
    painter.setPen(QPen(QColor(150, 150, 150), max(1.0, ratio)))
    painter.drawRect(box)
    painter.drawLine(box.topLeft(), box.bottomRight())
    painter.drawLine(QPoint(box.left(), box.bottom()), QPoint(box.right(), box.top()))
    return _finish(canvas, painter, ratio, badge)


def _canvas(side: int) -> tuple[QPixmap, QPainter]:
    canvas = QPixmap(side, side)
    canvas.fill(Qt.GlobalColor.transparent)
    return canvas, QPainter(canvas)


def _finish(canvas: QPixmap, painter: QPainter, ratio: float, badge: QIcon | None) -> QPixmap:
    side = canvas.width()
    if badge is not None:
        size = max(8, side // 3)
        badge.paint(painter, QRect(side - size, side - size, size, size))
    painter.end()
    canvas.setDevicePixelRatio(ratio)
    return canvas


def _date(value: str) -> str:
    """``YYYYMMDD`` as ``YYYY-MM-DD`` (anything else as it is)."""
    if len(value) == 8 and value.isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return value

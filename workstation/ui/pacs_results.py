"""The results tree of the PACS dialog: studies that expand to their series.

Study rows hold a :class:`~workstation.dicom.dicomweb.StudyRecord` and show date, patient,
patient ID, modalities, description and the number of series; their series are fetched when the
row is first expanded (the dialog does that, on a worker), meanwhile a "loading…" child stands
in. Series rows hold a :class:`~workstation.dicom.dicomweb.SeriesRecord` and show number,
modality, description and the number of instances.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QAbstractItemView, QTreeWidget, QTreeWidgetItem, QWidget

from workstation.dicom.dicomweb import SeriesRecord, StudyRecord

__all__ = ["COLUMNS", "ResultsTree", "display_date", "display_name"]

COLUMNS = ("Date / series", "Patient", "Patient ID", "Modality", "Description", "Series / images")
_RECORD_ROLE = Qt.ItemDataRole.UserRole
_STATE_ROLE = Qt.ItemDataRole.UserRole + 1  # a study's series: "", "loading", "loaded"


def display_date(value: str) -> str:
    """``YYYYMMDD`` as ``YYYY-MM-DD`` (anything else as it is)."""
    if len(value) == 8 and value.isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return value


def display_name(value: str) -> str:
    """A DICOM person name (``FAMILY^GIVEN``) as ``FAMILY, GIVEN``."""
    parts = [p for p in value.split("^")[:2] if p]
    return ", ".join(parts)


def _count(value: int | None) -> str:
    return "" if value is None else str(value)


class ResultsTree(QTreeWidget):
    """Studies and their series; Enter on a row acts as a double-click."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setColumnCount(len(COLUMNS))
        self.setHeaderLabels(list(COLUMNS))
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setExpandsOnDoubleClick(True)
        self.setUniformRowHeights(True)
        self.setAllColumnsShowFocus(True)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentItem():
            self.itemDoubleClicked.emit(self.currentItem(), 0)
            return
        super().keyPressEvent(event)

    # -- studies ------------------------------------------------------------------------------
    def add_studies(self, studies: Sequence[StudyRecord]) -> None:
        """Append study rows (each expandable; its series are fetched on expansion)."""
        shown = {s.study_uid for s in self.studies()}
        for study in studies:
            if study.study_uid in shown:  # a page boundary moved under us: no duplicate row
                continue
            item = QTreeWidgetItem(
                self,
                [
                    display_date(study.study_date),
                    display_name(study.patient_name),
                    study.patient_id,
                    ", ".join(study.modalities),
                    study.description,
                    _count(study.series_count),
                ],
            )
            item.setData(0, _RECORD_ROLE, study)
            item.setData(0, _STATE_ROLE, "")
            item.setToolTip(0, f"study {study.study_uid}")
            item.setChildIndicatorPolicy(QTreeWidgetItem.ChildIndicatorPolicy.ShowIndicator)
        for column in range(len(COLUMNS)):
            self.resizeColumnToContents(column)

    def studies(self) -> list[StudyRecord]:
        """The studies shown, in order."""
        return [self.topLevelItem(i).data(0, _RECORD_ROLE) for i in range(self.topLevelItemCount())]

    def study_item(self, study_uid: str) -> QTreeWidgetItem | None:
        """The row of a study, if shown."""
        for i in range(self.topLevelItemCount()):
            item = self.topLevelItem(i)
            if item.data(0, _RECORD_ROLE).study_uid == study_uid:
                return item
        return None

    def needs_series(self, item: QTreeWidgetItem) -> StudyRecord | None:
        """The study of a row whose series were never fetched (or failed); marks it loading."""
        study = item.data(0, _RECORD_ROLE)
        if not isinstance(study, StudyRecord) or item.data(0, _STATE_ROLE):
            return None
        item.takeChildren()
        QTreeWidgetItem(item, ["loading…"]).setDisabled(True)
        item.setData(0, _STATE_ROLE, "loading")
        return study

    # -- series -------------------------------------------------------------------------------
    def set_series(self, study_uid: str, series: Sequence[SeriesRecord]) -> None:
        """Fill a study's row with its series (ordered by number)."""
        item = self.study_item(study_uid)
        if item is None:
            return
        item.takeChildren()
        item.setData(0, _STATE_ROLE, "loaded")
        ordered = sorted(series, key=lambda s: (s.series_number is None, s.series_number or 0))
        for record in ordered:
            number = "" if record.series_number is None else str(record.series_number)
            child = QTreeWidgetItem(
                item,
                [
                    f"Series {number}".strip(),
                    "",
                    "",
                    record.modality,
                    record.description,
                    _count(record.instance_count),
                ],
            )
            child.setData(0, _RECORD_ROLE, record)
            child.setToolTip(0, f"series {record.series_uid}")
        if not ordered:
            QTreeWidgetItem(item, ["no series"]).setDisabled(True)

    def series_failed(self, study_uid: str, message: str) -> None:
        """Show why a study's series could not be listed; expanding it again retries."""
        item = self.study_item(study_uid)
        if item is None:
            return
        item.takeChildren()
        item.setData(0, _STATE_ROLE, "")
        child = QTreeWidgetItem(item, [message])
        child.setToolTip(0, message)
        child.setDisabled(True)

    def series_items(self, study_uid: str) -> list[QTreeWidgetItem]:
        """The series rows of a study (empty until fetched)."""
        item = self.study_item(study_uid)
        if item is None:
            return []
        children = [item.child(i) for i in range(item.childCount())]
        return [c for c in children if isinstance(c.data(0, _RECORD_ROLE), SeriesRecord)]

    @staticmethod
    def record(item: QTreeWidgetItem | None) -> StudyRecord | SeriesRecord | None:
        """The study or series a row shows (None for placeholders)."""
        value = item.data(0, _RECORD_ROLE) if item is not None else None
        return value if isinstance(value, StudyRecord | SeriesRecord) else None

"""The Analyze panel's findings list and the text of an analysis' study-level details.

:class:`FindingsList` shows one row per finding (name, volume, confidence, centroid); choosing a
row emits :attr:`FindingsList.finding_chosen` with the finding's centroid (LPS, mm) so the panel
can move the shared crosshair there. :func:`details_html` and :func:`warnings_text` turn an
:class:`~workstation.workflow.analyze.Analysis` into the text shown below the list.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import QAbstractItemView, QTreeWidget, QTreeWidgetItem, QWidget

if TYPE_CHECKING:
    from workstation.workflow.analyze import Analysis, Finding

__all__ = ["METHOD_TITLES", "FindingsList", "details_html", "warnings_text"]

METHOD_TITLES: dict[str, str] = {
    "gradcam": "Grad-CAM",
    "ig": "Integrated gradients",
    "occlusion": "Occlusion",
}
"""Explanation method (``AnalysisRequest.explain``) → its title in the UI and layer names."""

COLUMNS = ("Finding", "Volume (mL)", "Confidence", "Centroid LPS (mm)")
_CENTROID = Qt.ItemDataRole.UserRole


class FindingsList(QTreeWidget):
    """One row per finding; choosing a row emits its centroid.

    Signals
    -------
    finding_chosen(object)
        ``(x, y, z)`` LPS mm of the finding's centroid.
    """

    finding_chosen = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setColumnCount(len(COLUMNS))
        self.setHeaderLabels(list(COLUMNS))
        self.setRootIsDecorated(False)
        self.setUniformRowHeights(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.itemClicked.connect(self._item_chosen)
        self.itemActivated.connect(self._item_chosen)
        self.currentItemChanged.connect(lambda item, _previous: self._item_chosen(item))

    def set_findings(self, findings: Sequence[Finding]) -> None:
        """Show ``findings`` (replacing the rows shown before)."""
        self.blockSignals(True)
        try:
            self.clear()
            for finding in findings:
                self.addTopLevelItem(_row(finding))
        finally:
            self.blockSignals(False)
        for column in range(len(COLUMNS)):
            self.resizeColumnToContents(column)

    def centroid(self, row: int) -> tuple[float, float, float] | None:
        """The centroid of row ``row`` (``None``: no such row)."""
        item = self.topLevelItem(row)
        return None if item is None else item.data(0, _CENTROID)

    @Slot(object)
    def _item_chosen(self, item: QTreeWidgetItem | None, _column: int = 0) -> None:
        if item is not None:
            self.finding_chosen.emit(item.data(0, _CENTROID))


def _row(finding: Finding) -> QTreeWidgetItem:
    volume = "" if finding.volume_ml is None else f"{finding.volume_ml:.2f}"
    centroid = ", ".join(f"{c:.1f}" for c in finding.centroid_lps)
    item = QTreeWidgetItem([finding.name, volume, f"{finding.confidence:.2f}", centroid])
    item.setData(0, _CENTROID, tuple(float(c) for c in finding.centroid_lps))
    tip = f"{finding.name} ({finding.source})"
    if finding.mean_probability is not None:
        tip += f"; mean probability {finding.mean_probability:.2f}"
    if finding.voxels is not None:
        tip += f"; {finding.voxels} voxels"
    for column in range(len(COLUMNS)):
        item.setToolTip(column, tip)
    for column in (1, 2):
        item.setTextAlignment(column, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return item


def warnings_text(analysis: Analysis) -> str:
    """The QC warnings, one a line (empty when there are none)."""
    return "\n".join(f"⚠ {warning}" for warning in analysis.warnings)


def details_html(analysis: Analysis) -> str:
    """Study-level lesion probability, explanation and faithfulness, rejected candidates."""
    lines: list[str] = []
    if analysis.lesion_probability is not None:
        lines.append(f"Study lesion probability: <b>{analysis.lesion_probability:.2f}</b>")
    if not analysis.findings:
        lines.append("No finding.")
    info = analysis.explanation_info
    if info:
        lines.append(_explanation_line(info))
        faithfulness = info.get("faithfulness")
        if isinstance(faithfulness, Mapping):
            lines.extend(_faithfulness_lines(faithfulness))
    if analysis.rejected:
        n = len(analysis.rejected)
        lines.append(f"{n} candidate{'s' if n != 1 else ''} rejected by the classifier")
    return "<br>".join(lines)


def _explanation_line(info: Mapping[str, Any]) -> str:
    method = str(info.get("method", ""))
    title = METHOD_TITLES.get(method, method)
    seconds = info.get("seconds")
    text = f"Explanation: {html.escape(title)}"
    if isinstance(seconds, int | float):
        text += f" ({seconds:.1f} s)"
    finding = info.get("finding")
    if finding:
        text += f" of {html.escape(str(finding))}"
    return text


def _faithfulness_lines(f: Mapping[str, Any]) -> list[str]:
    def number(key: str) -> str:
        value = f.get(key)
        return "n/a" if not isinstance(value, int | float) else f"{value:.3g}"

    lines = [
        f"Deletion AUC {number('deletion_auc')} (random {number('deletion_auc_random')}, "
        f"gain {number('deletion_gain')})",
        f"Insertion AUC {number('insertion_auc')} (random {number('insertion_auc_random')}, "
        f"gain {number('insertion_gain')})",
    ]
    pointing = f.get("pointing_game")
    if pointing is not None:
        lines.append(f"Pointing game: {'hit' if pointing else 'miss'}")
    else:
        lines.append("Pointing game: unknown (no ground truth)")
    return lines

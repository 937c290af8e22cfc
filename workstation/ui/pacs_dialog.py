"""The PACS dialog: search a DICOMweb server (QIDO-RS) and pick a series to open.

::

    dialog = PacsDialog(window)                        # non-modal
    dialog.series_chosen.connect(window.load)          # a RemoteSeries, streamed by the window
    dialog.show()

The server comes from :class:`~workstation.ui.pacs_server_form.ServerForm` (saved servers,
"New…", a password kept in memory only). Searching snapshots the server and the filters on the
GUI thread and runs the query (:mod:`~workstation.workflow.pacs_search`) on a worker
(:class:`~workstation.ui.tasks.TaskRunner`, newest wins) with a busy bar and Cancel; the studies
fill a :class:`~workstation.ui.pacs_results.ResultsTree` a page (:attr:`PacsDialog.page_size`)
at a time, "Load more" asks for the next page. Expanding a study lists its series on a worker
of its own. Double-click (or Enter, or Open) on a series
emits :attr:`PacsDialog.series_chosen`. Errors (unreachable, timeout, 401/403, ...) appear in
red in the status line with the engine's message, never with the password.
"""

from __future__ import annotations

import functools

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from workstation.dicom.dicomweb import SeriesRecord, StudyRecord
from workstation.ui.pacs_results import ResultsTree
from workstation.ui.pacs_server_form import ServerForm
from workstation.ui.tasks import TaskRunner
from workstation.workflow.pacs_search import StudyQuery, list_series, search_page
from workstation.workflow.pacs_servers import PacsServers
from workstation.workflow.remote import PacsServer, RemoteSeries

__all__ = ["MODALITIES", "PAGE_SIZE", "PacsDialog"]

#: Studies asked for per page.
PAGE_SIZE = 50
#: Offered in the modality box (it also takes any text, e.g. "CT,MR").
MODALITIES = ("", "CT", "MR", "PT", "NM", "US", "CR", "DX", "MG", "XA", "RF", "SEG", "RTDOSE")
_ERROR_STYLE = "color: #c62828;"


class PacsDialog(QDialog):
    """Search a DICOMweb server and choose a series (non-modal).

    Parameters
    ----------
    parent
        The main window.
    servers
        The saved servers; ``None``: :class:`PacsServers` in the workstation home.
    page_size
        Studies per page ("Load more" asks for the next).

    Signals
    -------
    series_chosen(object)
        A :class:`~workstation.workflow.remote.RemoteSeries` (with the searched server and its
        in-memory credentials) to open.
    search_finished(int)
        A page arrived; the number of studies now shown.
    search_failed(str)
        A search failed; the message shown.
    series_listed(str)
        A study's series arrived (its StudyInstanceUID), or failed to.
    """

    series_chosen = Signal(object)
    search_finished = Signal(int)
    search_failed = Signal(str)
    series_listed = Signal(str)

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        servers: PacsServers | None = None,
        page_size: int = PAGE_SIZE,
    ) -> None:
        super().__init__(parent)
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {page_size}")
        self.setWindowTitle("Open from PACS")
        self.setModal(False)
        self.page_size = page_size
        self.server: PacsServer | None = None  # the server of the results shown
        self._query = StudyQuery()
        self._series_runners: dict[str, TaskRunner] = {}

        self.server_form = ServerForm(servers if servers is not None else PacsServers())
        self.server_form.problem.connect(self._on_form_problem)
        self.server_form.saved.connect(self._on_server_saved)
        server_box = QGroupBox("Server")
        QVBoxLayout(server_box).addWidget(self.server_form)

        self.patient_name = QLineEdit()
        self.patient_name.setPlaceholderText("e.g. DOE^J*   (* any text, ? one character)")
        self.patient_name.setToolTip(
            "FAMILY^GIVEN; * matches any text, ? one character (use ? for a space)"
        )
        self.patient_id = QLineEdit()
        self.date_from, self.date_to = QLineEdit(), QLineEdit()
        for edit, text in ((self.date_from, "from"), (self.date_to, "to")):
            edit.setPlaceholderText(f"{text} YYYY-MM-DD")
        self.modality = QComboBox()
        self.modality.setEditable(True)
        self.modality.addItems(list(MODALITIES))
        self.modality.setToolTip("Any of these in the study, e.g. CT or CT,MR")
        self.fuzzy = QCheckBox("Fuzzy name matching")
        self.fuzzy.setToolTip("Match the name anywhere, ignoring case (where the server can)")
        self.search_button = QPushButton("Search")
        self.search_button.setDefault(True)
        self.search_button.clicked.connect(self.search)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setAutoDefault(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)  # indeterminate
        self.busy.setMaximumHeight(12)
        self.busy.setTextVisible(False)
        search_box = QGroupBox("Search")
        form = QFormLayout(search_box)
        form.addRow("Patient name", self.patient_name)
        form.addRow("Patient ID", self.patient_id)
        dates = QHBoxLayout()
        dates.addWidget(self.date_from)
        dates.addWidget(self.date_to)
        form.addRow("Study date", dates)
        form.addRow("Modality", self.modality)
        buttons = QHBoxLayout()
        buttons.addWidget(self.fuzzy)
        buttons.addStretch(1)
        buttons.addWidget(self.busy)
        buttons.addWidget(self.search_button)
        buttons.addWidget(self.cancel_button)
        form.addRow(buttons)

        self.results = ResultsTree()
        self.results.itemExpanded.connect(self._expanded)
        self.results.itemDoubleClicked.connect(self._activated)
        self.results.currentItemChanged.connect(self._current_changed)
        self.status = QLabel("Choose a server and search")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.load_more_button = QPushButton("Load more")
        self.load_more_button.setAutoDefault(False)
        self.load_more_button.clicked.connect(self.load_more)
        self.open_button = QPushButton("Open")
        self.open_button.setAutoDefault(False)
        self.open_button.clicked.connect(self.open_selected)
        close_button = QPushButton("Close")
        close_button.setAutoDefault(False)
        close_button.clicked.connect(self.close)
        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        for button in (self.load_more_button, self.open_button, close_button):
            bottom.addWidget(button)

        layout = QVBoxLayout(self)
        layout.addWidget(server_box)
        layout.addWidget(search_box)
        layout.addWidget(self.results, 1)
        layout.addLayout(bottom)

        self.runner = TaskRunner(self, threads=1)
        self.runner.finished.connect(self._on_page)
        self.runner.failed.connect(self._on_search_failed)
        self.runner.cancelled.connect(self._on_search_cancelled)
        self._more = False
        self._offset = 0  # of the page asked for last
        self._update_buttons()
        self.resize(900, 640)
        self.patient_name.setFocus()

    # -- searching ----------------------------------------------------------------------------
    @property
    def searching(self) -> bool:
        """True while a search or a series listing runs."""
        return self.runner.busy or bool(self._series_runners)

    def query(self) -> StudyQuery:
        """The filters the search form shows."""
        modalities = self.modality.currentText().replace(",", " ").upper().split()
        return StudyQuery(
            patient_name=self.patient_name.text().strip(),
            patient_id=self.patient_id.text().strip(),
            date_from=self.date_from.text().strip(),
            date_to=self.date_to.text().strip(),
            modalities=tuple(modalities),
            fuzzy=self.fuzzy.isChecked(),
        )

    @Slot()
    def search(self) -> bool:
        """Start a search with the form's server and filters (the results are replaced);
        False (and the reason in the status line) when the form is incomplete."""
        try:
            server = self.server_form.server()
            query = self.query()
            query.filters()
        except ValueError as error:
            self._set_status(str(error), error=True)
            return False
        self._clear_results()
        self.server, self._query = server, query
        self._fetch_page(0)
        return True

    @Slot()
    def load_more(self) -> None:
        """Ask for the next page of the last search."""
        if self.server is None or not self._more or self.runner.busy:
            return
        self._fetch_page(len(self.results.studies()))

    def _fetch_page(self, offset: int) -> None:
        assert self.server is not None
        self._more, self._offset = False, offset
        self._set_status(f"Searching {self.server.label}…")
        task = functools.partial(
            search_page, self.server, self._query, offset=offset, limit=self.page_size
        )
        self.runner.start(task)
        self._update_buttons()

    @Slot()
    def cancel(self) -> None:
        """Stop the search and the series listings in progress."""
        self.runner.cancel()
        for runner in self._series_runners.values():
            runner.cancel()

    def shutdown(self) -> None:
        """Cancel and wait for the workers (when the application closes)."""
        self.cancel()
        self.runner.shutdown()
        for runner in list(self._series_runners.values()):
            runner.shutdown()

    def _clear_results(self) -> None:
        for runner in self._series_runners.values():
            runner.cancel()  # its outcome still arrives, and only deletes it
        self._series_runners.clear()
        self.results.clear()
        self._more = False

    @Slot(object)
    def _on_page(self, result: object) -> None:
        studies: list[StudyRecord] = result  # type: ignore[assignment]
        self.results.add_studies(studies)
        self._more = len(studies) >= self.page_size
        count = len(self.results.studies())
        if count == 0:
            self._set_status("No studies match")
        else:
            more = "; more on the server (Load more)" if self._more else ""
            self._set_status(f"{count} {'study' if count == 1 else 'studies'}{more}")
        self._update_buttons()
        self.search_finished.emit(count)

    @Slot(str, str)
    def _on_search_failed(self, message: str, _details: str) -> None:
        shown = self._set_status(f"Search failed: {message}", error=True)
        self._more = self._offset > 0  # a failed "Load more" can be tried again
        self._update_buttons()
        self.search_failed.emit(shown)

    @Slot()
    def _on_search_cancelled(self) -> None:
        self._set_status("Search cancelled")
        self._more = self._offset > 0
        self._update_buttons()

    @Slot(str)
    def _on_form_problem(self, message: str) -> None:
        self._set_status(message, error=True)

    @Slot(object)
    def _on_server_saved(self, server: object) -> None:
        assert isinstance(server, PacsServer)
        self._set_status(f"Saved {server.label} (without the password)")

    # -- series -------------------------------------------------------------------------------
    @Slot(QTreeWidgetItem)
    def _expanded(self, item: QTreeWidgetItem) -> None:
        study = self.results.needs_series(item)
        if study is None or self.server is None:
            return
        runner = TaskRunner(self, threads=1)
        uid = study.study_uid
        self._series_runners[uid] = runner
        runner.finished.connect(functools.partial(self._on_series, runner, uid))
        runner.failed.connect(
            lambda message, _details: self._series_done(runner, uid, None, message)
        )
        runner.cancelled.connect(
            lambda: self._series_done(runner, uid, None, "cancelled; expand again to retry")
        )
        runner.start(functools.partial(list_series, self.server, uid))
        self._update_buttons()

    def _on_series(self, runner: TaskRunner, uid: str, series: object) -> None:
        self._series_done(runner, uid, series, None)  # type: ignore[arg-type]

    def _series_done(
        self,
        runner: TaskRunner,
        uid: str,
        series: list[SeriesRecord] | None,
        problem: str | None,
    ) -> None:
        runner.deleteLater()
        if self._series_runners.get(uid) is not runner:
            return  # the results it was for are gone
        del self._series_runners[uid]
        if series is not None:
            self.results.set_series(uid, series)
        else:
            assert problem is not None
            shown = self._scrub(problem)
            self.results.series_failed(uid, shown)
            if not problem.startswith("cancelled"):
                self._set_status(f"Listing the series failed: {shown}", error=True)
        self._update_buttons()
        self.series_listed.emit(uid)

    # -- choosing -----------------------------------------------------------------------------
    def chosen(self, item: QTreeWidgetItem | None = None) -> RemoteSeries | None:
        """The series of ``item`` (default: the current row) as a RemoteSeries, if a series."""
        record = ResultsTree.record(item if item is not None else self.results.currentItem())
        if not isinstance(record, SeriesRecord) or self.server is None:
            return None
        return RemoteSeries(self.server, record.study_uid, record.series_uid, record.description)

    @Slot()
    def open_selected(self) -> bool:
        """Emit :attr:`series_chosen` for the current series row; False when none is."""
        remote = self.chosen()
        if remote is not None:
            self.series_chosen.emit(remote)
        return remote is not None

    @Slot(QTreeWidgetItem, int)
    def _activated(self, item: QTreeWidgetItem, _column: int) -> None:
        remote = self.chosen(item)
        if remote is not None:
            self.series_chosen.emit(remote)

    @Slot(QTreeWidgetItem, QTreeWidgetItem)
    def _current_changed(self, _item: object, _previous: object) -> None:
        self._update_buttons()

    # -- state --------------------------------------------------------------------------------
    def _update_buttons(self) -> None:
        busy = self.searching
        self.busy.setVisible(busy)
        self.cancel_button.setEnabled(busy)
        self.load_more_button.setEnabled(self._more and not self.runner.busy)
        self.open_button.setEnabled(self.chosen() is not None)

    def _scrub(self, message: str) -> str:
        """``message`` with the password masked, should any layer ever have quoted it."""
        searched = self.server.credentials.password if self.server is not None else None
        for password in (searched, self.server_form.password.text()):
            if password:
                message = message.replace(password, "•••")
        return message

    def _set_status(self, text: str, *, error: bool = False) -> str:
        """Show ``text`` (red for an error) and return it as shown."""
        shown = self._scrub(text)
        self.status.setText(shown)
        self.status.setStyleSheet(_ERROR_STYLE if error else "")
        self.status.setProperty("error", error)
        return shown

    def done(self, result: int) -> None:
        """Closing the dialog (Close, Esc, the window's X) stops its work."""
        self.cancel()
        super().done(result)

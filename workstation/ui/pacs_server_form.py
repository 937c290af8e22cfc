"""The server part of the PACS dialog: the saved servers, the chosen one's settings, a password.

The combo lists the saved servers (:class:`~workstation.workflow.pacs_servers.PacsServers`) and
"New…". Choosing one fills the fields (URL, name, user, CA bundle, verification, timeout) and
clears the password; "Save server" writes the fields to the list (updating the chosen entry, or
adding one for "New…"). The password lives only in its field and in the
:class:`~workstation.workflow.remote.PacsServer` that :meth:`ServerForm.server` returns (in
memory): it is never saved.
"""

from __future__ import annotations

import os
from dataclasses import replace

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QWidget,
)

from workstation.core.errors import WorkstationError
from workstation.workflow.pacs_servers import PacsServers
from workstation.workflow.remote import Credentials, PacsServer, is_url, server_from_url

__all__ = ["NEW_SERVER", "ServerForm"]

#: The combo entry that starts a new server.
NEW_SERVER = "New…"


class ServerForm(QWidget):
    """Pick a saved server or describe a new one; the password is kept in memory only.

    Signals
    -------
    saved(object)
        A :class:`PacsServer` was saved (as stored: no credentials).
    problem(str)
        The fields cannot make a server, or the list cannot be saved (the reason).
    """

    saved = Signal(object)
    problem = Signal(str)

    def __init__(self, store: PacsServers, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self._saved: list[PacsServer] = []
        self.combo = QComboBox()
        self.combo.setToolTip("Saved servers; choose New… to describe another")
        self.url = QLineEdit()
        self.url.setPlaceholderText("https://pacs.example.org/dicom-web")
        self.name = QLineEdit()
        self.name.setPlaceholderText("optional display name")
        self.username = QLineEdit()
        self.username.setPlaceholderText("none")
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setPlaceholderText("kept in memory only, never saved")
        self.ca_bundle = QLineEdit()
        self.ca_bundle.setPlaceholderText("system certificates")
        browse = QPushButton("…")
        browse.setToolTip("Choose the hospital's CA bundle (PEM)")
        browse.clicked.connect(self._browse_ca)
        self.verify = QCheckBox("Verify the TLS certificate")
        self.verify.setChecked(True)
        self.timeout = QDoubleSpinBox()
        self.timeout.setRange(1.0, 600.0)
        self.timeout.setSuffix(" s")
        self.timeout.setValue(30.0)
        self.save_button = QPushButton("Save server")
        self.save_button.clicked.connect(self.save)
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(self.remove)

        layout = QFormLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(self.combo, 1)
        row.addWidget(self.save_button)
        row.addWidget(self.remove_button)
        layout.addRow("Server", row)
        layout.addRow("URL", self.url)
        layout.addRow("Name", self.name)
        credentials = QHBoxLayout()
        credentials.addWidget(self.username)
        credentials.addWidget(self.password)
        layout.addRow("User / password", credentials)
        ca_row = QHBoxLayout()
        ca_row.addWidget(self.ca_bundle, 1)
        ca_row.addWidget(browse)
        ca_row.addWidget(self.verify)
        layout.addRow("CA bundle", ca_row)
        layout.addRow("Timeout", self.timeout)

        self.combo.currentIndexChanged.connect(self._chosen)
        self.reload()

    # -- the saved list -----------------------------------------------------------------------
    def reload(self, select: PacsServer | None = None) -> None:
        """Refill the combo from the saved list and choose ``select`` (else the first entry)."""
        self._saved = self.store.servers()
        self.combo.blockSignals(True)
        try:
            self.combo.clear()
            for server in self._saved:
                self.combo.addItem(server.label)
            self.combo.addItem(NEW_SERVER)
            index = self._index_of(select) if select is not None else 0
            self.combo.setCurrentIndex(index)
        finally:
            self.combo.blockSignals(False)
        self._chosen(self.combo.currentIndex())

    def _index_of(self, server: PacsServer) -> int:
        found = self.store.find(server)
        return self._saved.index(found) if found in self._saved else 0

    @property
    def chosen(self) -> PacsServer | None:
        """The saved server the combo shows (None for "New…")."""
        index = self.combo.currentIndex()
        return self._saved[index] if 0 <= index < len(self._saved) else None

    def choose_new(self) -> None:
        """Choose "New…" (empty fields)."""
        self.combo.setCurrentIndex(len(self._saved))

    @Slot(int)
    def _chosen(self, _index: int) -> None:
        self.set_fields(self.chosen)
        self.remove_button.setEnabled(self.chosen is not None)

    def set_fields(self, server: PacsServer | None) -> None:
        """Show ``server``'s settings (empty for None); the password is cleared."""
        server = server or PacsServer("")
        self.url.setText(server.url)
        self.name.setText(server.name)
        self.username.setText(server.username or "")
        self.password.clear()
        self.verify.setChecked(server.verify is not False)
        self.ca_bundle.setText(server.verify if isinstance(server.verify, str) else "")
        self.timeout.setValue(server.timeout)

    # -- the server the fields describe -------------------------------------------------------
    def server(self) -> PacsServer:
        """The server the fields describe, with the password (if any) attached in memory.

        Raises
        ------
        ValueError
            No URL, not an http(s) DICOMweb URL, or a CA bundle that does not exist.
        """
        url = self.url.text().strip()
        if not url:
            raise ValueError("enter the server's DICOMweb URL (e.g. https://pacs/dicom-web)")
        if not is_url(url):
            raise ValueError("the server URL must start with http:// or https://")
        ca = self.ca_bundle.text().strip()
        if ca and not os.path.isfile(ca):
            raise ValueError("the CA bundle file does not exist")
        verify: bool | str = (ca or True) if self.verify.isChecked() else False
        server = server_from_url(
            url, name=self.name.text().strip(), verify=verify, timeout=self.timeout.value()
        )
        username = self.username.text().strip()
        if username:
            server = replace(server, username=username)
        password = self.password.text() or server.credentials.password
        return server.with_credentials(Credentials(password=password or None))

    @Slot()
    def save(self) -> PacsServer | None:
        """Save the fields (the password excluded); the saved entry, or None (``problem``)."""
        try:
            server = self.server()
            chosen = self.chosen
            stored = self.store.add(server) if chosen is None else self.store.update(chosen, server)
        except (ValueError, KeyError, WorkstationError) as error:
            self.problem.emit(f"cannot save the server: {_reason(error)}")
            return None
        password = self.password.text()
        self.reload(select=stored)
        self.password.setText(password)  # the same server stays chosen: keep what was typed
        self.saved.emit(stored)
        return stored

    @Slot()
    def remove(self) -> bool:
        """Forget the chosen saved server; True if one was removed."""
        chosen = self.chosen
        if chosen is None:
            return False
        try:
            removed = self.store.remove(chosen)
        except WorkstationError as error:
            self.problem.emit(f"cannot remove the server: {_reason(error)}")
            return False
        self.reload()
        return removed

    @Slot()
    def _browse_ca(self) -> None:
        path, _filter = QFileDialog.getOpenFileName(
            self, "CA bundle", self.ca_bundle.text(), "Certificates (*.pem *.crt *.cer);;All (*)"
        )
        if path:
            self.ca_bundle.setText(path)
            self.verify.setChecked(True)


def _reason(error: BaseException) -> str:
    if isinstance(error, KeyError):
        return "it is no longer in the saved list"
    return str(error) or type(error).__name__

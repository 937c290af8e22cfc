"""The PACS dialog's searches as plain worker tasks (Qt-free): studies a page at a time, and
the series of one study.

Each task connects with :func:`~workstation.workflow.remote.connect` (the server's in-memory
credentials) and lets the engine's :class:`~workstation.dicom.dicomweb.DicomwebError` through,
its message prefixed with the kind of failure ("server unreachable: cannot connect to ...",
"authentication failed: ... refused the credentials ..."), for the dialog's status line.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from workstation.core.tasks import CancelToken, ProgressFn
from workstation.dicom.dicomweb import (
    AuthenticationError,
    BadResponseError,
    DicomwebError,
    DicomwebNotFoundError,
    DicomwebTimeoutError,
    SeriesRecord,
    ServerError,
    ServerUnreachableError,
    StudyRecord,
    TlsError,
)
from workstation.dicom.dicomweb.query import date_value
from workstation.workflow.remote import PacsServer, connect

__all__ = ["StudyQuery", "list_series", "search_page"]

_HEADLINES: tuple[tuple[type[DicomwebError], str], ...] = (
    (TlsError, "TLS certificate not trusted"),
    (ServerUnreachableError, "server unreachable"),
    (DicomwebTimeoutError, "server timed out"),
    (AuthenticationError, "authentication failed"),
    (DicomwebNotFoundError, "not found"),
    (ServerError, "server error"),
    (BadResponseError, "bad response"),
)


@dataclass(frozen=True)
class StudyQuery:
    """The search form's filters, snapshot on the GUI thread (dates ``YYYYMMDD``/ISO)."""

    patient_name: str = ""
    patient_id: str = ""
    date_from: str = ""
    date_to: str = ""
    modalities: tuple[str, ...] = ()
    fuzzy: bool = False

    def filters(self) -> dict[str, Any]:
        """Keyword arguments of :meth:`DicomwebClient.search_studies`.

        Raises
        ------
        ValueError
            A date is not ``YYYYMMDD`` or ``YYYY-MM-DD``.
        """
        dates = (self.date_from or None, self.date_to or None)
        study_date = None if dates == (None, None) else dates
        if study_date is not None:
            date_value(study_date)  # check now: a bad date is the user's to fix, not a failure
        return {
            "patient_name": self.patient_name or None,
            "patient_id": self.patient_id or None,
            "study_date": study_date,
            "modalities": list(self.modalities) or None,
            "fuzzy": self.fuzzy,
        }


@contextmanager
def _headlined() -> Iterator[None]:
    """Prefix a DICOMweb error's message with what kind of failure it is."""
    try:
        yield
    except DicomwebError as error:
        headline = next((h for kind, h in _HEADLINES if isinstance(error, kind)), "failed")
        raise type(error)(
            f"{headline}: {error}", url=error.url, status=error.status, uid=error.uid
        ) from error


def search_page(
    server: PacsServer,
    query: StudyQuery,
    *,
    offset: int,
    limit: int,
    progress: ProgressFn,
    cancel: CancelToken,
) -> list[StudyRecord]:
    """One page of studies matching ``query`` (a worker task)."""
    progress(0, 0, f"searching {server.label}")
    with _headlined(), connect(server) as client:
        return client.search_studies(**query.filters(), limit=limit, offset=offset, cancel=cancel)


def list_series(
    server: PacsServer, study_uid: str, *, progress: ProgressFn, cancel: CancelToken
) -> list[SeriesRecord]:
    """The series of one study (a worker task)."""
    progress(0, 0, "listing series")
    with _headlined(), connect(server) as client:
        return client.search_series(study_uid, cancel=cancel)

"""Retrieve a series or a study to DICOM files; a rerun fetches only what is missing.

Instances are retrieved as stored (``transfer-syntax=*``) and written to ``<sop uid>.dcm``
through a temporary file and a rename: a file under its final name is always complete, so a
rerun skips it. A first fetch streams the whole series in one request (2-3x faster on Orthanc);
a rerun, or what a broken-off series stream left, takes one request per missing instance over
``connections`` concurrent connections. An instance the server no longer has is reported;
server-level failures (unreachable, credentials, 5xx, cut transfers after retries) stop the
fetch with their :class:`DicomwebError`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from workstation.core.files import write_atomic
from workstation.core.tasks import CancelToken, ProgressFn, check_cancel, throttled
from workstation.dicom.dicomweb.client import DicomwebClient
from workstation.dicom.dicomweb.errors import (
    DicomwebNotFoundError,
    DicomwebTimeoutError,
    TruncatedResponseError,
)

_PAGE = 1000


@dataclass
class FetchReport:
    """What a fetch did: files written, files already there, instances that failed."""

    folder: Path
    written: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (SOP instance UID, reason)

    @property
    def complete(self) -> bool:
        """True when every instance is on disk."""
        return not self.failed

    def merge(self, other: FetchReport) -> None:
        """Add another report's counts (a study fetch sums its series)."""
        self.written += other.written
        self.skipped += other.skipped
        self.failed.extend(other.failed)


def _instance_uids(
    client: DicomwebClient, study_uid: str, series_uid: str, cancel: CancelToken | None
) -> list[str]:
    uids: list[str] = []
    while True:
        page = client.search_instances(
            study_uid, series_uid, limit=_PAGE, offset=len(uids), cancel=cancel
        )
        uids.extend(record.sop_instance_uid for record in page)
        if len(page) < _PAGE:
            return list(dict.fromkeys(uids))


def fetch_series(
    client: DicomwebClient,
    study_uid: str,
    series_uid: str,
    out_dir: str | os.PathLike[str],
    *,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    connections: int = 4,
    transfer_syntax: str | None = "*",
) -> FetchReport:
    """Write every instance of a series to ``out_dir/<SOPInstanceUID>.dcm``.

    Raises
    ------
    DicomwebError
        The server could not be used (the files written so far are complete and kept).
    Cancelled
    """
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    report = FetchReport(folder)
    report_progress = throttled(progress)
    uids = _instance_uids(client, study_uid, series_uid, cancel)
    missing = [uid for uid in uids if not (folder / f"{uid}.dcm").is_file()]
    report.skipped = len(uids) - len(missing)
    total = len(uids)
    report_progress(report.skipped, total, "fetching instances")
    if len(missing) > 1 and len(missing) == total:
        wanted = set(missing)
        for sop in _stream_series(client, study_uid, series_uid, folder, transfer_syntax, cancel):
            if sop in wanted:
                wanted.discard(sop)
                report.written += 1
                report_progress(report.written, total, "fetching instances")
        missing = [uid for uid in missing if uid in wanted]

    def fetch(sop: str) -> str | None:
        check_cancel(cancel)
        try:
            part = client.retrieve_instance(
                study_uid, series_uid, sop, transfer_syntax=transfer_syntax, cancel=cancel
            )
        except DicomwebNotFoundError:
            return "the server no longer has this instance (HTTP 404)"
        _write_atomically(folder / f"{sop}.dcm", part.content)
        return None

    for sop, reason in _run(fetch, missing, connections, cancel):
        if reason is None:
            report.written += 1
        else:
            report.failed.append((sop, reason))
        report_progress(report.skipped + report.written + len(report.failed), total, "fetching")
    return report


def _stream_series(
    client: DicomwebClient,
    study_uid: str,
    series_uid: str,
    folder: Path,
    transfer_syntax: str | None,
    cancel: CancelToken | None,
) -> Iterator[str]:
    """Write the instances of one series response as they complete; their UIDs. A stream that
    breaks off just ends (the caller fetches what is missing one by one)."""
    from workstation.dicom.dicomweb._pixels import Instance

    try:
        for part in client.iter_instances(
            study_uid, series_uid, transfer_syntax=transfer_syntax, cancel=cancel
        ):
            sop = Instance.read(part.content).sop_instance_uid
            if sop:
                _write_atomically(folder / f"{sop}.dcm", part.content)
                yield sop
    except (TruncatedResponseError, DicomwebTimeoutError):
        return


def fetch_study(
    client: DicomwebClient,
    study_uid: str,
    out_dir: str | os.PathLike[str],
    *,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    connections: int = 4,
) -> FetchReport:
    """Write every series of a study to ``out_dir/<SeriesInstanceUID>/<SOPInstanceUID>.dcm``."""
    report = FetchReport(Path(out_dir))
    for record in client.search_series(study_uid, cancel=cancel):
        part = fetch_series(
            client,
            study_uid,
            record.series_uid,
            Path(out_dir) / record.series_uid,
            progress=progress,
            cancel=cancel,
            connections=connections,
        )
        report.merge(part)
    return report


def _run(
    fetch: Callable[[str], str | None],
    uids: list[str],
    connections: int,
    cancel: CancelToken | None,
) -> Iterator[tuple[str, str | None]]:
    if connections <= 1 or len(uids) <= 1:
        for uid in uids:
            yield uid, fetch(uid)
        return
    with ThreadPoolExecutor(max(1, connections), thread_name_prefix="dicomweb-fetch") as pool:
        futures: dict[Future[str | None], str] = {pool.submit(fetch, uid): uid for uid in uids}
        pending = set(futures)
        try:
            while pending:
                finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                for future in finished:
                    yield futures[future], future.result()
                check_cancel(cancel)
        finally:
            for future in pending:
                future.cancel()


def _write_atomically(path: Path, data: bytes) -> None:
    write_atomic(path, data, prefix=".part-", durable=False)

"""The recently opened studies: a short list of sources, persisted as JSON (Qt-free).

::

    recent = RecentStudies()                 # <home>/recent.json (WORKSTATION_HOME honoured)
    recent.add("/data/study1")               # after a study opened: most recent first
    for entry in recent.entries():           # RecentStudy(source, opened_at, exists)
        ...

Only the source (a folder, a file or a DICOMweb URL) and the time it was opened are stored:
never a patient name, ID or UID. A source can still contain a patient's name (a folder named
after them), so sources are never logged.

Every call reads the file afresh and every change is written atomically (a private temporary
file in the same folder, mode 0600, then :func:`os.replace`), so two instances (or two
processes) on one file never leave it half-written: the later write wins. A file that is
missing gives an empty list; one that is corrupt or unreadable gives an empty list and a logged
warning (which names the problem, never the file's contents). A list that cannot be saved
raises :class:`RecentStudiesError` (a :class:`~workstation.core.errors.WorkstationError`).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from urllib.request import url2pathname

from workstation.config import paths
from workstation.core.errors import WorkstationError
from workstation.core.files import write_atomic

__all__ = [
    "MAX_ENTRIES",
    "RecentStudies",
    "RecentStudiesError",
    "RecentStudy",
    "is_url",
    "normalise_source",
]

log = logging.getLogger(__name__)

#: How many sources the list keeps.
MAX_ENTRIES = 10
_FORMAT_VERSION = 1
_FILE_NAME = "recent.json"


class RecentStudiesError(WorkstationError):
    """The list could not be saved (``path``: its file); the study itself opened fine."""


def is_url(source: str) -> bool:
    """Whether ``source`` is a URL (a scheme and a host), not a local path."""
    parts = urlsplit(source.strip())
    # A one-letter scheme is a Windows drive ("C:\\data"), not a URL.
    return len(parts.scheme) > 1 and bool(parts.netloc) and parts.scheme.lower() != "file"


def normalise_source(source: str | os.PathLike[str]) -> str:
    """The canonical form of a source, which de-duplicates the list.

    URLs get a lower-case scheme and host and lose a trailing ``/`` (the path, query and
    fragment are kept as they are). ``file://`` URLs and paths become absolute, normalised
    local paths (``~`` expanded; symbolic links are kept, not resolved).
    """
    text = os.fspath(source).strip()
    if not text:
        raise ValueError("a recent study needs a source")
    if is_url(text):
        parts = urlsplit(text)
        path = parts.path.rstrip("/")
        return urlunsplit(
            (parts.scheme.lower(), parts.netloc.lower(), path, parts.query, parts.fragment)
        )
    parts = urlsplit(text)
    if parts.scheme.lower() == "file":
        text = url2pathname(parts.path)
    return os.path.normcase(os.path.abspath(os.path.expanduser(text)))


@dataclass(frozen=True)
class RecentStudy:
    """One entry of the list.

    Attributes
    ----------
    source
        The folder, file or URL, normalised (:func:`normalise_source`).
    opened_at
        When it was last opened: ISO 8601 with the UTC offset.
    exists
        False only for a local path that is gone; True for present paths and for URLs (which
        are not checked).
    """

    source: str
    opened_at: str
    exists: bool

    @property
    def is_url(self) -> bool:
        """Whether the source is a URL (DICOMweb), not a local path."""
        return is_url(self.source)


def _now() -> datetime:
    return datetime.now(UTC)


class RecentStudies:
    """The recently opened studies, most recent first, at most :data:`MAX_ENTRIES`.

    Parameters
    ----------
    path
        The JSON file; ``None``: ``recent.json`` in the workstation home
        (:func:`workstation.config.paths`).
    limit
        How many entries to keep.
    clock
        Returns the current time (aware); injected by tests.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        limit: int = MAX_ENTRIES,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.path = Path(path) if path is not None else paths().home / _FILE_NAME
        self.limit = limit
        self._clock = clock
        self._lock = threading.Lock()

    # -- the public face ------------------------------------------------------------------------
    def entries(self) -> list[RecentStudy]:
        """The list, most recent first."""
        with self._lock:
            records = self._read()
        return [
            RecentStudy(source, opened_at, is_url(source) or os.path.exists(source))
            for source, opened_at in records
        ]

    def add(self, source: str | os.PathLike[str]) -> RecentStudy:
        """Put ``source`` first (moving it up when already listed) and drop the oldest beyond
        the limit; returns the new entry."""
        normal = normalise_source(source)
        opened_at = self._clock().astimezone(UTC).isoformat(timespec="seconds")
        with self._lock:
            records = [(s, t) for s, t in self._read() if s != normal]
            self._write([(normal, opened_at), *records][: self.limit])
        return RecentStudy(normal, opened_at, is_url(normal) or os.path.exists(normal))

    def remove(self, source: str | os.PathLike[str]) -> bool:
        """Remove ``source``; True if it was listed."""
        normal = normalise_source(source)
        with self._lock:
            records = self._read()
            kept = [(s, t) for s, t in records if s != normal]
            if len(kept) == len(records):
                return False
            self._write(kept)
        return True

    def clear(self) -> None:
        """Empty the list."""
        with self._lock:
            self._write([])

    # -- the file -------------------------------------------------------------------------------
    def _read(self) -> list[tuple[str, str]]:
        """``(source, opened_at)`` pairs from the file; empty when missing or unusable."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError) as error:
            log.warning(
                "recent studies file %s unreadable (%s); list empty", self.path, _kind(error)
            )
            return []
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            log.warning(
                "recent studies file %s is not valid JSON (line %d, column %d); list empty",
                self.path,
                error.lineno,
                error.colno,
            )
            return []
        records = _records(document)
        if records is None:
            log.warning("recent studies file %s has an unknown layout; list empty", self.path)
            return []
        return records[: self.limit]

    def _write(self, records: list[tuple[str, str]]) -> None:
        """Replace the file atomically with ``records``.

        Raises
        ------
        RecentStudiesError
            The folder or the file cannot be written.
        """
        try:
            self._replace(records)
        except OSError as error:
            raise RecentStudiesError(
                f"cannot save the recent studies list: {_kind(error)}", path=self.path
            ) from error

    def _replace(self, records: list[tuple[str, str]]) -> None:
        document = {
            "version": _FORMAT_VERSION,
            "entries": [{"source": s, "opened_at": t} for s, t in records],
        }
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        text = json.dumps(document, indent=1, ensure_ascii=False) + "\n"
        write_atomic(self.path, text.encode("utf-8"), prefix=".recent-")


def _records(document: Any) -> list[tuple[str, str]] | None:
    """The valid ``(source, opened_at)`` pairs of a parsed file; None when it is not ours."""
    if not isinstance(document, dict) or not isinstance(document.get("entries"), list):
        return None
    records: list[tuple[str, str]] = []
    seen: set[str] = set()
    skipped = 0
    for entry in document["entries"]:
        source = entry.get("source") if isinstance(entry, dict) else None
        opened_at = entry.get("opened_at") if isinstance(entry, dict) else None
        if isinstance(source, str) and source and isinstance(opened_at, str):
            if source not in seen:
                seen.add(source)
                records.append((source, opened_at))
        else:
            skipped += 1
    if skipped:
        log.warning(
            "recent studies: %d malformed entr%s ignored", skipped, "y" if skipped == 1 else "ies"
        )
    return records


def _kind(error: BaseException) -> str:
    """What went wrong, without the error's message (which may quote the file's bytes)."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return type(error).__name__

"""Structured JSON logs, with a filter that masks PHI before anything is written.

::

    with configure_logging(level=logging.INFO) as setup:   # <home>/logs/workstation.jsonl
        log.info("opened series", extra={"series": key, "patient_id": pid})  # pid is masked
        log.info("loading %s", phi(path))                   # an explicit PHI value: "[PHI]"
        with setup.phi_filter.known([patient_name, patient_id]):
            ...                                             # these strings are masked anywhere

Each line is one JSON object: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``,
then every ``extra`` field, and ``exception`` / ``stack`` when present. The file rotates at
``max_bytes`` (``backup_count`` old files are kept).

What :class:`PhiFilter` masks, in the message (after %-formatting), in every string among the
extras (nested dicts and lists too), and in formatted exceptions and stacks:

* values wrapped with :func:`phi` (shown as ``[PHI]`` even outside logging);
* every value of an extra whose key names an identifier (``patient_name``, ``patient_id``,
  ``birth_date``, ``accession``, ``mrn``, ``address``, ``email``, ``phone`` ...:
  :data:`IDENTIFYING_KEYS`);
* strings registered with :meth:`PhiFilter.known` (e.g. the open patient's name and id);
* DICOM person names (``DOE^JOHN``, any word joined by ``^``);
* calendar dates (``19610415``, ``1961-04-15``, ``15/04/1961``, ``15.04.1961``): a filter
  cannot tell a birth date from any other date, and all dates tied to a patient are
  identifiers (HIPAA Safe Harbor), so all are masked; the record's own ``time`` is not;
* e-mail addresses, and phone-like numbers (a leading ``+``, or groups of digits joined by
  dashes, optionally after a bracketed area code: ``+1 555 123 4567``, ``555-123-4567``,
  ``(555) 123-4567``; an SSN-shaped ``123-45-6789`` too);
* DICOM UIDs (``1.2.840...`` with five or more components), when ``mask_uids=True``.

What it cannot catch: a name not in DICOM form ("John Doe", "Doe, John") unless registered with
:meth:`PhiFilter.known`; the words of a name component with spaces away from the caret ("VAN
DER BERG^JAN" leaves "VAN DER"); phone numbers written with spaces only; ids that look like
ordinary words or short numbers; PHI inside non-string objects beyond what their ``repr``
shows to the patterns; anything logged through a handler this module did not install. The
filter is a safety net, not a guarantee: code must not log PHI in the first place (log keys,
counts and pseudonymous ids).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import logging.handlers
import re
import threading
import traceback
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Final

__all__ = [
    "DEFAULT_PATH",
    "IDENTIFYING_KEYS",
    "MASK",
    "JsonFormatter",
    "LogSetup",
    "Phi",
    "PhiFilter",
    "configure_logging",
    "mask_text",
    "phi",
]

MASK: Final = "[PHI]"
LOG_FILE = "workstation.jsonl"
IDENTIFYING_KEYS: Final = frozenset(
    {
        "patient",
        "patient_name",
        "patientname",
        "patient_id",
        "patientid",
        "other_patient_ids",
        "birth_date",
        "birthdate",
        "patient_birth_date",
        "dob",
        "date_of_birth",
        "accession",
        "accession_number",
        "accessionnumber",
        "mrn",
        "address",
        "patient_address",
        "email",
        "phone",
        "telephone",
        "ssn",
        "referring_physician",
        "physician",
        "operator",
        "institution",
    }
)
# Attributes every LogRecord has; anything else on a record came from ``extra``.
_RECORD_FIELDS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class _DefaultPath:
    def __repr__(self) -> str:
        return "DEFAULT_PATH"


DEFAULT_PATH: Final = _DefaultPath()  # <home>/logs/workstation.jsonl


class Phi:
    """A value that is PHI: it prints as ``[PHI]`` wherever it goes (logs, f-strings, repr)."""

    __slots__ = ("_value",)

    def __init__(self, value: object) -> None:
        self._value = value

    def __str__(self) -> str:
        return MASK

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        return MASK


def phi(value: object) -> Phi:
    """Mark ``value`` as PHI before passing it to a logger (``log.info("%s", phi(name))``)."""
    return value if isinstance(value, Phi) else Phi(value)


_PERSON_NAME = re.compile(r"[\w'.-]*\^[\w'.^=-]*")
_DATE = re.compile(
    r"(?<![\d.])(?:(?:19|20)\d\d(?:-[01]\d-[0-3]\d|[01]\d[0-3]\d)"
    r"|[0-3]?\d[/.][01]?\d[/.](?:19|20)\d\d)(?![\d.])"
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(
    r"(?<![\w.])(?:\+\d[\d ()-]{6,}\d"  # +1 555 123 4567
    r"|\(\d{2,4}\) ?\d{2,4}(?:-\d{2,4}){1,3}"  # (555) 123-4567
    r"|\d{2,4}(?:-\d{2,4}){2,4})(?![\w.])"  # 555-123-4567, 123-45-6789
)
_UID = re.compile(r"(?<![\w.])[12](?:\.\d+){4,}(?![\w.])")


def mask_text(text: str, *, mask_uids: bool = False, known: Iterable[str] = ()) -> str:
    """``text`` with the PHI shapes listed in the module docstring replaced by ``[PHI]``."""
    for value in sorted(known, key=len, reverse=True):
        if value:
            text = re.sub(re.escape(value), MASK, text, flags=re.IGNORECASE)
    patterns = [_EMAIL, _PERSON_NAME, _DATE, _PHONE]
    if mask_uids:
        patterns.insert(0, _UID)
    for pattern in patterns:
        text = pattern.sub(_mask_match, text)
    return text


def _mask_match(match: re.Match[str]) -> str:
    text = match.group(0)
    if text == MASK or (text.count("^") == len(text)):  # a lone caret is not a name
        return text
    return MASK


class PhiFilter(logging.Filter):
    """Masks PHI in a record in place (see the module docstring); never drops a record.

    Install it on handlers (not loggers) so that records propagated from every logger pass
    through it. Masking is idempotent, so two filtered handlers are fine.
    """

    def __init__(self, *, mask_uids: bool = False) -> None:
        super().__init__()
        self.mask_uids = mask_uids
        self._known: list[str] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def known(self, values: Iterable[object]) -> Iterator[None]:
        """Mask these exact strings (case-insensitive) anywhere while the block runs."""
        added = [str(v).strip() for v in values if v is not None and len(str(v).strip()) >= 2]
        with self._lock:
            self._known.extend(added)
        try:
            yield
        finally:
            with self._lock:
                for value in added:
                    self._known.remove(value)

    def mask(self, text: str) -> str:
        """``text`` masked with this filter's settings."""
        with self._lock:
            known = list(self._known)
        return mask_text(text, mask_uids=self.mask_uids, known=known)

    def _value(self, value: Any, *, identifying: bool = False) -> Any:
        if isinstance(value, Phi):
            return MASK
        if identifying and value is not None:
            return MASK
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, dict):
            return {k: self._value(v, identifying=_identifying(k)) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self._value(v) for v in value]
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int | float):  # 19610415 is a date whatever its type
            return value if self.mask(str(value)) == str(value) else MASK
        return self.mask(repr(value))

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # bad %-args: log the template alone, masked
            message = str(record.msg)
        record.msg, record.args = self.mask(message), None
        for key in set(record.__dict__) - _RECORD_FIELDS:
            record.__dict__[key] = self._value(record.__dict__[key], identifying=_identifying(key))
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        record.exc_info = None  # formatters would re-format the raw exception
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)
        return True


def _identifying(key: object) -> bool:
    return str(key).lower().replace("-", "_") in IDENTIFYING_KEYS


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, extras, exception, stack."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in sorted(set(record.__dict__) - _RECORD_FIELDS):
            if key not in document:
                document[key] = record.__dict__[key]
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            document["exception"] = record.exc_text
        if record.stack_info:
            document["stack"] = record.stack_info
        return json.dumps(document, default=str, ensure_ascii=False)


class LogSetup:
    """The handlers :func:`configure_logging` installed; :meth:`close` removes them."""

    def __init__(
        self, handlers: list[logging.Handler], phi_filter: PhiFilter, previous_level: int
    ) -> None:
        self.handlers = handlers
        self.phi_filter = phi_filter
        self._previous_level = previous_level

    @property
    def path(self) -> Path | None:
        """The JSON log file, if one is written."""
        for handler in self.handlers:
            if isinstance(handler, logging.FileHandler):
                return Path(handler.baseFilename)
        return None

    def close(self) -> None:
        """Remove and close the handlers; restore the root logger's level."""
        root = logging.getLogger()
        for handler in self.handlers:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(self._previous_level)
        logging.captureWarnings(False)

    def __enter__(self) -> LogSetup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def configure_logging(
    *,
    level: int | str = logging.INFO,
    json_path: str | Path | _DefaultPath | None = DEFAULT_PATH,
    stream: IO[str] | None = None,
    mask_uids: bool = False,
    max_bytes: int = 10 * 1024 * 1024,
    backup_count: int = 5,
    capture_warnings: bool = True,
) -> LogSetup:
    """Send every log record (root logger) through a :class:`PhiFilter` to JSON lines.

    Parameters
    ----------
    level
        The root logger's level.
    json_path
        The JSON-lines file (rotated at ``max_bytes``); :data:`DEFAULT_PATH` means
        ``<home>/logs/workstation.jsonl`` (``workstation.config.paths().logs``); ``None``: no file.
    stream
        Also write the JSON lines here (e.g. ``sys.stderr``).
    mask_uids
        Mask DICOM UIDs too.
    capture_warnings
        Route :mod:`warnings` (pydicom's, which may quote values) through the same handlers.

    Calling it again replaces the handlers an earlier call installed.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_workstation_json", False):
            root.removeHandler(handler)
            handler.close()
    phi_filter = PhiFilter(mask_uids=mask_uids)
    formatter = JsonFormatter()
    handlers: list[logging.Handler] = []
    if isinstance(json_path, _DefaultPath):
        from workstation.config import paths

        layout = paths()
        json_path = layout.ensure(layout.logs) / LOG_FILE
    if json_path is not None:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(
                json_path, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8"
            )
        )
    if stream is not None:
        handlers.append(logging.StreamHandler(stream))
    for handler in handlers:
        handler.addFilter(phi_filter)
        handler.setFormatter(formatter)
        handler._workstation_json = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    previous = root.level
    root.setLevel(level if isinstance(level, int) else level.upper())
    if capture_warnings:
        logging.captureWarnings(True)
    return LogSetup(handlers, phi_filter, previous)

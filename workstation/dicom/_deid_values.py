"""Values the de-identifier writes: keyed-hash UIDs, pseudonyms and date offsets, dummies, and
the descriptor cleaner.

Every keyed value is HMAC-SHA256 under the site secret with a domain label, so the same input
gives the same output at one site (a patient's studies stay linked, a series stays one series)
and nothing can be linked across sites or reversed without the secret.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Iterable
from typing import Any

__all__ = [
    "Scrubber",
    "date_offset_days",
    "dummy_value",
    "pseudonym",
    "remap_uid",
    "shift_date",
    "shift_datetime",
]

UID_ROOT = "2.25."  # PS3.5 B.2: a UUID as one integer under 2.25
MAX_UID_LENGTH = 64


def _mac(secret: bytes, label: bytes, value: str) -> bytes:
    return hmac.new(secret, label + b"\0" + value.encode("utf-8"), hashlib.sha256).digest()


def remap_uid(uid: str, secret: bytes) -> str:
    """The site's replacement for ``uid``: ``2.25.<int>`` of a UUID built from the keyed hash.

    The 128-bit integer carries the RFC 9562 version-8 (custom) and variant bits, so it is a
    valid UUID and the UID at most 44 characters long. Padding (trailing space or NUL) is
    ignored; an empty UID stays empty.
    """
    uid = uid.strip(" \0")
    if not uid:
        return ""
    raw = bytearray(_mac(secret, b"uid", uid)[:16])
    raw[6] = (raw[6] & 0x0F) | 0x80  # version 8
    raw[8] = (raw[8] & 0x3F) | 0x80  # variant 10xx
    return f"{UID_ROOT}{int.from_bytes(raw, 'big')}"


def pseudonym(key: str, secret: bytes) -> str:
    """A stable pseudonymous patient id (``ANON`` + 16 hex digits; fits SH, LO and PN)."""
    return "ANON" + _mac(secret, b"patient", key).hex()[:16].upper()


def date_offset_days(key: str, secret: bytes, max_days: int) -> int:
    """The patient's date shift: a whole number of days in ``[-max_days, -1]``.

    Always into the past, never zero, the same for every study with the same ``key``.
    """
    value = int.from_bytes(_mac(secret, b"date-offset", key)[:8], "big")
    return -(1 + value % max_days)


def _parse_da(text: str) -> dt.date | None:
    text = text.strip()
    for fmt in ("%Y%m%d", "%Y.%m.%d"):  # the second: ACR-NEMA dates some files still carry
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


def shift_date(text: str, days: int) -> str | None:
    """A DA value moved by ``days``; ``None`` when it is not a full date (caller falls back)."""
    date = _parse_da(text)
    if date is None:
        return None
    try:
        return (date + dt.timedelta(days=days)).strftime("%Y%m%d")
    except OverflowError:
        return None


def shift_datetime(text: str, days: int) -> str | None:
    """A DT value whose date part (YYYYMMDD) moved by ``days``; the time and offset are kept.

    ``None`` when the value has no full date (e.g. a year alone).
    """
    text = text.strip()
    if len(text) < 8 or not text[:8].isdigit():
        return None
    shifted = shift_date(text[:8], days)
    return None if shifted is None else shifted + text[8:]


_DUMMY_TEXT = "ANONYMOUS"
_DUMMIES: dict[str, Any] = {
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "AS": "000Y",
    "IS": "0",
    "DS": "0",
    "UR": "",
    "AT": None,
}
_NUMERIC = {"US", "SS", "UL", "SL", "UV", "SV", "FL", "FD"}
_BINARY = {"OB", "OW", "OF", "OD", "OL", "OV", "UN"}


def dummy_value(vr: str) -> Any:
    """A harmless value valid for ``vr`` (the ``D`` action); SQ and UI are handled apart."""
    if vr in _DUMMIES:
        return _DUMMIES[vr]
    if vr in _NUMERIC:
        return 0
    if vr in _BINARY:
        return b""
    return _DUMMY_TEXT  # AE, CS, LO, LT, PN, SH, ST, UC, UT


_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_DATE = re.compile(
    r"(?<!\d)(?:(?:19|20)\d\d[-/.]?[01]\d[-/.]?[0-3]\d|[0-3]?\d[-/.][01]?\d[-/.](?:19|20)\d\d)(?!\d)"
)
_LONG_NUMBER = re.compile(r"(?<![\w.])\+?\d(?:[ ()-]?\d){5,}(?![\w.])")  # ids, MRNs, phones
_SPLIT = re.compile(r"[\^=\s,;/]+")
MIN_TOKEN = 3


class Scrubber:
    """Cleans descriptors (the Clean Descriptors option) of what identifies the patient.

    Free text cannot be cleaned perfectly; this removes (a) every identifying value the same
    dataset carries in attributes the profile removes or replaces (names and their components,
    ids, accession numbers, institution names, dates in the usual spellings), matched without
    regard to case, and (b) anything shaped like an e-mail address, a calendar date, or a number
    of six digits or more (ids, phone numbers). Tokens shorter than three characters are not
    matched (two-letter name parts survive; they also occur in ordinary descriptors like "T1").
    """

    def __init__(self, values: Iterable[str]) -> None:
        tokens: set[str] = set()
        for value in values:
            text = value.strip()
            if len(text) >= MIN_TOKEN:
                tokens.add(text)
            tokens.update(t for t in _SPLIT.split(text) if len(t) >= MIN_TOKEN)
            date = _parse_da(text) if len(text) == 8 else None
            if date is not None:
                tokens.update(
                    date.strftime(f) for f in ("%Y-%m-%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y")
                )
        ordered = sorted(tokens, key=len, reverse=True)  # longest first
        self._tokens = (
            re.compile("|".join(re.escape(t) for t in ordered), re.IGNORECASE) if ordered else None
        )

    def clean(self, text: str) -> str:
        """``text`` with identifying parts replaced by ``*``."""
        for pattern in (_EMAIL, _DATE, _LONG_NUMBER):  # shapes first: tokens would split them
            text = pattern.sub("*", text)
        if self._tokens is not None:
            text = self._tokens.sub("*", text)
        return text

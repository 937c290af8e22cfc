"""QIDO-RS: search filters into query strings, DICOM JSON results into records.

Filters follow PS3.18 §8.3.4: ``*`` and ``?`` wildcards, date ranges ``YYYYMMDD-YYYYMMDD`` (either
end open), comma-separated value lists (``ModalitiesInStudy=CT,MR``), ``limit``/``offset`` paging,
``fuzzymatching=true``. Values are percent-encoded except the characters DICOM matching uses
(``* ? ^ , -``), which are sent literally: Orthanc 1.10 does not decode ``%2A`` or ``%5E`` in
QIDO values and would match nothing. (It does not decode ``%20`` either, so a value with a space
matches nothing there; use ``?`` for the space.)
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

DateLike = dt.date | str
DateFilter = DateLike | tuple[DateLike | None, DateLike | None]

# Attributes asked for on top of each level's default return keys (PS3.18 table 6.7.1-2).
STUDY_FIELDS = ("00081030",)  # StudyDescription
SERIES_FIELDS = ("0008103E", "00180015", "00200060")  # description, body part, laterality
INSTANCE_FIELDS = ("00280008", "00280010", "00280011")  # NumberOfFrames, Rows, Columns

_SAFE = "*?^,-._~:"
_DATE = re.compile(r"\d{8}")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_RANGE = re.compile(r"(\d{8})?-(\d{8})?")


def _quote(value: object) -> str:
    return quote(str(value), safe=_SAFE)


def encode_query(params: Mapping[str, object] | Iterable[tuple[str, object]]) -> str:
    """``key=value&...``; ``None`` values are left out, sequences become one key per value."""
    items = params.items() if isinstance(params, Mapping) else params
    pairs: list[str] = []
    for key, value in items:
        if value is None:
            continue
        values = value if isinstance(value, list | tuple) else [value]
        pairs.extend(f"{_quote(key)}={_quote(v)}" for v in values)
    return "&".join(pairs)


def date_value(value: DateFilter) -> str:
    """A DICOM date or date range from a date, ``"20240131"``, ``"2024-01-31"``, a range text
    ``"20240101-20240131"`` (either end may be empty) or a ``(start, end)`` tuple (either None).
    """
    if isinstance(value, tuple):
        start, end = value
        if start is None and end is None:
            raise ValueError("a date range needs a start or an end")
        return f"{'' if start is None else _date(start)}-{'' if end is None else _date(end)}"
    text = str(value).strip()
    if _RANGE.fullmatch(text) and text != "-":
        return text
    return _date(value)


def _date(value: DateLike) -> str:
    if isinstance(value, dt.date):
        return value.strftime("%Y%m%d")
    text = str(value).strip()
    if _ISO_DATE.fullmatch(text):
        text = text.replace("-", "")
    if not _DATE.fullmatch(text):
        raise ValueError(f"not a date (YYYYMMDD or YYYY-MM-DD): {value!r}")
    return text


def name_value(name: str, *, fuzzy: bool) -> str:
    """A PatientName filter; ``fuzzy`` without wildcards matches the text anywhere in the name."""
    if fuzzy and not any(c in name for c in "*?"):
        return f"*{name}*"
    return name


# -- results --------------------------------------------------------------------------------------
def first(item: Mapping[str, Any], tag: str) -> Any:
    """The first value of ``tag`` in a DICOM JSON dataset (PN: the alphabetic form), or None."""
    values = (item.get(tag) or {}).get("Value") or []
    if not values:
        return None
    value = values[0]
    if isinstance(value, dict):  # PN
        return value.get("Alphabetic", "")
    return value


def every(item: Mapping[str, Any], tag: str) -> tuple[Any, ...]:
    """All values of ``tag`` (PN: alphabetic forms)."""
    values = (item.get(tag) or {}).get("Value") or []
    return tuple(v.get("Alphabetic", "") if isinstance(v, dict) else v for v in values)


def _text(item: Mapping[str, Any], tag: str) -> str:
    value = first(item, tag)
    return "" if value is None else str(value)


def _int(item: Mapping[str, Any], tag: str) -> int | None:
    value = first(item, tag)
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class StudyRecord:
    """One study found by :meth:`DicomwebClient.search_studies`."""

    study_uid: str
    patient_name: str
    patient_id: str
    study_date: str
    study_time: str
    accession_number: str
    description: str
    modalities: tuple[str, ...]
    series_count: int | None
    instance_count: int | None
    attributes: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> StudyRecord:
        """From a QIDO-RS study result."""
        return cls(
            study_uid=_text(item, "0020000D"),
            patient_name=_text(item, "00100010"),
            patient_id=_text(item, "00100020"),
            study_date=_text(item, "00080020"),
            study_time=_text(item, "00080030"),
            accession_number=_text(item, "00080050"),
            description=_text(item, "00081030"),
            modalities=tuple(str(v) for v in every(item, "00080061")),
            series_count=_int(item, "00201206"),
            instance_count=_int(item, "00201208"),
            attributes=item,
        )

    def to_json(self) -> dict[str, Any]:
        """A plain dict for ``--json`` output."""
        return {
            "study_uid": self.study_uid,
            "patient_name": self.patient_name,
            "patient_id": self.patient_id,
            "study_date": self.study_date,
            "study_time": self.study_time,
            "accession_number": self.accession_number,
            "description": self.description,
            "modalities": list(self.modalities),
            "series_count": self.series_count,
            "instance_count": self.instance_count,
        }


@dataclass(frozen=True)
class SeriesRecord:
    """One series found by :meth:`DicomwebClient.search_series`."""

    study_uid: str
    series_uid: str
    modality: str
    series_number: int | None
    description: str
    body_part: str
    instance_count: int | None
    attributes: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, item: Mapping[str, Any], study_uid: str = "") -> SeriesRecord:
        """From a QIDO-RS series result."""
        return cls(
            study_uid=_text(item, "0020000D") or study_uid,
            series_uid=_text(item, "0020000E"),
            modality=_text(item, "00080060"),
            series_number=_int(item, "00200011"),
            description=_text(item, "0008103E"),
            body_part=_text(item, "00180015"),
            instance_count=_int(item, "00201209"),
            attributes=item,
        )

    def to_json(self) -> dict[str, Any]:
        """A plain dict for ``--json`` output."""
        return {
            "study_uid": self.study_uid,
            "series_uid": self.series_uid,
            "modality": self.modality,
            "series_number": self.series_number,
            "description": self.description,
            "body_part": self.body_part,
            "instance_count": self.instance_count,
        }


@dataclass(frozen=True)
class InstanceRecord:
    """One instance found by :meth:`DicomwebClient.search_instances`."""

    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    instance_number: int | None
    rows: int | None
    columns: int | None
    number_of_frames: int | None
    attributes: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(
        cls, item: Mapping[str, Any], study_uid: str = "", series_uid: str = ""
    ) -> InstanceRecord:
        """From a QIDO-RS instance result."""
        return cls(
            study_uid=_text(item, "0020000D") or study_uid,
            series_uid=_text(item, "0020000E") or series_uid,
            sop_instance_uid=_text(item, "00080018"),
            sop_class_uid=_text(item, "00080016"),
            instance_number=_int(item, "00200013"),
            rows=_int(item, "00280010"),
            columns=_int(item, "00280011"),
            number_of_frames=_int(item, "00280008"),
            attributes=item,
        )

    def to_json(self) -> dict[str, Any]:
        """A plain dict for ``--json`` output."""
        return {
            "study_uid": self.study_uid,
            "series_uid": self.series_uid,
            "sop_instance_uid": self.sop_instance_uid,
            "sop_class_uid": self.sop_class_uid,
            "instance_number": self.instance_number,
            "rows": self.rows,
            "columns": self.columns,
            "number_of_frames": self.number_of_frames,
        }

"""WADO-RS metadata (DICOM JSON) into the engine's slice headers, stacks and series.

The engine reads the same attributes from a file (:mod:`workstation.dicom._skim` or pydicom);
here they come from the series metadata, before any pixel data, so a remote series is sorted,
split into stacks and checked for geometry by exactly the code that handles a local folder
(:func:`~workstation.dicom.series.build_stacks`, :class:`~workstation.dicom.catalog.Catalog`).

Single-frame instances are converted directly (a few microseconds each); multi-frame and
enhanced instances (functional groups) go through ``pydicom.Dataset.from_json`` and the engine's
functional-group reader, so their per-frame geometry is the one a local load sees.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from workstation.dicom._skim import WANTED
from workstation.dicom.catalog import Catalog, Series
from workstation.dicom.header import SliceHeader, header_from_values
from workstation.dicom.series import build_stacks

# DICOM JSON keys (8 upper-case hex digits) of the attributes the engine reads.
_WANTED_JSON = {f"{tag:08X}": spec for tag, spec in WANTED.items()}
_FUNCTIONAL_GROUPS = ("52009229", "52009230")
_TRANSFER_SYNTAX = "00020010"
_AVAILABLE_SYNTAX = "00083002"
_SOP_INSTANCE_UID = "00080018"


def _convert(values: list[Any], kind: str) -> Any:
    if not values:
        return None
    if kind == "us":
        return int(values[0])
    texts = [v.get("Alphabetic", "") if isinstance(v, dict) else v for v in values]
    if kind == "str":
        joined = "\\".join(str(t).strip() for t in texts)
        return joined or None
    if kind == "strs":
        return tuple(str(t).strip() for t in texts)
    if kind == "ds":
        return tuple(float(t) for t in texts)
    return tuple(int(float(t)) for t in texts)  # "is"


def _element_values(item: Mapping[str, Any], key: str) -> list[Any]:
    element = item.get(key)
    if not isinstance(element, Mapping):
        return []
    values = element.get("Value")
    return values if isinstance(values, list) else []


def _syntax(item: Mapping[str, Any], default: str) -> str:
    for key in (_TRANSFER_SYNTAX, _AVAILABLE_SYNTAX):
        values = _element_values(item, key)
        if values:
            return str(values[0])
    return default


def _values(item: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, (keyword, kind) in _WANTED_JSON.items():
        raw = _element_values(item, key)
        if raw:
            converted = _convert(raw, kind)
            if converted is not None:
                values[keyword] = converted
    return values


def instance_slices(
    item: Mapping[str, Any], path: str, *, transfer_syntax: str = ""
) -> list[SliceHeader]:
    """The slice headers (one per frame) of one instance's DICOM JSON metadata.

    ``path`` identifies the instance in problems and warnings (its WADO-RS URL). Pixel data are
    assumed present when the instance has Rows and Columns (servers omit the BulkDataURI of
    compressed pixel data).
    """
    syntax = _syntax(item, transfer_syntax)
    frames_value = _element_values(item, "00280008")
    frames = int(float(frames_value[0])) if frames_value else 1
    if frames <= 1 and not any(key in item for key in _FUNCTIONAL_GROUPS):
        values = _values(item)
        values["TransferSyntaxUID"] = syntax
        _mark_pixels(values)
        return [header_from_values(path, values, frame=0, frames=1)]
    return _with_pydicom(item, path, syntax)


def _mark_pixels(values: dict[str, Any]) -> None:
    has_pixels = bool(values.get("Rows")) and bool(values.get("Columns"))
    # The offset is a placeholder meaning "has pixel data"; a remote instance has no file.
    values["_pixel_offset"] = 0 if has_pixels else None
    values["_pixel_length"] = None


def _with_pydicom(item: Mapping[str, Any], path: str, syntax: str) -> list[SliceHeader]:
    from pydicom.dataset import Dataset, FileMetaDataset

    from workstation.dicom._dataset import slices_from_dataset

    def no_bulk_data(tag: str, vr: str, uri: str) -> bytes:
        return b""

    dataset = Dataset.from_json(dict(item), bulk_data_uri_handler=no_bulk_data)
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = syntax or "1.2.840.10008.1.2.1"
    records = slices_from_dataset(dataset, path, None, None)
    headers = []
    for frame, values in records:
        values["TransferSyntaxUID"] = syntax
        _mark_pixels(values)
        headers.append(header_from_values(path, values, frame=frame, frames=len(records)))
    return headers


def series_from_metadata(
    items: Sequence[Mapping[str, Any]],
    *,
    root: str,
    key: str | None,
    locate: Callable[[str], str],
    transfer_syntax: str = "",
) -> Series:
    """The series (stack) ``key`` built from a series' metadata, sorted and checked.

    ``locate(sop_uid)`` names each instance (its URL); ``root`` names the source in messages.

    Raises
    ------
    SeriesNotFoundError, AmbiguousSeriesError, UnsupportedSeriesError
        As :meth:`Catalog.find` for a local folder (several stacks: choose one by its key).
    """
    headers: list[SliceHeader] = []
    for item in items:
        sop = _element_values(item, _SOP_INSTANCE_UID)
        path = locate(str(sop[0]) if sop else "")
        headers.extend(instance_slices(item, path, transfer_syntax=transfer_syntax))
    stacks, _dropped = build_stacks(headers)
    catalog = Catalog.from_stacks(root, stacks, [], files_seen=len(items), dicom_files=len(items))
    return catalog.find(key)

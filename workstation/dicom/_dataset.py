"""Turn a pydicom Dataset (read without pixels) into per-frame value dictionaries.

The dictionaries use the same keys and value shapes as :mod:`workstation.dicom._skim`, so one
constructor builds :class:`~workstation.dicom.header.SliceHeader` from either reader. Enhanced
multi-frame objects take their geometry, rescale and frame identity from the shared and per-frame
functional groups; legacy multi-frame objects from the top-level position and the spacing between
slices (RT Dose: the GridFrameOffsetVector).
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from workstation.dicom._skim import WANTED


def _convert(value: Any, kind: str) -> Any:
    if value is None or value == "":
        return None
    if kind == "us":
        return int(value[0]) if isinstance(value, list | tuple) or _is_multi(value) else int(value)
    if kind == "str":
        return str(value).strip() if not _is_multi(value) else "\\".join(str(v) for v in value)
    if kind == "strs":
        items = value if _is_multi(value) else [value]
        return tuple(str(v).strip() for v in items)
    items = value if _is_multi(value) else [value]
    if kind == "ds":
        return tuple(float(v) for v in items)
    return tuple(int(float(v)) for v in items)  # "is"


def _is_multi(value: Any) -> bool:
    from pydicom.multival import MultiValue

    return isinstance(value, MultiValue | list | tuple)


def _from_raw(raw: bytes, kind: str, little_endian: bool) -> Any:
    """The value of an element read with VR UN, decoded as ``kind``."""
    if kind == "us":
        if len(raw) < 2:
            return None
        return struct.unpack_from("<H" if little_endian else ">H", raw)[0]
    text = raw.decode("latin-1").rstrip("\0 ")
    return text.split("\\") if kind in ("strs", "ds", "is") else text


def _top_level(dataset: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for tag, (keyword, kind) in WANTED.items():
        element = dataset.get(tag)
        if element is None:
            continue
        value = element.value
        if isinstance(value, bytes):  # VR UN (e.g. a private tag): the raw value, as _skim reads it
            value = _from_raw(value, kind, dataset.is_little_endian)
        if keyword == "PatientName":
            value = str(value)
        values[keyword] = _convert(value, kind)
    values["TransferSyntaxUID"] = str(dataset.file_meta.get("TransferSyntaxUID", ""))
    return values


def _item(sequence_owner: Any, keyword: str) -> Any:
    sequence = sequence_owner.get(keyword) if sequence_owner is not None else None
    return sequence[0] if sequence else None


def _from_groups(groups: list[Any], values: dict[str, Any]) -> None:
    """Fill ``values`` from functional-group items (later groups override earlier ones)."""
    for group in groups:
        if group is None:
            continue
        position = _item(group, "PlanePositionSequence")
        if position is not None and "ImagePositionPatient" in position:
            values["ImagePositionPatient"] = _convert(position.ImagePositionPatient, "ds")
        orientation = _item(group, "PlaneOrientationSequence")
        if orientation is not None and "ImageOrientationPatient" in orientation:
            values["ImageOrientationPatient"] = _convert(orientation.ImageOrientationPatient, "ds")
        measures = _item(group, "PixelMeasuresSequence")
        if measures is not None:
            for keyword in ("PixelSpacing", "SliceThickness", "SpacingBetweenSlices"):
                if measures.get(keyword) not in (None, ""):
                    values[keyword] = _convert(measures.get(keyword), "ds")
        transform = _item(group, "PixelValueTransformationSequence")
        if transform is not None:
            for keyword in ("RescaleSlope", "RescaleIntercept"):
                if transform.get(keyword) not in (None, ""):
                    values[keyword] = _convert(transform.get(keyword), "ds")
        voi = _item(group, "FrameVOILUTSequence")
        if voi is not None:
            for keyword in ("WindowCenter", "WindowWidth"):
                if voi.get(keyword) not in (None, ""):
                    values[keyword] = _convert(voi.get(keyword), "ds")
        content = _item(group, "FrameContentSequence")
        if content is not None:
            if content.get("StackID") not in (None, ""):
                values["_stack_id"] = str(content.StackID)
            if content.get("TemporalPositionIndex") not in (None, ""):
                values["TemporalPositionIdentifier"] = (int(content.TemporalPositionIndex),)
        for frame_type_sequence in (
            "MRImageFrameTypeSequence",
            "CTImageFrameTypeSequence",
            "PETFrameTypeSequence",
            "XAXRFFrameCharacteristicsSequence",
        ):
            frame_type = _item(group, frame_type_sequence)
            if frame_type is not None and frame_type.get("FrameType"):
                values["ImageType"] = _convert(frame_type.FrameType, "strs")
        mr_echo = _item(group, "MREchoSequence")
        if mr_echo is not None and mr_echo.get("EffectiveEchoTime") not in (None, ""):
            values["_echo_time"] = float(mr_echo.EffectiveEchoTime)


def slices_from_dataset(
    dataset: Any, path: str, pixel_offset: int | None, pixel_length: int | None
) -> list[tuple[int, dict[str, Any]]]:
    """Per-frame value dictionaries for a dataset read with ``stop_before_pixels``."""
    base = _top_level(dataset)
    base["_pixel_offset"] = pixel_offset
    base["_pixel_length"] = pixel_length
    frames_value = base.get("NumberOfFrames")
    frames = max(1, int(frames_value[0])) if frames_value else 1
    shared = _item(dataset, "SharedFunctionalGroupsSequence")
    per_frame = dataset.get("PerFrameFunctionalGroupsSequence") or []
    if frames == 1 and shared is None and not per_frame:
        return [(0, base)]
    records: list[tuple[int, dict[str, Any]]] = []
    legacy_positions = _legacy_positions(base, frames) if not per_frame else None
    for index in range(frames):
        values = dict(base)
        frame_group = per_frame[index] if index < len(per_frame) else None
        _from_groups([shared, frame_group], values)
        if legacy_positions is not None:
            values["ImagePositionPatient"] = legacy_positions[index]
        values.setdefault("InstanceNumber", (index + 1,))
        records.append((index, values))
    return records


def _legacy_positions(base: dict[str, Any], frames: int) -> list[tuple[float, ...]] | None:
    """Frame positions of a legacy multi-frame image: origin + offset × normal.

    The offsets come from GridFrameOffsetVector when it has one value per frame (RT Dose; the
    values are relative to the first frame or, when the first is not 0, absolute along the
    normal, so subtracting the first covers both), else index × the spacing between slices."""
    position = base.get("ImagePositionPatient")
    orientation = base.get("ImageOrientationPatient")
    spacing = base.get("SpacingBetweenSlices") or base.get("SliceThickness")
    grid = base.get("GridFrameOffsetVector")
    if grid is not None and len(grid) == frames:
        offsets = [value - grid[0] for value in grid]
    elif spacing:
        offsets = [i * float(spacing[0]) for i in range(frames)]
    else:
        return None
    if not position or not orientation or frames < 2:
        return None
    row, column = np.asarray(orientation[:3]), np.asarray(orientation[3:6])
    normal = np.cross(row, column)
    origin = np.asarray(position[:3])
    return [tuple(float(v) for v in origin + offset * normal) for offset in offsets]

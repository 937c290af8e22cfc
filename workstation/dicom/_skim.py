"""A fast, partial reader of DICOM headers for the common case.

Scanning thousands of files is dominated by pydicom's general element machinery. This module
walks the elements of a little-endian file (explicit or implicit VR) with ``struct`` and keeps only
the few attributes the catalog and the loader need, stopping at the pixel data, whose offset and
length it records. Anything unusual (big endian, deflate, multi-frame, functional groups, a
character set other than ASCII / Latin-1 / UTF-8, a truncated or odd structure) makes it return
``None``, and the caller reads the file with pydicom instead. Tests check it agrees with pydicom
on every file they have.
"""

from __future__ import annotations

import struct
from typing import Any

_IMPLICIT_LE = "1.2.840.10008.1.2"
_EXPLICIT_LE = "1.2.840.10008.1.2.1"
_BIG_ENDIAN = "1.2.840.10008.1.2.2"
_DEFLATED = ("1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.8.1")

_LONG_VRS = frozenset(
    (b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UC", b"UR", b"UT", b"UN", b"SV", b"UV")
)
_UNDEFINED = 0xFFFFFFFF
_PIXEL_DATA = 0x7FE00010
_ITEM = 0xFFFEE000
_ITEM_END = 0xFFFEE00D
_SEQUENCE_END = 0xFFFEE0DD
# Enhanced objects keep geometry and rescale in functional groups, even with a single frame.
_FUNCTIONAL_GROUPS = (0x52009229, 0x52009230)

# tag -> (keyword, kind). kinds: "str" text, "strs" multi-valued text, "ds" decimal string(s),
# "is" integer string(s), "us" unsigned short.
WANTED: dict[int, tuple[str, str]] = {
    0x00080005: ("SpecificCharacterSet", "strs"),
    0x00080008: ("ImageType", "strs"),
    0x00080016: ("SOPClassUID", "str"),
    0x00080018: ("SOPInstanceUID", "str"),
    0x00080020: ("StudyDate", "str"),
    0x00080060: ("Modality", "str"),
    0x00081030: ("StudyDescription", "str"),
    0x0008103E: ("SeriesDescription", "str"),
    0x00100010: ("PatientName", "str"),
    0x00100020: ("PatientID", "str"),
    0x00180050: ("SliceThickness", "ds"),
    0x00180086: ("EchoNumbers", "is"),
    0x00180088: ("SpacingBetweenSlices", "ds"),
    0x00181120: ("GantryDetectorTilt", "ds"),
    0x00190010: ("PrivateCreator0019", "str"),  # "SIEMENS MR HEADER" owns (0019,100A)
    0x0019100A: ("NumberOfImagesInMosaic", "us"),
    0x0020000D: ("StudyInstanceUID", "str"),
    0x0020000E: ("SeriesInstanceUID", "str"),
    0x00200011: ("SeriesNumber", "is"),
    0x00200012: ("AcquisitionNumber", "is"),
    0x00200013: ("InstanceNumber", "is"),
    0x00200032: ("ImagePositionPatient", "ds"),
    0x00200037: ("ImageOrientationPatient", "ds"),
    0x00200052: ("FrameOfReferenceUID", "str"),
    0x00200100: ("TemporalPositionIdentifier", "is"),
    0x00280002: ("SamplesPerPixel", "us"),
    0x00280004: ("PhotometricInterpretation", "str"),
    0x00280008: ("NumberOfFrames", "is"),
    0x00280010: ("Rows", "us"),
    0x00280011: ("Columns", "us"),
    0x00280030: ("PixelSpacing", "ds"),
    0x00280100: ("BitsAllocated", "us"),
    0x00280101: ("BitsStored", "us"),
    0x00280103: ("PixelRepresentation", "us"),
    0x00281050: ("WindowCenter", "ds"),
    0x00281051: ("WindowWidth", "ds"),
    0x00281052: ("RescaleIntercept", "ds"),
    0x00281053: ("RescaleSlope", "ds"),
    0x00281054: ("RescaleType", "str"),
    0x30040002: ("DoseUnits", "str"),
    0x3004000C: ("GridFrameOffsetVector", "ds"),  # RT Dose frame positions
    0x3004000E: ("DoseGridScaling", "ds"),  # RT Dose: stored value × scaling = dose
}
_TEXT_CHARSETS = {
    "": "latin-1",
    "ISO_IR 6": "latin-1",
    "ISO_IR 100": "latin-1",
    "ISO_IR 192": "utf-8",
}
_US = struct.Struct("<H")
_UL = struct.Struct("<L")
_TAG_LEN_IMPLICIT = struct.Struct("<HHL")
_TAG_VR_SHORT = struct.Struct("<HH2sH")


class SkimDeclined(Exception):
    """The file is outside the fast reader's scope; read it with pydicom."""


def skim(buffer: bytes, file_size: int) -> dict[str, Any] | None:
    """Parse the header in ``buffer`` (the start of a file of ``file_size`` bytes).

    Returns the wanted attributes plus ``TransferSyntaxUID``, ``_pixel_offset`` (file offset of the
    pixel data value, or None) and ``_pixel_length`` (None when encapsulated/undefined), or
    ``None`` when the file must be read with pydicom (including when ``buffer`` ends too early).
    """
    try:
        return _skim(buffer, file_size)
    except (SkimDeclined, struct.error, IndexError, UnicodeDecodeError, ValueError):
        return None


def _skim(buf: bytes, file_size: int) -> dict[str, Any] | None:
    if len(buf) < 132 or buf[128:132] != b"DICM":
        return None
    pos = 132
    meta: dict[str, Any] = {}
    # File meta information: always explicit VR little endian, group 0x0002.
    while pos + 8 <= len(buf):
        group, elem, vr, length = _TAG_VR_SHORT.unpack_from(buf, pos)
        if group != 0x0002:
            break
        if vr in _LONG_VRS:
            length = _UL.unpack_from(buf, pos + 8)[0]
            pos += 12
        else:
            pos += 8
        if length == _UNDEFINED:
            return None
        if elem == 0x0010:
            meta["TransferSyntaxUID"] = buf[pos : pos + length].rstrip(b"\0 ").decode("ascii")
        pos += length
    syntax = meta.get("TransferSyntaxUID")
    if syntax is None or syntax == _BIG_ENDIAN or syntax in _DEFLATED:
        return None
    implicit = syntax == _IMPLICIT_LE
    out: dict[str, Any] = {
        "TransferSyntaxUID": syntax,
        "_pixel_offset": None,
        "_pixel_length": None,
    }
    raw: dict[str, bytes] = {}
    pos = _walk(buf, pos, implicit, raw, out, top_level=True, file_size=file_size)
    charset = raw.get("SpecificCharacterSet", b"").decode("ascii").strip("\0 ")
    encoding = _TEXT_CHARSETS.get(charset)
    if encoding is None:
        return None
    _decode_values(out, raw, encoding)
    if out.get("NumberOfFrames") not in (None, 1):
        return None  # multi-frame: per-frame functional groups need pydicom
    return out


def _walk(
    buf: bytes,
    pos: int,
    implicit: bool,
    raw: dict[str, Any],
    out: dict[str, Any],
    *,
    top_level: bool,
    file_size: int,
    end: int | None = None,
) -> int:
    """Walk elements from ``pos``; at the top level record wanted values and stop at pixels."""
    limit = len(buf) if end is None else end
    while pos < limit:
        if pos + 8 > len(buf):
            raise SkimDeclined("buffer ends inside the header")
        if implicit:
            group, elem, length = _TAG_LEN_IMPLICIT.unpack_from(buf, pos)
            tag = (group << 16) | elem
            header = 8
            vr = b"SQ" if length == _UNDEFINED and tag != _PIXEL_DATA else b""
        else:
            group, elem, vr, length = _TAG_VR_SHORT.unpack_from(buf, pos)
            tag = (group << 16) | elem
            if group == 0xFFFE:  # item / delimiter tags carry no VR
                length = _UL.unpack_from(buf, pos + 4)[0]
                header = 8
            elif vr in _LONG_VRS:
                if pos + 12 > len(buf):
                    raise SkimDeclined("buffer ends inside the header")
                length = _UL.unpack_from(buf, pos + 8)[0]
                header = 12
            elif vr.isalpha() and vr.isupper():
                header = 8
            else:
                raise SkimDeclined("not a valid VR")
        if tag in (_ITEM_END, _SEQUENCE_END):
            return pos + header
        if top_level and tag == _PIXEL_DATA:
            out["_pixel_offset"] = pos + header
            out["_pixel_length"] = None if length == _UNDEFINED else length
            if length != _UNDEFINED and pos + header + length > file_size:
                raise SkimDeclined("pixel data run past the end of the file")
            return pos
        if top_level and tag > _PIXEL_DATA:
            raise SkimDeclined("elements after the pixel data position")
        if top_level and tag in _FUNCTIONAL_GROUPS:
            raise SkimDeclined("functional groups (enhanced object) need pydicom")
        value_start = pos + header
        if tag == _ITEM:
            if length == _UNDEFINED:
                pos = _walk(
                    buf, value_start, implicit, raw, out, top_level=False, file_size=file_size
                )
            else:
                pos = value_start + length
            continue
        if length == _UNDEFINED:
            if vr == b"UN" or (vr != b"SQ"):
                raise SkimDeclined("undefined length outside a sequence")
            pos = _walk(buf, value_start, implicit, raw, out, top_level=False, file_size=file_size)
            continue
        if top_level:
            wanted = WANTED.get(tag)
            if wanted is not None:
                if value_start + length > len(buf):
                    raise SkimDeclined("buffer ends inside a value")
                raw[wanted[0]] = buf[value_start : value_start + length]
        pos = value_start + length
    if not top_level and end is None:
        raise SkimDeclined("buffer ends inside a sequence")
    raise SkimDeclined("no pixel data in the buffer")


def _decode_values(out: dict[str, Any], raw: dict[str, bytes], encoding: str) -> None:
    for keyword, value in raw.items():
        kind = _KIND[keyword]
        if kind == "us":
            if len(value) < 2:
                raise SkimDeclined(f"short {keyword}")
            out[keyword] = _US.unpack_from(value, 0)[0]
            continue
        text = value.decode(encoding).rstrip("\0 ")
        if kind == "str":
            out[keyword] = text.strip() if keyword not in ("PatientName",) else text
        elif kind == "strs":
            out[keyword] = tuple(part.strip() for part in text.split("\\"))
        elif kind == "ds":
            parts = [p.strip() for p in text.split("\\") if p.strip()]
            out[keyword] = tuple(float(p) for p in parts) if parts else None
        elif kind == "is":
            parts = [p.strip() for p in text.split("\\") if p.strip()]
            out[keyword] = tuple(int(float(p)) for p in parts) if parts else None


_KIND = {keyword: kind for keyword, kind in WANTED.values()}

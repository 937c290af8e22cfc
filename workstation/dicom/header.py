"""Read what the catalog and the loader need from one DICOM file: a ``SliceHeader`` per frame.

Single-frame little-endian files go through the fast reader in :mod:`workstation.dicom._skim`;
everything else (multi-frame, big endian, deflated, unusual character sets, files without a
preamble) through pydicom with ``stop_before_pixels``. Both produce the same records.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Any

from workstation.dicom._skim import skim
from workstation.dicom.errors import DicomDirectoryError, DicomReadError, NotDicomError

_HEAD_BYTES = 16384
# A header longer than the first read gets one more try with this much (never the whole file:
# a multi-frame file may be gigabytes); beyond it pydicom reads the header.
_LONG_HEAD_BYTES = 1 << 20
_NATIVE_SYNTAXES = frozenset(
    ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99")
)
_DIRECTORY_SOP_CLASS = "1.2.840.10008.1.3.10"
# Errors pydicom raises on corrupt input; translated into DicomReadError at this border (with
# pydicom's own BytesLengthException, added where pydicom is imported).
_READ_ERRORS = (
    OSError,
    EOFError,
    ValueError,
    KeyError,
    TypeError,
    IndexError,
    AttributeError,
    NotImplementedError,
    OverflowError,
    struct.error,
)


@dataclass(frozen=True, slots=True)
class SliceHeader:
    """One 2D image: a single-frame file, or one frame of a multi-frame file."""

    path: str
    frame: int
    number_of_frames: int
    transfer_syntax: str
    sop_class_uid: str
    sop_instance_uid: str
    patient_id: str
    patient_name: str
    study_uid: str
    study_date: str
    study_description: str
    series_uid: str
    series_number: int | None
    series_description: str
    modality: str
    frame_of_reference_uid: str
    instance_number: int | None
    acquisition_number: int | None
    temporal_position: int | None
    echo_number: int | None
    image_type: tuple[str, ...]
    stack_id: str
    position: tuple[float, float, float] | None
    orientation: tuple[float, float, float, float, float, float] | None
    pixel_spacing: tuple[float, float] | None  # (row spacing, column spacing) in mm
    slice_thickness: float | None
    spacing_between_slices: float | None
    gantry_tilt: float | None
    units: str  # of the modality values: "HU", "GY", ... ("" when unknown or unspecified)
    rows: int
    columns: int
    samples_per_pixel: int
    photometric: str
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    rescale_slope: float
    rescale_intercept: float
    window_center: float | None
    window_width: float | None
    mosaic: bool
    pixel_offset: int | None  # file offset of the pixel data value
    pixel_length: int | None  # None when encapsulated (compressed)

    @property
    def compressed(self) -> bool:
        """True when the pixel data are encapsulated (a compressed transfer syntax)."""
        return self.transfer_syntax not in _NATIVE_SYNTAXES

    @property
    def has_pixels(self) -> bool:
        """True when the file holds pixel data."""
        return self.pixel_offset is not None and self.rows > 0 and self.columns > 0


def read_slices(path: str | os.PathLike[str]) -> list[SliceHeader]:
    """The slice headers in one file (one per frame).

    Raises
    ------
    NotDicomError
        The file is not DICOM, or is a DICOMDIR (:class:`DicomDirectoryError`: a directory, not an
        image).
    DicomReadError
        The file is DICOM but its header cannot be read.
    """
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            head = handle.read(_HEAD_BYTES)
    except OSError as error:
        raise DicomReadError(f"cannot read file: {error.strerror or error}", path=path) from error
    if size == 0:
        raise NotDicomError("empty file (0 bytes)", path=path)
    values = skim(head, size)
    if values is None and size > len(head) and head[128:132] == b"DICM":
        try:
            with open(path, "rb") as handle:
                values = skim(handle.read(_LONG_HEAD_BYTES), size)
        except OSError as error:
            raise DicomReadError(f"cannot read file: {error}", path=path) from error
    if values is not None:
        return [header_from_values(path, values, frame=0, frames=1)]
    return _read_with_pydicom(path, head, size)


def header_from_values(path: str, v: dict[str, Any], *, frame: int, frames: int) -> SliceHeader:
    def first(key: str) -> Any:
        value = v.get(key)
        return value[0] if isinstance(value, tuple) and value else value

    position = v.get("ImagePositionPatient")
    orientation = v.get("ImageOrientationPatient")
    spacing = v.get("PixelSpacing")
    image_type = v.get("ImageType") or ()
    # (0019,100A) means NumberOfImagesInMosaic only in Siemens' private block; other vendors put
    # unrelated values there (GE PET activity factor, Philips slice orientation, ...).
    siemens = v.get("PrivateCreator0019") == "SIEMENS MR HEADER"
    mosaic = "MOSAIC" in image_type or (siemens and bool(v.get("NumberOfImagesInMosaic")))
    slope = first("RescaleSlope")
    if slope is None:  # RT Dose has no rescale: stored value × DoseGridScaling = dose (Gy)
        slope = first("DoseGridScaling")
    intercept = first("RescaleIntercept")
    return SliceHeader(
        path=path,
        frame=frame,
        number_of_frames=frames,
        transfer_syntax=v.get("TransferSyntaxUID", ""),
        sop_class_uid=v.get("SOPClassUID", "") or "",
        sop_instance_uid=v.get("SOPInstanceUID", "") or "",
        patient_id=v.get("PatientID", "") or "",
        patient_name=v.get("PatientName", "") or "",
        study_uid=v.get("StudyInstanceUID", "") or "",
        study_date=v.get("StudyDate", "") or "",
        study_description=v.get("StudyDescription", "") or "",
        series_uid=v.get("SeriesInstanceUID", "") or "",
        series_number=first("SeriesNumber"),
        series_description=v.get("SeriesDescription", "") or "",
        modality=v.get("Modality", "") or "",
        frame_of_reference_uid=v.get("FrameOfReferenceUID", "") or "",
        instance_number=first("InstanceNumber"),
        acquisition_number=first("AcquisitionNumber"),
        temporal_position=first("TemporalPositionIdentifier"),
        echo_number=first("EchoNumbers"),
        image_type=tuple(image_type),
        stack_id=str(v.get("_stack_id", "")),
        position=tuple(position[:3]) if position and len(position) >= 3 else None,
        orientation=tuple(orientation[:6]) if orientation and len(orientation) >= 6 else None,
        pixel_spacing=tuple(spacing[:2]) if spacing and len(spacing) >= 2 else None,
        slice_thickness=first("SliceThickness"),
        spacing_between_slices=first("SpacingBetweenSlices"),
        gantry_tilt=first("GantryDetectorTilt"),
        units=_units(v),
        rows=int(v.get("Rows") or 0),
        columns=int(v.get("Columns") or 0),
        samples_per_pixel=int(v.get("SamplesPerPixel") or 1),
        photometric=v.get("PhotometricInterpretation", "") or "",
        bits_allocated=int(v.get("BitsAllocated") or 0),
        bits_stored=int(v.get("BitsStored") or v.get("BitsAllocated") or 0),
        pixel_representation=int(v.get("PixelRepresentation") or 0),
        rescale_slope=1.0 if slope in (None, 0) else float(slope),
        rescale_intercept=0.0 if intercept is None else float(intercept),
        window_center=first("WindowCenter"),
        window_width=first("WindowWidth"),
        mosaic=mosaic,
        pixel_offset=v.get("_pixel_offset"),
        pixel_length=v.get("_pixel_length"),
    )


def _units(values: dict[str, Any]) -> str:
    """Units of the modality values: DoseUnits, else RescaleType (not "US"), else HU for CT."""
    for keyword in ("DoseUnits", "RescaleType"):
        unit = (values.get(keyword) or "").strip().upper()
        if unit and unit != "US":
            return unit
    return "HU" if values.get("Modality") == "CT" else ""


def _read_with_pydicom(path: str, head: bytes, size: int) -> list[SliceHeader]:
    import pydicom
    from pydicom.errors import BytesLengthException, InvalidDicomError

    read_errors = (*_READ_ERRORS, BytesLengthException)

    has_preamble = head[128:132] == b"DICM"
    # Without a preamble, accept only what starts like a DICOM data set (group 0x0002 or 0x0008).
    if not has_preamble and head[:2] not in (b"\x02\x00", b"\x08\x00"):
        raise NotDicomError("not a DICOM file (no DICM preamble, no DICOM elements)", path=path)
    try:
        with open(path, "rb") as handle:
            dataset = pydicom.dcmread(handle, stop_before_pixels=True, force=not has_preamble)
            tag_position = handle.tell()
            pixel_header = handle.read(12)
    except InvalidDicomError as error:
        raise NotDicomError(f"not a DICOM file ({error})", path=path) from error
    except read_errors as error:
        raise DicomReadError(f"corrupt DICOM header: {error}", path=path) from error
    from workstation.dicom._dataset import slices_from_dataset

    try:  # pydicom converts values lazily, so reading any of them may raise
        if dataset.file_meta.get("MediaStorageSOPClassUID") == _DIRECTORY_SOP_CLASS or (
            "DirectoryRecordSequence" in dataset
        ):
            raise DicomDirectoryError("a DICOMDIR (media directory), not an image", path=path)
        offset, length = _pixel_element(dataset, tag_position, pixel_header)
        if offset is not None and length is not None and offset + length > size:
            raise DicomReadError(
                f"truncated file: pixel data needs {offset + length} bytes, the file has {size}",
                path=path,
            )
        records = slices_from_dataset(dataset, path, offset, length)
    except read_errors as error:
        raise DicomReadError(f"corrupt DICOM header: {error}", path=path) from error
    return [header_from_values(path, values, frame=i, frames=len(records)) for i, values in records]


def _pixel_element(dataset: Any, tag_position: int, raw: bytes) -> tuple[int | None, int | None]:
    """File offset and length of the pixel data value (length None when encapsulated)."""
    if len(raw) < 8:
        return None, None
    group, elem = struct.unpack_from("<HH" if dataset.is_little_endian else ">HH", raw, 0)
    if (group, elem) != (0x7FE0, 0x0010):
        return None, None
    fmt = "<L" if dataset.is_little_endian else ">L"
    if dataset.is_implicit_VR:
        length, header = struct.unpack_from(fmt, raw, 4)[0], 8
    else:
        length, header = struct.unpack_from(fmt, raw, 8)[0], 12
    return tag_position + header, (None if length == 0xFFFFFFFF else length)

"""Write synthetic but well-formed DICOM series from a numpy volume.

Used to build the demo study, the test fixtures and the benchmark data: one writer, so every
generated file has the same realistic header layout (patient, study, series, frame of reference,
geometry, rescale, windowing). Names and dates are fake; nothing here reads real patient data.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

_CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
_MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
_SOP_CLASS = {"CT": _CT_IMAGE, "MR": _MR_IMAGE}


@dataclass
class SeriesSpec:
    """Header values shared by every slice of a synthetic series."""

    modality: str = "MR"
    patient_name: str = "DEMO^BRAIN"
    patient_id: str = "DEMO0001"
    patient_birth_date: str = "19700101"
    patient_sex: str = "O"
    study_date: str = "20260101"
    study_time: str = "120000"
    study_description: str = "Synthetic study"
    series_description: str = "Synthetic series"
    series_number: int = 1
    accession_number: str = "DEMO-ACC-1"
    institution_name: str = "Medical Workstation demo site"
    manufacturer: str = "Medical Workstation"
    body_part: str = "BRAIN"
    study_uid: str | None = None
    series_uid: str | None = None
    frame_of_reference_uid: str | None = None
    uid_prefix: str | None = None
    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0
    window_center: float | None = None
    window_width: float | None = None
    bits_stored: int | None = None  # BitsStored; None: the whole stored type (e.g. 16)
    extra: dict[str, object] = field(default_factory=dict)


def _uid(prefix: str | None, *parts: object) -> str:
    """Random UID, or a name-based (UUID v5) ``2.25.`` UID when ``prefix`` is given."""
    from pydicom.uid import generate_uid

    if prefix is None:
        return generate_uid()
    # pydicom's generate_uid(prefix=None) ignores entropy_srcs and returns a random UUID UID.
    name = "/".join([prefix, *map(str, parts)])
    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, name).int}"


def write_series(
    folder: str | Path,
    stored: np.ndarray,
    *,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    direction: np.ndarray | None = None,
    spec: SeriesSpec | None = None,
    file_pattern: str = "IM{index:05d}.dcm",
) -> list[Path]:
    """Write ``stored`` (``[k, j, i]``, stored pixel values) as one file per slice.

    Parameters
    ----------
    folder
        Created if missing.
    stored
        ``uint8``, ``int16`` or ``uint16`` array of stored values (before rescale).
    spacing, origin, direction
        Geometry as in :class:`workstation.core.Volume` (LPS; direction columns are the i, j, k
        axes). Slice ``k`` is placed at ``origin + k * spacing[2] * direction[:, 2]``.
    spec
        Shared header values; UIDs are generated when not given (deterministically when
        ``spec.uid_prefix`` is set, so a rebuilt demo study has the same UIDs).

    Returns
    -------
    list of Path
        The written files, in slice order.
    """
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

    spec = spec or SeriesSpec()
    if stored.ndim != 3:
        raise ValueError("stored must be a 3D array [k, j, i]")
    if stored.dtype not in (np.uint8, np.int16, np.uint16):
        raise ValueError(f"unsupported stored dtype {stored.dtype}")
    direction = np.eye(3) if direction is None else np.asarray(direction, dtype=float)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    prefix = spec.uid_prefix
    study_uid = spec.study_uid or _uid(prefix, "study")
    series_uid = spec.series_uid or _uid(prefix, "series", spec.series_number)
    frame_uid = spec.frame_of_reference_uid or _uid(prefix, "frame")
    sop_class = _SOP_CLASS.get(spec.modality, _MR_IMAGE)
    row_dir, col_dir, normal = direction[:, 0], direction[:, 1], direction[:, 2]
    bits = stored.dtype.itemsize * 8
    signed = stored.dtype == np.int16
    paths: list[Path] = []
    for k in range(stored.shape[0]):
        sop_uid = _uid(prefix, "sop", spec.series_number, k) if prefix else _uid(None)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        meta.ImplementationVersionName = "MEDWS_SYNTH_1"
        path = folder / file_pattern.format(index=k + 1)
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = sop_uid
        ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = spec.study_date
        ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = spec.study_time
        ds.AccessionNumber = spec.accession_number
        ds.Modality = spec.modality
        ds.Manufacturer = spec.manufacturer
        ds.InstitutionName = spec.institution_name
        ds.ReferringPhysicianName = ""
        ds.StudyDescription = spec.study_description
        ds.SeriesDescription = spec.series_description
        ds.PatientName = spec.patient_name
        ds.PatientID = spec.patient_id
        ds.PatientBirthDate = spec.patient_birth_date
        ds.PatientSex = spec.patient_sex
        ds.BodyPartExamined = spec.body_part
        ds.SliceThickness = f"{spacing[2]:.6g}"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.StudyID = "1"
        ds.SeriesNumber = spec.series_number
        ds.AcquisitionNumber = 1
        ds.InstanceNumber = k + 1
        position = np.asarray(origin, dtype=float) + k * float(spacing[2]) * normal
        ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in (*row_dir, *col_dir)]
        ds.FrameOfReferenceUID = frame_uid
        ds.PositionReferenceIndicator = ""
        ds.SliceLocation = f"{float(position @ normal):.6f}"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = int(stored.shape[1]), int(stored.shape[2])
        ds.PixelSpacing = [f"{spacing[1]:.6g}", f"{spacing[0]:.6g}"]
        ds.BitsAllocated = bits
        ds.BitsStored = spec.bits_stored or bits
        ds.HighBit = (spec.bits_stored or bits) - 1
        ds.PixelRepresentation = 1 if signed else 0
        if spec.window_center is not None and spec.window_width is not None:
            ds.WindowCenter = f"{spec.window_center:.6g}"
            ds.WindowWidth = f"{spec.window_width:.6g}"
        ds.RescaleIntercept = f"{spec.rescale_intercept:.6g}"
        ds.RescaleSlope = f"{spec.rescale_slope:.6g}"
        ds.RescaleType = "HU" if spec.modality == "CT" else "US"
        for keyword, value in spec.extra.items():
            setattr(ds, keyword, value)
        ds.PixelData = np.ascontiguousarray(stored[k]).tobytes()
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths

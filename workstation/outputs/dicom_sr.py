"""Lesion measurements written as a TID 1500 Measurement Report (Comprehensive 3D SR).

Each lesion is one *Volumetric ROI measurements* group (TID 1411) that references its segment
in the SEG written by :func:`workstation.outputs.dicom_seg.write_segmentation`, with:

- Tracking Identifier: the lesion name, and a new Tracking UID;
- Volume (SCT 118565006) in ``ml`` (UCUM), with the algorithm identification (TID 4019);
- the model confidence, when known, as a second measurement. No standard code names "model
  output probability", so it uses the local coding scheme ``99MEDWS``, code ``CONF``
  ("Model confidence"), unit UCUM ``1`` (no units), value 0..1;
- the centroid, when known, as three measurements in ``mm`` with the local codes ``CTRX``,
  ``CTRY``, ``CTRZ`` (``99MEDWS``; patient LPS x, y, z). TID 1411 allows no spatial
  coordinates on its measurements, and the segment itself is the region of interest.

The observer is the model (a device observer). A report with no lesions (highdicom requires
at least one measurement group) holds one image-level group (TID 1501) with the qualitative
evaluation Lesion (SCT 52988006) = Absent (SCT 2667000) and no volumetric groups, so
:func:`read_lesion_report` returns an empty list for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from workstation.outputs._dicom_common import (
    AlgorithmInfo,
    OutputError,
    check_source,
    clip_lo,
    new_uid,
    save,
)

__all__ = [
    "CENTROID",
    "CONFIDENCE",
    "LesionMeasurement",
    "read_lesion_report",
    "write_lesion_report",
]

#: Local code of the model's confidence measurement (no standard code fits).
CONFIDENCE = Code("CONF", "99MEDWS", "Model confidence")
#: Local codes of the centroid's LPS coordinates (TID 1411 takes no coordinate items).
CENTROID = (
    Code("CTRX", "99MEDWS", "Centroid x (LPS)"),
    Code("CTRY", "99MEDWS", "Centroid y (LPS)"),
    Code("CTRZ", "99MEDWS", "Centroid z (LPS)"),
)
_VOLUME = codes.SCT.Volume
_MILLIMETER = codes.UCUM.Millimeter
_MILLILITER = Code("ml", "UCUM", "milliliter")
_NO_UNITS = Code("1", "UCUM", "no units")
_PROCEDURE = codes.SCT.Imaging
_SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"


@dataclass(frozen=True)
class LesionMeasurement:
    """One lesion of a report.

    Attributes
    ----------
    segment_number
        Its segment in the SEG (1-based).
    name
        Tracking identifier, e.g. ``"lesion 1"`` (at most 64 characters are kept).
    volume_ml
        Volume in millilitres.
    confidence
        Model probability 0..1, if any.
    centroid_lps_mm
        Centre in patient coordinates (LPS, mm), if any.
    """

    segment_number: int
    name: str
    volume_ml: float
    confidence: float | None = None
    centroid_lps_mm: tuple[float, float, float] | None = None


def _group(
    lesion: LesionMeasurement,
    segmentation: pydicom.Dataset,
    algorithm: AlgorithmInfo,
    source_series_uid: str,
) -> hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations:
    numbers = {int(item.SegmentNumber) for item in segmentation.SegmentSequence}
    if lesion.segment_number not in numbers:
        raise OutputError(
            f"Lesion {lesion.name!r} refers to segment {lesion.segment_number}, "
            f"but the segmentation has segments {sorted(numbers)}."
        )
    if not np.isfinite(lesion.volume_ml) or lesion.volume_ml < 0:
        raise OutputError(f"Lesion {lesion.name!r} has an invalid volume {lesion.volume_ml}.")
    measurements = [
        hd.sr.Measurement(
            name=_VOLUME,
            value=float(lesion.volume_ml),
            unit=_MILLILITER,
            algorithm_id=algorithm.sr_identification(),
        )
    ]
    if lesion.confidence is not None:
        if not 0.0 <= lesion.confidence <= 1.0:
            raise OutputError(
                f"Lesion {lesion.name!r} has confidence {lesion.confidence}; expected 0..1."
            )
        measurements.append(
            hd.sr.Measurement(
                name=CONFIDENCE,
                value=float(lesion.confidence),
                unit=_NO_UNITS,
                algorithm_id=algorithm.sr_identification(),
            )
        )
    if lesion.centroid_lps_mm is not None:
        if len(lesion.centroid_lps_mm) != 3 or not np.all(np.isfinite(lesion.centroid_lps_mm)):
            raise OutputError(f"Lesion {lesion.name!r} has an invalid centroid.")
        measurements.extend(
            hd.sr.Measurement(name=code, value=float(value), unit=_MILLIMETER)
            for code, value in zip(CENTROID, lesion.centroid_lps_mm, strict=True)
        )
    return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=new_uid(), identifier=clip_lo(lesion.name)
        ),
        # By source series: ReferencedSegment.from_segmentation fails on single-segment SEGs
        # (highdicom 0.28 looks for per-frame segment identification, which is shared there).
        referenced_segment=hd.sr.ReferencedSegment(
            sop_class_uid=segmentation.SOPClassUID,
            sop_instance_uid=segmentation.SOPInstanceUID,
            segment_number=lesion.segment_number,
            source_series=hd.sr.SourceSeriesForSegmentation(source_series_uid),
        ),
        finding_type=codes.SCT.Lesion,
        algorithm_id=algorithm.sr_identification(),
        measurements=measurements,
    )


def _no_lesion(algorithm: AlgorithmInfo) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """The image-level group of a report without lesions: Lesion = Absent."""
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=new_uid(), identifier="no lesion"),
        algorithm_id=algorithm.sr_identification(),
        qualitative_evaluations=[
            hd.sr.QualitativeEvaluation(name=codes.SCT.Lesion, value=codes.SCT.Absent)
        ],
    )


def write_lesion_report(
    source: Sequence[pydicom.Dataset],
    segmentation: pydicom.Dataset,
    measurements: Sequence[LesionMeasurement],
    algorithm: AlgorithmInfo,
    path: str | Path,
    *,
    series_number: int = 902,
    findings_text: str | None = None,
) -> pydicom.Dataset:
    """Write the lesion measurements as a Comprehensive 3D SR measurement report.

    Parameters
    ----------
    source
        Source slice headers (the SEG's source series); those the SEG's frames were derived
        from are listed in the image library and as evidence (all of them would cost highdicom
        ~25 ms a slice for nothing the report refers to), the middle slice for an empty SEG.
    segmentation
        The SEG whose segments the lesions refer to (also recorded as evidence).
    measurements
        One entry per lesion; may be empty.
    algorithm
        The model, recorded as the device observer and the algorithm of every measurement.
    path
        Output file, written atomically.
    series_number
        Of the new series.
    findings_text
        Optional short free text, kept as the Series Description (clipped to 64 characters);
        by default ``"AI report: <disclaimer>"``.

    Returns
    -------
    pydicom.Dataset
        The report (a :class:`highdicom.sr.Comprehensive3DSR`).

    Raises
    ------
    OutputError
        Empty source, a SEG of another study or an unknown segment, or a write failure.
    """
    check_source(source)
    if "SegmentSequence" not in segmentation or segmentation.get("SOPClassUID") != _SEG_STORAGE:
        raise OutputError("The segmentation given to the lesion report is not a DICOM SEG.")
    if segmentation.StudyInstanceUID != source[0].StudyInstanceUID:
        raise OutputError("The segmentation belongs to another study than the source images.")
    series = str(source[0].SeriesInstanceUID)
    images = (
        _segmented_sources(source, segmentation) if measurements else [source[len(source) // 2]]
    )
    groups: list[Any] = [_group(item, segmentation, algorithm, series) for item in measurements]
    if not groups:
        groups = [_no_lesion(algorithm)]
    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=new_uid(),
            name=clip_lo(f"{algorithm.name} {algorithm.version}"),
            manufacturer_name=clip_lo(algorithm.manufacturer),
            model_name=clip_lo(algorithm.name),
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=device),
        procedure_reported=_PROCEDURE,
        imaging_measurements=groups,
        referenced_images=images,
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=[*images, segmentation],
        content=report,
        series_instance_uid=new_uid(),
        series_number=series_number,
        sop_instance_uid=new_uid(),
        instance_number=1,
        manufacturer=clip_lo(algorithm.manufacturer),
        is_complete=True,
    )
    sr.SeriesDescription = clip_lo(findings_text or f"AI report: {algorithm.disclaimer}")
    sr.ManufacturerModelName = clip_lo(algorithm.name)
    sr.SoftwareVersions = clip_lo(algorithm.version)
    save(sr, path)
    return sr


def _segmented_sources(
    source: Sequence[pydicom.Dataset], segmentation: pydicom.Dataset
) -> list[pydicom.Dataset]:
    """The source slices the SEG's frames were derived from, in source order."""
    used: set[str] = set()
    for frame in segmentation.get("PerFrameFunctionalGroupsSequence", []):
        for derivation in frame.get("DerivationImageSequence", []):
            for item in derivation.get("SourceImageSequence", []):
                used.add(str(item.ReferencedSOPInstanceUID))
    images = [ds for ds in source if str(ds.SOPInstanceUID) in used]
    return images or [source[len(source) // 2]]


def _value(group: Any, name: Code) -> tuple[float | None, str | None]:
    found = group.get_measurements(name=name)
    if not found:
        return None, None
    return float(found[0].value), str(found[0].unit.value)


def _centroid(group: Any) -> tuple[float, float, float] | None:
    values = [_value(group, code)[0] for code in CENTROID]
    if any(value is None for value in values):
        return None
    x, y, z = values
    return (x, y, z)


def _algorithm(group: Any) -> tuple[str, str] | None:
    """``(name, version)`` from the TID 4019 items of the group's volume measurement."""
    found = group.get_measurements(name=_VOLUME)
    if not found:
        return None
    items = {
        str(item.ConceptNameCodeSequence[0].CodeValue): str(item.TextValue)
        for item in found[0][0].get("ContentSequence", [])
        if item.get("ValueType") == "TEXT"
    }
    if "111001" not in items:
        return None
    return items["111001"], items.get("111003", "")


def read_lesion_report(path: str | Path) -> list[dict[str, Any]]:
    """Read the lesions of a report written by :func:`write_lesion_report`.

    Returns
    -------
    list of dict
        One per volumetric measurement group, with ``segment_number``, ``name``,
        ``volume_ml``, ``volume_unit`` (UCUM code), ``confidence`` and ``centroid_lps_mm``
        (None if absent), ``segmentation_uid`` (the referenced SEG's SOP Instance UID) and
        ``algorithm`` (``(name, version)``, None if absent).

    Raises
    ------
    OutputError
        Unreadable file, or not a TID 1500 measurement report.
    """
    try:
        report = hd.sr.srread(path).content
        groups = report.get_volumetric_roi_measurement_groups()
    except (OSError, ValueError, TypeError, AttributeError, KeyError) as exc:
        raise OutputError(f"{path} is not a readable measurement report: {exc}", path=path) from exc
    lesions = []
    for group in groups:
        segment = group.referenced_segment
        volume, unit = _value(group, _VOLUME)
        lesions.append(
            {
                "segment_number": None
                if segment is None
                else int(segment.referenced_segment_numbers[0]),
                "name": group.tracking_identifier,
                "volume_ml": volume,
                "volume_unit": unit,
                "confidence": _value(group, CONFIDENCE)[0],
                "centroid_lps_mm": _centroid(group),
                "segmentation_uid": None
                if segment is None
                else str(segment.referenced_sop_instance_uid),
                "algorithm": _algorithm(group),
            }
        )
    return lesions

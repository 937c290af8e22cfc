"""DICOM SEG, SR and parametric map written with highdicom and read back (real files)."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from workstation.core.errors import WorkstationError
from workstation.dicom.synthetic import write_series
from workstation.outputs._dicom_common import AlgorithmInfo, OutputError
from workstation.outputs.dicom_seg import SegmentInfo, read_segmentation, write_segmentation
from workstation.outputs.dicom_sr import LesionMeasurement, read_lesion_report, write_lesion_report
from workstation.outputs.parametric_map import read_parametric_map, write_parametric_map

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "resources" / "demo" / "brain_mr"
SHAPE = (12, 40, 48)
ALGORITHM = AlgorithmInfo(name="demo-lesion-seg", version="0.1.0")
SEGMENTS = [SegmentInfo(2, "lesion"), SegmentInfo(5, "edema")]


def _oblique() -> np.ndarray:
    """An orthonormal direction (columns: i, j, k axes) tilted about two axes."""
    a, b = np.deg2rad(25.0), np.deg2rad(10.0)
    about_z = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    about_x = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return about_z @ about_x


def _headers(files: list[Path]) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(path, stop_before_pixels=True) for path in files]


@pytest.fixture(params=["axial", "oblique"])
def source(request: pytest.FixtureRequest, tmp_path: Path) -> list[pydicom.Dataset]:
    """Headers of a 12-slice 40x48 synthetic series, in slice order."""
    stored = np.arange(np.prod(SHAPE), dtype=np.uint16).reshape(SHAPE) % 900
    direction = _oblique() if request.param == "oblique" else None
    files = write_series(
        tmp_path / "source",
        stored,
        spacing=(0.9, 0.9, 1.5),
        origin=(-20.0, -18.0, 30.0),
        direction=direction,
    )
    return _headers(files)


def _labels() -> np.ndarray:
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[3:6, 10:20, 5:15] = 2
    labels[7, 1:3, 1:3] = 5
    labels[4, 15:25, 10:20] = 5  # overlaps/replaces part of the lesion on slice 4
    labels[9, 30:35, 40:44] = 7  # a value no segment describes: ignored
    return labels


def _expected(labels: np.ndarray) -> np.ndarray:
    return np.where(np.isin(labels, [2, 5]), labels, 0).astype(np.uint8)


# --- segmentation ------------------------------------------------------------------------


def test_segmentation_round_trip(source: list[pydicom.Dataset], tmp_path: Path) -> None:
    labels = _labels()
    path = tmp_path / "seg.dcm"
    seg = write_segmentation(source, labels, [*SEGMENTS, SegmentInfo(9, "absent")], ALGORITHM, path)

    back, names = read_segmentation(path, source)
    assert back.dtype == np.uint8 and back.shape == SHAPE
    np.testing.assert_array_equal(back, _expected(labels))
    assert names == {2: "lesion", 5: "edema", 9: "absent"}

    reread = pydicom.dcmread(path)
    assert reread.SOPInstanceUID == seg.SOPInstanceUID
    assert reread.Modality == "SEG" and reread.SegmentationType == "BINARY"
    assert reread.StudyInstanceUID == source[0].StudyInstanceUID
    assert reread.FrameOfReferenceUID == source[0].FrameOfReferenceUID
    assert reread.SeriesInstanceUID not in {source[0].SeriesInstanceUID}
    assert reread.SeriesNumber == 901
    assert reread.Manufacturer == "Medical Workstation"
    assert reread.SoftwareVersions == "0.1.0"
    assert "not for clinical use" in reread.ContentDescription
    assert len(reread.ContentDescription) <= 64
    # Empty frames are omitted: 3 lesion slices + 2 edema slices.
    assert reread.NumberOfFrames == 5
    item = reread.SegmentSequence[0]
    assert item.SegmentAlgorithmType == "AUTOMATIC"
    assert item.SegmentedPropertyTypeCodeSequence[0].CodeValue == "52988006"
    algorithm = item.SegmentationAlgorithmIdentificationSequence[0]
    assert algorithm.AlgorithmName == "demo-lesion-seg"
    assert algorithm.AlgorithmVersion == "0.1.0"

    parsed = hd.seg.segread(path)
    assert parsed.get_segment_numbers() == [1, 2, 3]
    referenced = {str(uid) for uid in (x[2] for x in parsed.get_source_image_uids())}
    assert referenced == {str(item.SOPInstanceUID) for item in source}


def test_segmentation_frames_matched_by_sop_instance(
    source: list[pydicom.Dataset], tmp_path: Path
) -> None:
    """Slices are found by SOP Instance UID, not by frame order."""
    labels = _labels()
    path = tmp_path / "seg.dcm"
    # Written from the reversed series: frames are stored in the opposite slice order.
    write_segmentation(source[::-1], labels[::-1], SEGMENTS, ALGORITHM, path)
    back, _ = read_segmentation(path, source)
    np.testing.assert_array_equal(back, _expected(labels))
    back, _ = read_segmentation(path, source[::-1])
    np.testing.assert_array_equal(back, _expected(labels)[::-1])

    # Each stored frame refers to the source slice whose labels it holds.
    index = {str(item.SOPInstanceUID): k for k, item in enumerate(source)}
    dataset = pydicom.dcmread(path)
    for frame, group in zip(
        dataset.pixel_array, dataset.PerFrameFunctionalGroupsSequence, strict=True
    ):
        uid = group.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        segment = int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        wanted = _expected(labels)[index[str(uid)]] == SEGMENTS[segment - 1].label
        np.testing.assert_array_equal(frame.astype(bool), wanted)


def test_empty_segmentation_is_valid(source: list[pydicom.Dataset], tmp_path: Path) -> None:
    path = tmp_path / "empty.dcm"
    write_segmentation(source, np.zeros(SHAPE, np.uint8), SEGMENTS, ALGORITHM, path)
    parsed = hd.seg.segread(path)
    assert parsed.NumberOfFrames >= 1
    back, names = read_segmentation(path, source)
    assert not back.any() and back.shape == SHAPE
    assert names == {2: "lesion", 5: "edema"}


def test_segmentation_refusals(source: list[pydicom.Dataset], tmp_path: Path) -> None:
    with pytest.raises(OutputError, match=r"shape \(12, 40, 47\).*\(12, 40, 48\)"):
        write_segmentation(
            source, np.zeros((12, 40, 47), np.uint8), SEGMENTS, ALGORITHM, tmp_path / "x.dcm"
        )
    with pytest.raises(OutputError, match="No source slices"):
        write_segmentation([], np.zeros(SHAPE, np.uint8), SEGMENTS, ALGORITHM, tmp_path / "x.dcm")
    with pytest.raises(OutputError, match="repeat"):
        write_segmentation(
            source,
            _labels(),
            [SegmentInfo(2, "a"), SegmentInfo(2, "b")],
            ALGORITHM,
            tmp_path / "x.dcm",
        )
    with pytest.raises(OutputError, match="family"):
        write_segmentation(
            source, _labels(), SEGMENTS, AlgorithmInfo("m", "1", family="magic"), tmp_path / "x"
        )
    assert not (tmp_path / "x.dcm").exists()
    assert issubclass(OutputError, WorkstationError)
    with pytest.raises(OutputError, match="No source slices"):
        read_segmentation(tmp_path / "x.dcm", [])


# --- structured report -------------------------------------------------------------------


def test_lesion_report_round_trip(source: list[pydicom.Dataset], tmp_path: Path) -> None:
    seg = write_segmentation(source, _labels(), SEGMENTS, ALGORITHM, tmp_path / "seg.dcm")
    lesions = [
        LesionMeasurement(1, "lesion 1", 0.36, confidence=0.87, centroid_lps_mm=(1.5, -2.0, 33.0)),
        LesionMeasurement(2, "lesion 2", 0.12),
    ]
    path = tmp_path / "sr.dcm"
    sr = write_lesion_report(source, seg, lesions, ALGORITHM, path)

    found = read_lesion_report(path)
    assert [item["name"] for item in found] == ["lesion 1", "lesion 2"]
    assert [item["segment_number"] for item in found] == [1, 2]
    assert found[0]["volume_ml"] == pytest.approx(0.36)
    assert found[0]["volume_unit"] == "ml"
    assert found[0]["confidence"] == pytest.approx(0.87)
    assert found[0]["centroid_lps_mm"] == pytest.approx((1.5, -2.0, 33.0))
    assert found[1]["confidence"] is None and found[1]["centroid_lps_mm"] is None
    assert {item["segmentation_uid"] for item in found} == {seg.SOPInstanceUID}
    assert found[0]["algorithm"] == ("demo-lesion-seg", "0.1.0")

    reread = pydicom.dcmread(path)
    assert reread.SOPInstanceUID == sr.SOPInstanceUID
    assert reread.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert reread.StudyInstanceUID == source[0].StudyInstanceUID
    assert reread.SeriesNumber == 902 and reread.Manufacturer == "Medical Workstation"
    assert reread.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    parsed = hd.sr.srread(path)
    groups = parsed.content.get_volumetric_roi_measurement_groups()
    assert groups[0].referenced_segment.referenced_sop_instance_uid == seg.SOPInstanceUID
    observers = parsed.content.get_observer_contexts()
    assert any(item.observer_type == pydicom.sr.codedict.codes.DCM.Device for item in observers)
    evidence = {
        uid.ReferencedSOPInstanceUID
        for study in reread.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for uid in series.ReferencedSOPSequence
    }
    assert seg.SOPInstanceUID in evidence


def test_zero_lesion_report(source: list[pydicom.Dataset], tmp_path: Path) -> None:
    seg = write_segmentation(source, np.zeros(SHAPE, np.uint8), SEGMENTS, ALGORITHM, tmp_path / "s")
    path = tmp_path / "sr.dcm"
    write_lesion_report(source, seg, [], ALGORITHM, path, findings_text="No lesion found")
    assert read_lesion_report(path) == []
    reread = pydicom.dcmread(path)
    assert reread.SeriesDescription == "No lesion found"
    assert hd.sr.srread(path).content.get_image_measurement_groups()


def test_lesion_report_refusals(source: list[pydicom.Dataset], tmp_path: Path) -> None:
    seg = write_segmentation(source, _labels(), SEGMENTS, ALGORITHM, tmp_path / "seg.dcm")
    with pytest.raises(OutputError, match="segment 4"):
        write_lesion_report(
            source, seg, [LesionMeasurement(4, "x", 1.0)], ALGORITHM, tmp_path / "sr"
        )
    with pytest.raises(OutputError, match="confidence"):
        write_lesion_report(
            source, seg, [LesionMeasurement(1, "x", 1.0, 1.5)], ALGORITHM, tmp_path / "sr"
        )
    with pytest.raises(OutputError, match="not a DICOM SEG"):
        write_lesion_report(source, source[0], [], ALGORITHM, tmp_path / "sr")
    with pytest.raises(OutputError, match="No source slices"):
        write_lesion_report([], seg, [], ALGORITHM, tmp_path / "sr")


# --- parametric map ----------------------------------------------------------------------


def test_parametric_map_round_trip(source: list[pydicom.Dataset], tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    values = (rng.random(SHAPE) * 4.0 - 1.0).astype(np.float64)
    values[5] += 10.0  # a slice that stands out: checks the slice order
    path = tmp_path / "pm.dcm"
    write_parametric_map(source[::-1], values[::-1], ALGORITHM, path, name="heatmap")

    back = read_parametric_map(path, source)
    assert back.dtype == np.float32 and back.shape == SHAPE
    np.testing.assert_allclose(back, values.astype(np.float32), rtol=0, atol=0)

    reread = pydicom.dcmread(path)
    assert reread.ContentLabel == "HEATMAP"
    assert reread.StudyInstanceUID == source[0].StudyInstanceUID
    assert reread.FrameOfReferenceUID == source[0].FrameOfReferenceUID
    assert reread.SeriesNumber == 903 and "FloatPixelData" in reread
    mapping = reread.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
    assert mapping.LUTLabel == "heatmap"
    assert mapping.MeasurementUnitsCodeSequence[0].CodeValue == "{attribution}"
    voi = reread.SharedFunctionalGroupsSequence[0].FrameVOILUTSequence[0]
    assert float(voi.WindowWidth) == pytest.approx(float(values.max() - values.min()), rel=1e-5)


def test_parametric_map_refusals(source: list[pydicom.Dataset], tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="shape"):
        write_parametric_map(source, np.zeros((3, 40, 48)), ALGORITHM, tmp_path / "p", name="h")
    values = np.zeros(SHAPE, np.float32)
    values[0, 0, 0] = np.nan
    with pytest.raises(OutputError, match="NaN"):
        write_parametric_map(source, values, ALGORITHM, tmp_path / "p", name="h")
    with pytest.raises(OutputError, match="No source slices"):
        write_parametric_map([], values, ALGORITHM, tmp_path / "p", name="h")


# --- the demo study ----------------------------------------------------------------------


def _demo() -> tuple[list[pydicom.Dataset], np.ndarray, np.ndarray]:
    """Demo brain headers, a 6 mm spherical lesion label and the distance to its centre."""
    if not DEMO.is_dir():
        pytest.skip("demo study not present")
    source = _headers(sorted(DEMO.glob("IM*.dcm")))
    shape = (len(source), int(source[0].Rows), int(source[0].Columns))
    k, j, i = np.ogrid[: shape[0], : shape[1], : shape[2]]
    distance = np.sqrt((k - 95) ** 2 + (j - 120) ** 2 + (i - 80) ** 2)
    return source, (distance <= 6).astype(np.uint8), distance


def test_demo_study_segmentation_and_map(tmp_path: Path) -> None:
    """A small spherical lesion on the 189-slice demo brain: SEG and heatmap read back."""
    source, labels, distance = _demo()
    write_segmentation(source, labels, [SegmentInfo(1, "lesion")], ALGORITHM, tmp_path / "s")
    back, names = read_segmentation(tmp_path / "s", source)
    np.testing.assert_array_equal(back, labels)
    assert names == {1: "lesion"}

    heat = np.exp(-((distance / 8.0) ** 2)).astype(np.float32)
    write_parametric_map(source, heat, ALGORITHM, tmp_path / "p", name="heatmap")
    np.testing.assert_array_equal(read_parametric_map(tmp_path / "p", source), heat)


def test_demo_study_report(tmp_path: Path) -> None:
    """The report on the demo study (its image library lists all 189 slices: the slow part)."""
    source, labels, _ = _demo()
    seg = write_segmentation(source, labels, [SegmentInfo(1, "lesion")], ALGORITHM, tmp_path / "s")
    spacing = [float(v) for v in source[0].PixelSpacing] + [float(source[0].SliceThickness)]
    volume_ml = float(labels.sum() * np.prod(spacing) / 1000.0)
    write_lesion_report(
        source, seg, [LesionMeasurement(1, "lesion 1", volume_ml, 0.7)], ALGORITHM, tmp_path / "r"
    )
    found = read_lesion_report(tmp_path / "r")
    assert found[0]["volume_ml"] == pytest.approx(volume_ml)
    assert found[0]["segmentation_uid"] == seg.SOPInstanceUID

"""Loading: voxel values, dtypes and geometry, checked against the written truth and SimpleITK.

Covers shuffled/renamed files (Hypothesis), random oblique geometry against SimpleITK's
ImageSeriesReader (Hypothesis), per-slice rescale, bit depths with garbage high bits, transfer
syntaxes, missing geometry, and enhanced multi-frame objects.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from geometry import quaternion_rotation
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

from workstation.dicom import AmbiguousSeriesError, load_series, scan
from workstation.dicom.synthetic import SeriesSpec, write_series

HYPOTHESIS = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _sitk_read(folder: Path | str) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def _rewrite(path: Path, **attributes: object) -> None:
    ds = pydicom.dcmread(path)
    for keyword, value in attributes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    ds.save_as(path)


# --------------------------------------------------------------------------- file names, order


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One oblique series and its volume as loaded from the original files."""
    folder = tmp_path_factory.mktemp("reference")
    angle = np.radians(20.0)
    direction = np.array(
        [[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]]
    )
    stored = np.random.default_rng(3).integers(0, 4096, (9, 16, 20), dtype=np.uint16)
    paths = write_series(
        folder,
        stored,
        spacing=(0.7, 0.8, 3.0),
        origin=(-40.0, 10.0, 25.0),
        direction=direction,
        spec=SeriesSpec(rescale_intercept=-1024.0),
    )
    return paths, stored, load_series(folder)


_NAME = st.builds(
    str.__add__,
    st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789_"),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-.", max_size=11),
)


@HYPOTHESIS
@given(data=st.data())
def test_shuffled_renamed_nested_files_give_the_same_volume(reference, data):
    paths, stored, expected = reference
    order = data.draw(st.permutations(range(len(paths))), label="order")
    names = data.draw(
        st.lists(_NAME, min_size=len(paths), max_size=len(paths), unique=True), label="names"
    )
    depths = data.draw(st.lists(st.integers(0, 2), min_size=len(paths), max_size=len(paths)))
    with tempfile.TemporaryDirectory() as root:
        for position, (k, name, depth) in enumerate(zip(order, names, depths, strict=True)):
            folder = Path(root, *[f"d{position % 3}"] * depth)
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(paths[k], folder / name)
        catalog = scan(root)
        assert catalog.problems == []
        volume = load_series(catalog)
    np.testing.assert_array_equal(volume.array, expected.array)
    np.testing.assert_array_equal(volume.array, stored.astype(np.int32) - 1024)
    assert volume.array.dtype == expected.array.dtype
    assert volume.spacing == expected.spacing
    assert volume.origin == expected.origin
    np.testing.assert_array_equal(volume.direction, expected.direction)
    assert volume.warnings == ()


# --------------------------------------------------------------------------- geometry vs SimpleITK


@st.composite
def _rotations(draw) -> np.ndarray:
    """A random proper rotation matrix (from a random unit quaternion)."""
    q = np.array(draw(st.lists(st.floats(-1, 1), min_size=4, max_size=4)))
    return quaternion_rotation(q, fallback=(1.0, 0.0, 0.0, 0.0))


_SPACING = st.floats(0.25, 6.0).map(lambda v: round(v, 3))
_COORDINATE = st.floats(-300, 300).map(lambda v: round(v, 3))


@HYPOTHESIS
@given(
    rotation=_rotations(),
    left_handed=st.booleans(),
    spacing=st.tuples(_SPACING, _SPACING, _SPACING),
    origin=st.tuples(_COORDINATE, _COORDINATE, _COORDINATE),
    slices=st.integers(2, 7),
    rescale=st.sampled_from([(1.0, 0.0), (1.0, -1024.0), (2.0, -100.0), (0.5, 3.25)]),
    seed=st.integers(0, 2**16),
)
def test_random_oblique_geometry_matches_simpleitk(
    rotation, left_handed, spacing, origin, slices, rescale, seed
):
    slope, intercept = rescale
    stored = np.random.default_rng(seed).integers(0, 4096, (slices, 12, 10), dtype=np.uint16)
    # Left-handed: files written against the slice normal (row × column), so the loader must
    # reverse them; the volume then starts at the last slice written.
    written_direction = rotation * np.array([1.0, 1.0, -1.0 if left_handed else 1.0])
    with tempfile.TemporaryDirectory() as folder:
        write_series(
            folder,
            stored,
            spacing=spacing,
            origin=origin,
            direction=written_direction,
            spec=SeriesSpec(rescale_slope=slope, rescale_intercept=intercept),
        )
        volume = load_series(folder)
        image = _sitk_read(folder)
    assert volume.warnings == ()
    np.testing.assert_allclose(volume.spacing, image.GetSpacing(), atol=1e-3)
    np.testing.assert_allclose(volume.origin, image.GetOrigin(), atol=1e-3)
    np.testing.assert_allclose(volume.direction.ravel(), image.GetDirection(), atol=1e-4)
    np.testing.assert_array_equal(volume.array, sitk.GetArrayFromImage(image))
    # ... and the truth that was written.
    if left_handed:
        stored = stored[::-1]
        origin = np.add(origin, (slices - 1) * spacing[2] * written_direction[:, 2])
    np.testing.assert_allclose(volume.spacing, spacing, atol=1e-3)
    np.testing.assert_allclose(volume.origin, origin, atol=1e-3)
    np.testing.assert_allclose(volume.direction, rotation, atol=1e-4)
    truth = stored.astype(np.float64) * slope + intercept
    np.testing.assert_array_equal(volume.array, truth.astype(volume.array.dtype))
    np.testing.assert_array_equal(volume.array, truth)


# --------------------------------------------------------------------------- values and dtypes


def test_rescale_differing_per_slice_non_integer(make_series):
    written = make_series(slices=6)
    slopes = [0.1, 0.37, 1.5, 2.0, 0.003, 7.25]
    intercepts = [-1024.0, 0.5, -3.3, 0.0, 12.0, -0.1]
    for path, slope, intercept in zip(written.paths, slopes, intercepts, strict=True):
        _rewrite(path, RescaleSlope=str(slope), RescaleIntercept=str(intercept))
    volume = load_series(written.folder)
    assert volume.array.dtype == np.float32
    for k, (slope, intercept) in enumerate(zip(slopes, intercepts, strict=True)):
        # The float32 nearest to stored × slope + intercept (computed exactly in float64).
        truth = (written.stored[k].astype(np.float64) * slope + intercept).astype(np.float32)
        np.testing.assert_array_equal(volume.array[k], truth, err_msg=f"slice {k}")


def test_rescale_differing_per_slice_integer(make_series):
    written = make_series(slices=4)
    for path, (slope, intercept) in zip(
        written.paths, [(1, -1024), (2, 0), (3, -2000), (1, 5)], strict=True
    ):
        _rewrite(path, RescaleSlope=str(slope), RescaleIntercept=str(intercept))
    volume = load_series(written.folder)
    assert volume.array.dtype.kind == "i"
    expected = written.stored.astype(np.int64) * np.array([1, 2, 3, 1])[:, None, None]
    expected += np.array([-1024, 0, -2000, 5])[:, None, None]
    np.testing.assert_array_equal(volume.array, expected)


_DS = st.one_of(
    st.integers(-3000, 3000).map(float),
    st.floats(-3000, 3000, allow_nan=False).map(lambda v: float(f"{v:.6g}")),
)


@HYPOTHESIS
@given(
    bits_stored=st.integers(9, 16),
    signed=st.booleans(),
    rescale=st.lists(st.tuples(_DS.filter(lambda v: v != 0), _DS), min_size=3, max_size=3),
    seed=st.integers(0, 2**16),
)
def test_stored_bits_and_rescale_give_exact_values(bits_stored, signed, rescale, seed):
    """Any BitsStored, sign and per-slice rescale: exact integers, or the nearest float32."""
    rng = np.random.default_rng(seed)
    shape = (len(rescale), 6, 5)
    if signed:
        truth = rng.integers(-(1 << (bits_stored - 1)), 1 << (bits_stored - 1), shape)
    else:
        truth = rng.integers(0, 1 << bits_stored, shape)
    garbage = rng.integers(0, 1 << (16 - bits_stored), shape) << bits_stored
    words = ((truth & ((1 << bits_stored) - 1)) | garbage).astype(np.uint16)
    with tempfile.TemporaryDirectory() as folder:
        paths = write_series(
            folder,
            words.view(np.int16) if signed else words,
            spec=SeriesSpec(extra={"BitsStored": bits_stored, "HighBit": bits_stored - 1}),
        )
        for path, (slope, intercept) in zip(paths, rescale, strict=True):
            _rewrite(path, RescaleSlope=f"{slope!r}"[:16], RescaleIntercept=f"{intercept!r}"[:16])
        volume = load_series(folder)
    exact = truth.astype(np.float64) * np.array([s for s, _ in rescale])[:, None, None]
    exact += np.array([i for _, i in rescale])[:, None, None]
    if all(float(v).is_integer() for pair in rescale for v in pair):
        assert volume.array.dtype.kind in "iu"
        np.testing.assert_array_equal(volume.array, exact)
    else:
        assert volume.array.dtype == np.float32
        np.testing.assert_array_equal(volume.array, exact.astype(np.float32))


def test_12_bit_unsigned_with_intercept_gives_int16(make_series):
    written = make_series(rescale_intercept=-1024.0, extra={"BitsStored": 12, "HighBit": 11})
    volume = load_series(written.folder)
    assert volume.array.dtype == np.int16
    np.testing.assert_array_equal(volume.array, written.stored.astype(np.int32) - 1024)
    np.testing.assert_array_equal(volume.array, sitk.GetArrayFromImage(_sitk_read(written.folder)))


def test_identity_rescale_keeps_stored_dtype(make_series):
    for dtype in (np.uint8, np.int16, np.uint16):
        written = make_series(f"s{np.dtype(dtype).name}", dtype=dtype)
        volume = load_series(written.folder)
        assert volume.array.dtype == dtype
        np.testing.assert_array_equal(volume.array, written.stored)


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
@pytest.mark.parametrize("intercept", [0.0, -1024.0])
def test_bits_stored_below_bits_allocated_with_garbage_high_bits(signed, intercept, make_series):
    rng = np.random.default_rng(7)
    shape = (5, 16, 16)
    garbage = rng.integers(1, 16, shape).astype(np.uint16) << 12
    if signed:
        truth = rng.integers(-2048, 2048, shape).astype(np.int16)
        words = ((truth.astype(np.int32) & 0xFFF).astype(np.uint16) | garbage).view(np.int16)
    else:
        truth = rng.integers(0, 4096, shape).astype(np.uint16)
        words = truth | garbage
    written = make_series(
        stored=words, rescale_intercept=intercept, extra={"BitsStored": 12, "HighBit": 11}
    )
    volume = load_series(written.folder)
    expected = truth.astype(np.int32) + int(intercept)
    np.testing.assert_array_equal(volume.array, expected)
    assert volume.array.dtype == (np.int16 if signed or intercept else np.uint16)
    pixel_arrays = [pydicom.dcmread(p).pixel_array for p in written.paths]
    np.testing.assert_array_equal(
        np.stack(pixel_arrays).astype(np.int32) + int(intercept), volume.array
    )
    np.testing.assert_array_equal(sitk.GetArrayFromImage(_sitk_read(written.folder)), volume.array)


def test_missing_position_and_orientation_loads_with_warning(make_series):
    written = make_series(slices=5)
    for path in written.paths:
        _rewrite(path, ImagePositionPatient=None, ImageOrientationPatient=None)
    [series] = scan(written.folder).series
    assert series.stack.loadable
    volume = load_series(written.folder)
    assert any("no image position/orientation" in w for w in volume.warnings)
    np.testing.assert_array_equal(volume.array, written.stored)  # InstanceNumber order
    np.testing.assert_array_equal(volume.direction, np.eye(3))


def test_monochrome1_is_noted_in_metadata(make_series):
    written = make_series(slices=3, extra={"PhotometricInterpretation": "MONOCHROME1"})
    volume = load_series(written.folder)
    assert volume.metadata["photometric"] == "MONOCHROME1"
    np.testing.assert_array_equal(volume.array, written.stored)  # values are not inverted


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRBigEndian], ids=str)
def test_other_native_transfer_syntaxes_load_like_explicit_little_endian(syntax, make_series):
    explicit = make_series("explicit", rescale_intercept=-1024.0)
    other = make_series("other", stored=explicit.stored, rescale_intercept=-1024.0)
    for k, path in enumerate(other.paths):
        ds = pydicom.dcmread(path)
        ds.file_meta.TransferSyntaxUID = syntax
        if not syntax.is_little_endian:
            ds.PixelData = other.stored[k].astype(">u2").tobytes()
            ds["PixelData"].VR = "OW"
        pydicom.dcmwrite(
            path,
            ds,
            implicit_vr=syntax.is_implicit_VR,
            little_endian=syntax.is_little_endian,
            force_encoding=True,
        )
    [series] = scan(other.folder).series
    assert series.stack.first.transfer_syntax == syntax
    reference, volume = load_series(explicit.folder), load_series(other.folder)
    np.testing.assert_array_equal(volume.array, reference.array)
    assert volume.array.dtype == reference.array.dtype
    assert volume.spacing == reference.spacing and volume.origin == reference.origin
    np.testing.assert_array_equal(volume.direction, reference.direction)


# --------------------------------------------------------------------------- enhanced multi-frame


def _write_enhanced(
    path: Path,
    frames: np.ndarray,
    positions: Sequence[Sequence[float]],
    *,
    orientation: Sequence[float] = (1, 0, 0, 0, 1, 0),
    pixel_spacing: Sequence[float] = (0.9, 0.8),
    thickness: float = 2.0,
    rescale: tuple[float, float] | None = (2.0, -100.0),
    frame_content: Sequence[dict[str, object]] | None = None,
    frame_types: Sequence[Sequence[str]] | None = None,
) -> None:
    """An Enhanced MR Image file holding ``frames`` (in file order) at ``positions``."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MR"
    ds.PatientName, ds.PatientID = "ENHANCED^TEST", "ENH1"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.SeriesNumber, ds.InstanceNumber = 3, 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.NumberOfFrames = len(frames)
    ds.Rows, ds.Columns = frames.shape[1:]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0

    measures = Dataset()
    measures.PixelSpacing = [str(v) for v in pixel_spacing]
    measures.SliceThickness = str(thickness)
    plane = Dataset()
    plane.ImageOrientationPatient = [f"{v:.8f}" for v in orientation]
    shared = Dataset()
    shared.PixelMeasuresSequence = DicomSequence([measures])
    shared.PlaneOrientationSequence = DicomSequence([plane])
    if rescale is not None:
        transform = Dataset()
        transform.RescaleSlope, transform.RescaleIntercept = (str(v) for v in rescale)
        transform.RescaleType = "US"
        shared.PixelValueTransformationSequence = DicomSequence([transform])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])

    per_frame = []
    for index, position in enumerate(positions):
        group = Dataset()
        where = Dataset()
        where.ImagePositionPatient = [f"{v:.6f}" for v in position]
        group.PlanePositionSequence = DicomSequence([where])
        content = Dataset()
        for keyword, value in (frame_content[index] if frame_content else {}).items():
            setattr(content, keyword, value)
        group.FrameContentSequence = DicomSequence([content])
        if frame_types is not None:
            frame_type = Dataset()
            frame_type.FrameType = list(frame_types[index])
            group.MRImageFrameTypeSequence = DicomSequence([frame_type])
        per_frame.append(group)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    ds.PixelData = np.ascontiguousarray(frames, dtype="<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_enhanced_multiframe_frames_are_sorted_by_position(tmp_path):
    rng = np.random.default_rng(11)
    truth = rng.integers(0, 4096, (8, 12, 14), dtype=np.uint16)
    angle = np.radians(15.0)
    row = np.array([np.cos(angle), np.sin(angle), 0.0])
    column = np.array([-np.sin(angle), np.cos(angle), 0.0])
    normal = np.cross(row, column)
    origin = np.array([-20.0, 5.0, 30.0])
    file_order = rng.permutation(8)
    positions = [origin + k * 2.5 * normal for k in file_order]
    path = tmp_path / "enhanced.dcm"
    _write_enhanced(
        path,
        truth[file_order],
        positions,
        orientation=(*row, *column),
        frame_content=[{"InStackPositionNumber": int(k) + 1, "StackID": "1"} for k in file_order],
    )
    catalog = scan(tmp_path)
    assert catalog.problems == []
    [series] = catalog.series
    assert series.slice_count == 8 and series.files == [str(path)]
    volume = load_series(path)
    np.testing.assert_array_equal(volume.array, truth.astype(np.int32) * 2 - 100)
    np.testing.assert_allclose(volume.origin, origin, atol=1e-5)
    np.testing.assert_allclose(volume.spacing, (0.8, 0.9, 2.5), atol=1e-6)
    np.testing.assert_allclose(volume.direction, np.column_stack([row, column, normal]), atol=1e-6)
    assert volume.warnings == ()


@pytest.mark.parametrize("split_by", ["StackID", "TemporalPositionIndex", "FrameType"])
def test_enhanced_two_stacks_at_the_same_positions_are_split(split_by, tmp_path):
    rng = np.random.default_rng(12)
    truth = rng.integers(0, 4096, (2, 5, 8, 8), dtype=np.uint16)  # [stack, k, j, i]
    frames, positions, content, types = [], [], [], []
    for k in range(5):  # interleaved: stack 1 and stack 2 alternate in the file
        for s in range(2):
            frames.append(truth[s, 4 - k])
            positions.append((0.0, 0.0, 3.0 * (4 - k)))
            if split_by == "StackID":
                content.append({"StackID": str(s + 1), "InStackPositionNumber": 5 - k})
            elif split_by == "TemporalPositionIndex":
                content.append({"TemporalPositionIndex": s + 1})
            else:
                content.append({})
            types.append(["ORIGINAL", "PRIMARY", "M" if s == 0 else "P", "NONE"])
    path = tmp_path / "two_stacks.dcm"
    _write_enhanced(
        path,
        np.stack(frames),
        positions,
        rescale=None,
        frame_content=content,
        frame_types=types if split_by == "FrameType" else None,
    )
    catalog = scan(path)
    series = catalog.series
    uid = series[0].uid
    assert sorted(s.key for s in series) == [f"{uid}:1", f"{uid}:2"]
    assert all(s.stack.loadable and s.slice_count == 5 for s in series)
    with pytest.raises(AmbiguousSeriesError):
        load_series(catalog)
    loaded = [load_series(catalog, s.key).array for s in series]
    assert sum(np.array_equal(a, truth[0]) for a in loaded) == 1
    assert sum(np.array_equal(a, truth[1]) for a in loaded) == 1


def test_legacy_style_multiframe_without_functional_groups(tmp_path):
    """A multi-frame file with top-level position and SpacingBetweenSlices (legacy style)."""
    truth = np.random.default_rng(13).integers(0, 255, (4, 6, 6), dtype=np.uint8)
    path = tmp_path / "legacy_mf"
    write_series(tmp_path / "single", truth[:1])
    ds = pydicom.dcmread(next((tmp_path / "single").iterdir()))
    ds.NumberOfFrames = 4
    ds.SpacingBetweenSlices = "3.5"
    ds.PixelData = truth.tobytes()
    ds.save_as(path)
    volume = load_series(path)
    np.testing.assert_array_equal(volume.array, truth)
    assert volume.spacing[2] == pytest.approx(3.5)

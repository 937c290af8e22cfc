"""Scanning: grouping into series and stacks, geometry warnings, duplicates, cancel, progress.

Also checks that the fast header reader (``_skim``) agrees with the pydicom path on every
single-frame file pydicom ships.
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from workstation.core import Cancelled, CancelToken
from workstation.dicom import (
    AmbiguousSeriesError,
    UnsupportedSeriesError,
    load_series,
    scan,
)
from workstation.dicom._skim import skim
from workstation.dicom.header import _read_with_pydicom, header_from_values

TEST_FILES = Path(get_testdata_file("CT_small.dcm")).parent
DICOMDIR_TREE = TEST_FILES / "dicomdirtests"


def _set(path: Path, **attributes: object) -> None:
    """Rewrite one file with changed header attributes (pixel data untouched)."""
    ds = pydicom.dcmread(path)
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    ds.save_as(path)


def _position(path: Path) -> np.ndarray:
    return np.asarray(pydicom.dcmread(path, stop_before_pixels=True).ImagePositionPatient, float)


# --------------------------------------------------------------------------- geometry warnings


def test_clean_series_has_no_warnings_and_no_problems(make_series):
    written = make_series()
    catalog = scan(written.folder)
    assert catalog.problems == []
    [series] = catalog.series
    assert series.key == written.uid
    assert series.slice_count == 12
    assert series.warnings == ()
    assert catalog.files_seen == catalog.dicom_files == 12


def test_missing_middle_slice_warns(make_series):
    written = make_series()
    written.paths[6].unlink()
    [series] = scan(written.folder).series
    assert series.slice_count == 11
    assert len(series.warnings) == 1
    assert "1 slice(s) missing" in series.warnings[0]
    volume = load_series(written.folder)
    assert volume.spacing[2] == pytest.approx(2.5)
    assert any("missing" in w for w in volume.warnings)


def test_uneven_spacing_warns(make_series):
    written = make_series()
    # Move slice 5 by 0.6 mm along the normal (z): uneven but no gap.
    position = _position(written.paths[5]) + np.array([0.0, 0.0, 0.6])
    _set(written.paths[5], ImagePositionPatient=[f"{v:.6f}" for v in position])
    [series] = scan(written.folder).series
    assert len(series.warnings) == 1
    assert "uneven slice spacing" in series.warnings[0]
    assert series.stack.slice_spacing == pytest.approx(2.5)


def test_gantry_tilt_warns(make_series):
    written = make_series()
    # Shear the stack along the row direction (x): 0.5 mm per 2.5 mm slice ≈ 11.3°.
    for k, path in enumerate(written.paths):
        position = _position(path) + np.array([0.5 * k, 0.0, 0.0])
        _set(path, ImagePositionPatient=[f"{v:.6f}" for v in position], GantryDetectorTilt=11.3)
    [series] = scan(written.folder).series
    assert len(series.warnings) == 1
    assert "gantry tilt" in series.warnings[0]
    assert "11.31°" in series.warnings[0]
    volume = load_series(written.folder)
    np.testing.assert_array_equal(volume.array, written.stored)
    assert volume.spacing[2] == pytest.approx(2.5)


def test_orientation_jitter_across_a_rounding_boundary_is_one_stack(make_series):
    """Direction cosines that differ in the 7th decimal are one orientation, wherever they lie."""
    written = make_series(slices=6)
    a = 0.12345  # jitter around it crosses a 4-decimal rounding boundary
    row = np.array([np.sqrt(1 - a * a), a, 0.0])
    column = np.array([-a, np.sqrt(1 - a * a), 0.0])
    normal = np.cross(row, column)
    for k, path in enumerate(written.paths):
        jitter = np.array([0.0, (-1) ** k * 2e-7, 0.0])
        _set(
            path,
            ImageOrientationPatient=[f"{v:.8f}" for v in (*(row + jitter), *column)],
            ImagePositionPatient=[f"{v:.6f}" for v in k * 2.5 * normal],
        )
    [series] = scan(written.folder).series
    assert series.slice_count == 6
    assert series.warnings == ()
    np.testing.assert_array_equal(load_series(written.folder).array, written.stored)


# --------------------------------------------------------------------------- duplicates, series


def test_duplicate_file_is_dropped_and_reported(make_series):
    written = make_series()
    copy = written.folder / "sub" / "copy_of_slice_4"
    copy.parent.mkdir()
    shutil.copyfile(written.paths[3], copy)
    catalog = scan(written.folder)
    [series] = catalog.series
    assert series.slice_count == 12
    assert series.warnings == ()
    [problem] = catalog.problems
    # Exactly one of the two identical files is dropped; the reason names the one kept.
    pair = {str(written.paths[3]), str(copy)}
    assert problem.path in pair
    kept = (pair - {problem.path}).pop()
    assert "duplicate" in problem.reason
    assert kept in problem.reason
    volume = load_series(catalog)
    np.testing.assert_array_equal(volume.array, written.stored)


def test_two_series_in_one_folder(make_series, tmp_path):
    folder = tmp_path / "mixed"
    first = make_series(folder=folder, series_number=1, file_pattern="A{index:03d}")
    second = make_series(
        folder=folder,
        series_number=2,
        seed=1,
        slices=7,
        file_pattern="B{index:03d}",
        study_uid=pydicom.dcmread(first.paths[0]).StudyInstanceUID,
    )
    catalog = scan(folder)
    assert catalog.problems == []
    assert [s.key for s in catalog.series] == [first.uid, second.uid]
    assert [s.slice_count for s in catalog.series] == [12, 7]
    assert len(catalog.patients) == 1 and len(catalog.patients[0].studies) == 1
    with pytest.raises(AmbiguousSeriesError) as caught:
        load_series(folder)
    assert set(caught.value.choices) == {first.uid, second.uid}
    assert first.uid in str(caught.value) and second.uid in str(caught.value)
    np.testing.assert_array_equal(load_series(folder, first.uid).array, first.stored)
    np.testing.assert_array_equal(load_series(folder, second.uid).array, second.stored)


def test_localizer_of_other_orientation_is_split(make_series, tmp_path):
    folder = tmp_path / "with_localizer"
    axial = make_series(folder=folder, file_pattern="AX{index:03d}")
    sagittal = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    localizer = make_series(
        folder=folder,
        slices=3,
        seed=2,
        direction=sagittal,
        spacing=(1.0, 1.0, 10.0),
        file_pattern="LOC{index:03d}",
        series_uid=axial.uid,
        study_uid=pydicom.dcmread(axial.paths[0]).StudyInstanceUID,
    )
    catalog = scan(folder)
    stacks = {s.key: s for s in catalog.series}
    assert set(stacks) == {f"{axial.uid}:1", f"{axial.uid}:2"}
    by_count = {s.slice_count: s for s in stacks.values()}
    assert set(by_count) == {12, 3}
    assert "axial" in by_count[12].stack.label
    assert "sagittal" in by_count[3].stack.label
    with pytest.raises(AmbiguousSeriesError) as caught:
        load_series(folder, axial.uid)
    assert set(caught.value.choices) == set(stacks)
    volume = load_series(folder, by_count[12].key)
    np.testing.assert_array_equal(volume.array, axial.stored)
    volume = load_series(folder, by_count[3].key)
    np.testing.assert_array_equal(volume.array, localizer.stored)
    np.testing.assert_allclose(volume.direction, sagittal, atol=1e-6)


@pytest.mark.parametrize("attribute", ["TemporalPositionIdentifier", "EchoNumbers"])
def test_repeated_positions_split_by(attribute, make_series, tmp_path):
    folder = tmp_path / "repeats"
    first = make_series(folder=folder, slices=6, file_pattern="T1_{index:03d}",
                        extra={attribute: 1})  # fmt: skip
    second = make_series(
        folder=folder,
        slices=6,
        seed=5,
        file_pattern="T2_{index:03d}",
        series_uid=first.uid,
        study_uid=pydicom.dcmread(first.paths[0]).StudyInstanceUID,
        extra={attribute: 2},
    )
    catalog = scan(folder)
    assert catalog.problems == []
    series = catalog.series
    assert [s.key for s in series] == [f"{first.uid}:1", f"{first.uid}:2"]
    assert all(s.stack.loadable and s.slice_count == 6 and not s.warnings for s in series)
    loaded = [load_series(catalog, s.key).array for s in series]
    np.testing.assert_array_equal(loaded[0], first.stored)
    np.testing.assert_array_equal(loaded[1], second.stored)


def test_repeated_positions_without_distinction_are_refused(repeated_positions_folder):
    folder = repeated_positions_folder
    catalog = scan(folder)
    [series] = catalog.series
    assert not series.stack.loadable
    assert "positions repeat (12 images at 6 positions)" in series.stack.problem
    for args in ((folder,), (folder, series.uid), (catalog, series.key)):
        with pytest.raises(UnsupportedSeriesError, match="positions repeat"):
            load_series(*args)


def test_mosaic_is_not_loadable(make_series):
    written = make_series(slices=2, extra={"ImageType": ["ORIGINAL", "PRIMARY", "M", "MOSAIC"]})
    catalog = scan(written.folder)
    [series] = catalog.series
    assert not series.stack.loadable
    assert "mosaic" in series.stack.problem
    with pytest.raises(UnsupportedSeriesError, match="mosaic"):
        load_series(written.folder)
    with pytest.raises(UnsupportedSeriesError, match="mosaic"):
        load_series(written.folder, written.uid)


@pytest.mark.parametrize("vr", ["US", "UN"])
@pytest.mark.parametrize("private_creator", ["SIEMENS MR HEADER", "GEMS_PETD_01", None])
def test_siemens_mosaic_tag_needs_its_private_creator(private_creator, vr, make_series):
    """(0019,100A) is NumberOfImagesInMosaic only in the SIEMENS MR HEADER private block.

    Both header readers must agree, also when the element arrives with VR UN (as after a PACS
    that does not know the private dictionary).
    """
    written = make_series(slices=3)
    siemens = private_creator == "SIEMENS MR HEADER"
    # 16 images per mosaic (US), or a GE PET "activity factor" 1.1 (FL) / an unowned element.
    value = struct.pack("<H", 16) if siemens else struct.pack("<f", 1.1)
    for path in written.paths:
        ds = pydicom.dcmread(path)
        if private_creator is not None:
            ds.add_new(0x00190010, "LO", private_creator)
        if vr == "UN":
            ds.add_new(0x0019100A, "UN", value)
        elif siemens:
            ds.add_new(0x0019100A, "US", 16)
        else:
            ds.add_new(0x0019100A, "FL", 1.1)
        ds.save_as(path)
    [series] = scan(written.folder).series
    assert series.stack.problem is None if not siemens else "mosaic" in series.stack.problem
    head = written.paths[0].read_bytes()
    [slow] = _read_with_pydicom(str(written.paths[0]), head, len(head))
    assert slow.mosaic == siemens
    assert slow == series.stack.slices[0]


# --------------------------------------------------------------------------- DICOMDIR


def test_dicomdir_tree_scans_without_listing_the_directory_files():
    catalog = scan(DICOMDIR_TREE)
    ct5n = next(s for s in catalog.series if "CT5N" in s.files[0])
    assert ct5n.slice_count == 5 and ct5n.stack.loadable
    assert len(catalog.series) >= 10
    flagged = [p for p in catalog.problems if "DICOMDIR" in os.path.basename(p.path)]
    assert flagged == []
    volume = load_series(catalog, ct5n.key)
    assert volume.shape == (5, 16, 16)


def test_dicomdir_file_as_source_scans_its_tree():
    catalog = scan(DICOMDIR_TREE / "DICOMDIR")
    assert any("CT5N" in s.files[0] and s.slice_count == 5 for s in catalog.series)
    assert not any("DICOMDIR" in os.path.basename(p.path) for p in catalog.problems)


# --------------------------------------------------------------------------- cancel, progress


def test_progress_reaches_total(make_series):
    written = make_series()
    reports: list[tuple[int, int]] = []
    scan(written.folder, progress=lambda done, total, message: reports.append((done, total)))
    assert reports[0] == (0, 12)
    assert reports[-1] == (12, 12)
    reports.clear()
    load_series(written.folder, progress=lambda d, t, m: reports.append((d, t)))
    assert reports[-1] == (12, 12)
    assert all(d <= t for d, t in reports)


def test_cancel_from_progress_callback(make_series):
    written = make_series()
    token = CancelToken()

    def cancel_now(done: int, total: int, message: str = "") -> None:
        token.cancel()

    with pytest.raises(Cancelled):
        scan(written.folder, progress=cancel_now, cancel=token)
    token = CancelToken()
    with pytest.raises(Cancelled):
        load_series(written.folder, progress=cancel_now, cancel=token)


def test_cancel_before_start(make_series):
    written = make_series()
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        scan(written.folder, cancel=token)
    with pytest.raises(Cancelled):
        load_series(written.folder, cancel=token)


def test_scan_with_worker_processes_matches_serial(make_series, monkeypatch):
    scan_module = importlib.import_module("workstation.dicom.scan")

    written = make_series()
    (written.folder / "junk.dcm").write_bytes(b"not dicom")
    monkeypatch.setattr(scan_module, "_CHUNK", 4)
    serial = scan(written.folder, workers=1)
    parallel = scan(written.folder, workers=2)
    assert [s.stack for s in parallel.series] == [s.stack for s in serial.series]
    assert parallel.problems == serial.problems


# --------------------------------------------------------------------------- fast reader


def _with_long_header(path: Path, frames: np.ndarray | None = None) -> None:
    """Add a 40 kB private element before the pixel data (and optionally more frames)."""
    ds = pydicom.dcmread(path)
    ds.add_new(0x00290010, "LO", "SIEMENS CSA HEADER")
    ds.add_new(0x00291010, "OB", bytes(40000))
    if frames is not None:
        ds.NumberOfFrames = len(frames)
        ds.Rows, ds.Columns = frames.shape[1:]
        ds.SpacingBetweenSlices = "2.5"
        ds.PixelData = frames.tobytes()
    ds.save_as(path)


def test_header_longer_than_the_first_read(make_series):
    written = make_series(slices=3)
    for path in written.paths:
        _with_long_header(path)
    [series] = scan(written.folder).series
    head = written.paths[0].read_bytes()
    assert series.stack.slices[0] == _read_with_pydicom(str(written.paths[0]), head, len(head))[0]
    np.testing.assert_array_equal(load_series(written.folder).array, written.stored)


def test_scanning_a_large_multiframe_file_reads_only_its_header(make_series, monkeypatch):
    header_module = importlib.import_module("workstation.dicom.header")
    frames = np.random.default_rng(4).integers(0, 4096, (40, 256, 256), dtype=np.uint16)
    written = make_series(slices=1)
    _with_long_header(written.paths[0], frames)
    read_bytes = [0]

    class Counting(io.BufferedReader):
        def read(self, size=-1):
            data = super().read(size)
            read_bytes[0] += len(data)
            return data

    def counting_open(path, mode="r", *args, **kwargs):
        assert mode == "rb"
        return Counting(io.FileIO(path, "rb"))

    monkeypatch.setattr(header_module, "open", counting_open, raising=False)
    [series] = scan(written.folder).series
    assert series.slice_count == 40
    size = written.paths[0].stat().st_size
    assert size > 5_000_000
    assert read_bytes[0] < 2_000_000, f"read {read_bytes[0]} bytes of a {size}-byte file"
    monkeypatch.undo()
    np.testing.assert_array_equal(load_series(written.folder).array, frames)


def _bundled_test_files() -> list[Path]:
    """pydicom's test files, and nibabel's DICOM test files (Siemens mosaics) when installed."""
    roots = [TEST_FILES]
    try:
        import nibabel
    except ImportError:
        pass
    else:
        roots.append(Path(nibabel.__file__).parent / "nicom" / "tests" / "data")
    return sorted(p for root in roots for p in root.rglob("*") if p.is_file())


def test_fast_reader_agrees_with_pydicom_on_bundled_test_files():
    compared = 0
    differences: list[str] = []
    for path in _bundled_test_files():
        size = path.stat().st_size
        data = path.read_bytes()
        values = skim(data[:16384], size) or skim(data[: 1 << 20], size)  # as read_slices does
        if values is None:
            continue
        fast = header_from_values(str(path), values, frame=0, frames=1)
        try:
            slow = _read_with_pydicom(str(path), data[:16384], size)
        except Exception as error:  # noqa: BLE001 - a difference to report, whatever it is
            differences.append(f"{path.name}: skim read it, pydicom path raised {error!r}")
            continue
        if len(slow) != 1:
            differences.append(f"{path.name}: skim read 1 frame, pydicom path {len(slow)}")
            continue
        compared += 1
        for field in dataclasses.fields(fast):
            a, b = getattr(fast, field.name), getattr(slow[0], field.name)
            if a != b:
                differences.append(f"{path.name}: {field.name}: skim {a!r} != pydicom {b!r}")
    assert compared >= 60, compared
    assert differences == []

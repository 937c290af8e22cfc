"""The DICOM engine against real scanner data that no one here wrote.

Every case of ``tests/realdata.py`` (files shipped in the pydicom, pydicom-data, nibabel and
heudiconv wheels; see ``tests/data_sources.md``) is scanned and loaded with
:func:`workstation.dicom.load_series`, and the result is compared with SimpleITK's reading
(geometry: spacing and origin within 1e-3 mm, direction within 1e-4; voxels exactly, or within
the case's ``atol`` for lossy codecs). Where SimpleITK is not a valid reference the case says
why, and the test asserts what the workstation does instead: split mixed orientations into
stacks, warn about missing slices, refuse mosaics with a message, apply the RT Dose scaling.

Sources that cannot be fetched (no package registry) are skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pydicom
import pytest
import realdata
import SimpleITK as sitk
from realdata import Case, Reference

from workstation.core.volume import Volume
from workstation.dicom import (
    AmbiguousSeriesError,
    UnsupportedSeriesError,
    export_volume,
    load_series,
    scan,
)

# bad_sequence.dcm carries a malformed UID; pydicom warns when it reads it.
pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR UI:UserWarning")

ORIGIN_MM = 1e-3  # spacing and origin tolerance (mm)
DIRECTION = 1e-4  # direction cosine tolerance
FLOAT32_RTOL = 1e-6  # a float32 volume holds the float64 reference to ~2 ulp

# Every case of tests/realdata.py, by source; test_case_list_is_current keeps this in step.
CASES: dict[str, list[str]] = {
    "pydicom": [
        "CT5N",
        "CT2-missing-slices",
        "MR700-radial",
        "MR2-localizer",
        "MR2-localizer-b",
        "CT2N-scouts",
        "DICOMDIR-CT5N",
        "CT_small",
        "MR_small",
        "MR_small_implicit",
        "MR_small_bigendian",
        "MR_small_RLE",
        "MR_small_jpeg_ls",
        "MR_small_j2k",
        "693_J2KI",
        "J2K_pixelrep_mismatch",
        "JPGExtended",
        "JPEGLSNearLossless_16",
        "rtdose",
        "rtdose_rle",
    ],
    "pydicom-data": [
        "eCT_Supplemental",
        "emri_small",
        "emri_small_RLE",
        "emri_small_big_endian",
        "emri_small_j2k",
        "emri_small_jpeg_ls",
        "MR2_UNCR",
        "MR2_J2KR",
        "MR2_J2KI",
        "693_J2KR",
        "693_UNCR",
        "bad_sequence",
        "explicit_VR-UN",
        "JPEG-LL",
    ],
    "nibabel": ["siemens_dwi", "philips_mprage", "decimal_rescale", "slicethickness_empty"],
    "heudiconv": ["b0dwiForFmap", "axasc35", "fmap_oblique", "XA_enhanced"],
}
ALL_CASES = [f"{source}/{name}" for source, names in CASES.items() for name in names]

_SOURCES: dict[str, Callable[[Path], list[Case]]] = {
    "pydicom": lambda cache: realdata.pydicom_series(),
    "pydicom-data": realdata.pydicom_data_series,
    "nibabel": realdata.nibabel_series,
    "heudiconv": realdata.heudiconv_series,
}

GetCase = Callable[[str], Case]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def realdata_cache(request: pytest.FixtureRequest, tmp_path_factory) -> Path:
    """Where the data wheels are kept between runs (pytest's cache, else a temp folder)."""
    cache = getattr(request.config, "cache", None)
    if cache is not None:
        return Path(cache.mkdir("realdata"))
    return tmp_path_factory.mktemp("realdata")


@pytest.fixture(scope="session")
def cases_of(realdata_cache: Path) -> Callable[[str], dict[str, Case]]:
    """``cases_of(source)``: that source's cases by name; skips the test when the source
    cannot be fetched. Each source is fetched once per session, when a test first needs it."""
    loaded: dict[str, dict[str, Case] | str] = {}

    def get(source: str) -> dict[str, Case]:
        if source not in loaded:
            try:
                loaded[source] = {c.name: c for c in _SOURCES[source](realdata_cache)}
            except (realdata.DataUnavailable, ImportError) as error:
                loaded[source] = f"{source} data unavailable: {error}"
        cases = loaded[source]
        if isinstance(cases, str):
            pytest.skip(cases)
        return cases

    return get


@pytest.fixture(scope="session")
def get_case(cases_of: Callable[[str], dict[str, Case]]) -> GetCase:
    """``get_case(name)``: one Case (see ``cases_of``)."""
    return lambda name: cases_of(name.split("/", 1)[0])[name]


# --------------------------------------------------------------------------- helpers


def _sitk_files(paths: Sequence[str | Path]) -> Reference:
    """SimpleITK's reading of exactly these files (in this order)."""
    names = [str(p) for p in paths]
    if len(names) == 1:
        image = sitk.ReadImage(names[0])
    else:
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(names)
        image = reader.Execute()
    return realdata._from_sitk(image)


def _header_slice_spacing(path: Path | str) -> float:
    """The k spacing the engine gives a single slice or an image without positions:
    SpacingBetweenSlices, else SliceThickness, else 1 mm. (SimpleITK ignores SliceThickness.)"""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        value = ds.get(keyword)
        if value not in (None, "") and float(value) > 0:
            return float(value)
    return 1.0


def _in_reference_order(volume: Volume, ref: Reference) -> tuple[np.ndarray, Volume]:
    """The volume's array and geometry with k running the way the reference's does.

    The engine stacks slices along the slice normal (a right-handed direction); SimpleITK keeps
    an enhanced file's stored frame order, which can run against the normal (a left-handed
    direction). The same voxels then appear in opposite k order, so flip k to compare them."""
    same_way = float(np.dot(volume.direction[:, 2], ref.direction[:, 2])) > 0
    if same_way or volume.shape[0] == 1:
        return volume.array, volume
    assert np.linalg.det(ref.direction) < 0, "only a left-handed reference may run against k"
    direction = volume.direction.copy()
    direction[:, 2] *= -1
    flipped = Volume(
        array=volume.array[::-1],
        spacing=volume.spacing,
        origin=volume.index_to_lps((0, 0, volume.shape[0] - 1)),
        direction=direction,
    )
    return flipped.array, flipped


def assert_geometry(
    volume: Volume, ref: Reference, *, k_spacing: float | None = None, what: str = ""
) -> None:
    """Spacing and origin within 1e-3 mm, direction within 1e-4.

    ``k_spacing`` replaces the reference's slice spacing where SimpleITK's is not meaningful
    (one slice, or no positions): the engine's value is then checked against it instead."""
    expected_spacing = np.array(ref.spacing, float)
    if k_spacing is not None:
        expected_spacing[2] = k_spacing
    np.testing.assert_allclose(volume.spacing, expected_spacing, atol=ORIGIN_MM, err_msg=what)
    np.testing.assert_allclose(volume.origin, ref.origin, atol=ORIGIN_MM, err_msg=what)
    np.testing.assert_allclose(volume.direction, ref.direction, atol=DIRECTION, err_msg=what)


def assert_voxels(array: np.ndarray, expected: np.ndarray, *, atol: float, what: str = "") -> None:
    """Exact for integer volumes (or within the case's ``atol``); float32 to its precision."""
    assert array.shape == expected.shape, what
    rtol = FLOAT32_RTOL if array.dtype == np.float32 else 0.0
    np.testing.assert_allclose(
        array.astype(np.float64), expected, rtol=rtol, atol=atol, err_msg=what
    )


def assert_matches_sitk(volume: Volume, ref: Reference, case: Case, *, what: str = "") -> None:
    """The volume equals SimpleITK's reading in physical space."""
    array, oriented = _in_reference_order(volume, ref)
    k_spacing = None
    if volume.shape[0] == 1 or "no-geometry" in case.notes:
        k_spacing = _header_slice_spacing(case.files[0])
    assert_geometry(oriented, ref, k_spacing=k_spacing, what=what)
    assert_voxels(array, ref.array, atol=case.atol, what=what)


def _series_of(catalog, uid: str | None) -> list:
    """The catalog entries (stacks) of one SeriesInstanceUID (every entry when ``uid`` is None)."""
    return [s for s in catalog.series if uid is None or s.uid == uid]


def _paths(paths) -> set[Path]:
    return {Path(p).resolve() for p in paths}


# --------------------------------------------------------------------------- the cases


@pytest.mark.parametrize("source", list(CASES))
def test_case_list_is_current(source: str, cases_of) -> None:
    """CASES (the test ids) lists exactly what tests/realdata.py provides."""
    assert list(cases_of(source)) == [f"{source}/{name}" for name in CASES[source]]


@pytest.mark.parametrize("name", ALL_CASES)
def test_real_series(name: str, get_case: GetCase) -> None:
    """Scan and load the case; compare with SimpleITK or check the documented behaviour."""
    case = get_case(name)
    catalog = scan(case.path)
    # A DICOMDIR stands for its folder, which here also holds READMEs and other file-sets.
    if "dicomdir" not in case.notes:
        assert not catalog.problems, [(p.path, p.reason) for p in catalog.problems]
    entries = _series_of(catalog, case.series_uid if case.series_uid else None)
    assert entries, f"scan found no series {case.series_uid}"
    # Every file of the series is in the catalog, and nothing else under its SeriesInstanceUID.
    assert _paths(p for s in entries for p in s.files) == _paths(case.files)

    if "mosaic" in case.notes:
        _check_mosaic_refused(case, catalog, entries)
    elif "not-a-volume" in case.notes:
        _check_split_into_stacks(case, catalog, entries)
    elif "non-uniform" in case.notes:
        _check_missing_slices(case, entries)
    elif "rtdose" in case.notes:
        _check_rt_dose(case, entries)
    elif case.sitk_comparable:
        [series] = entries
        volume = load_series(case.path, case.series_uid)
        assert volume.shape == case.shape
        assert series.slice_count == case.shape[0]
        assert np.linalg.det(volume.direction) > 0, "slices stack along the normal"
        assert_matches_sitk(volume, realdata.sitk_reference(case), case)
        if "no-geometry" in case.notes:
            assert any("position" in w.lower() for w in volume.warnings), volume.warnings
        spacing = series.to_json()["spacing"]
        if spacing is not None:
            np.testing.assert_allclose(spacing, volume.spacing)
    else:
        pytest.fail(f"{name}: no expectation for this case ({case.reason})")


def _check_mosaic_refused(case: Case, catalog, entries) -> None:
    """Scan lists each mosaic (one stack per repeat); loading raises a message naming it."""
    for series in entries:
        assert not series.stack.loadable
        assert "mosaic" in series.stack.problem.lower()
        with pytest.raises(UnsupportedSeriesError, match=r"(?i)mosaic"):
            load_series(catalog, series.key)
    with pytest.raises(UnsupportedSeriesError, match=r"(?i)mosaic"):
        load_series(case.path, case.series_uid)
    # Repeats of one mosaic (4D) are separate entries, never stacked together.
    assert len(entries) == (case.shape[0] if "4d" in case.notes else 1)


def _check_split_into_stacks(case: Case, catalog, entries) -> None:
    """Images of several orientations are split into stacks ``UID:n``, each loadable and each
    equal to SimpleITK's reading of that stack's files alone."""
    assert len(entries) >= 2, [s.stack.label for s in entries]
    assert sorted(s.key for s in entries) == sorted(
        f"{case.series_uid}:{n}" for n in range(1, len(entries) + 1)
    )
    with pytest.raises(AmbiguousSeriesError) as caught:
        load_series(catalog, case.series_uid)
    assert sorted(caught.value.choices) == sorted(s.key for s in entries)
    assert sum(s.slice_count for s in entries) == case.shape[0]
    for series in entries:
        assert series.stack.loadable, series.stack.problem
        volume = load_series(catalog, series.key)
        assert volume.shape[0] == series.slice_count
        orientations = {
            tuple(np.round(s.orientation, 4)) for s in series.stack.slices if s.orientation
        }
        assert len(orientations) == 1, f"{series.key} mixes orientations"
        if "enhanced" in case.notes:
            _check_enhanced_frame_stack(case, series, volume)
            continue
        ref = _sitk_files(series.files)
        assert_matches_sitk(volume, ref, case, what=series.key)


def _check_enhanced_frame_stack(case: Case, series, volume: Volume) -> None:
    """A stack of frames of one enhanced file: voxels equal SimpleITK's frames, geometry equals
    the per-frame functional groups (SimpleITK ignores per-frame PixelMeasures)."""
    ds = pydicom.dcmread(case.files[0], stop_before_pixels=True)
    ref = realdata.sitk_reference(case)
    frames = [s.frame for s in series.stack.slices]
    assert_voxels(volume.array, ref.array[frames], atol=case.atol, what=series.key)
    group = ds.PerFrameFunctionalGroupsSequence[frames[0]]
    iop = np.array(group.PlaneOrientationSequence[0].ImageOrientationPatient, float)
    row_mm, column_mm = (float(v) for v in group.PixelMeasuresSequence[0].PixelSpacing)
    np.testing.assert_allclose(volume.spacing[:2], (column_mm, row_mm), atol=ORIGIN_MM)
    np.testing.assert_allclose(
        volume.origin, group.PlanePositionSequence[0].ImagePositionPatient, atol=ORIGIN_MM
    )
    np.testing.assert_allclose(volume.direction[:, 0], iop[:3], atol=DIRECTION)
    np.testing.assert_allclose(volume.direction[:, 1], iop[3:], atol=DIRECTION)
    np.testing.assert_allclose(volume.direction[:, 2], np.cross(iop[:3], iop[3:]), atol=DIRECTION)


def _check_missing_slices(case: Case, entries) -> None:
    """Loads with a warning that names the missing slices; voxels, origin and direction equal
    SimpleITK's, whose spacing is the average over the gap (not a slice spacing)."""
    [series] = entries
    assert any("missing" in w for w in series.warnings), series.warnings
    volume = load_series(case.path, case.series_uid)
    assert volume.shape == case.shape
    assert any("missing" in w for w in volume.warnings), volume.warnings
    ref = realdata.sitk_reference(case)
    assert_voxels(volume.array, ref.array, atol=0)
    np.testing.assert_allclose(volume.origin, ref.origin, atol=ORIGIN_MM)
    np.testing.assert_allclose(volume.direction, ref.direction, atol=DIRECTION)
    np.testing.assert_allclose(volume.spacing[:2], ref.spacing[:2], atol=ORIGIN_MM)
    # The engine's slice spacing is the common (median) step along the normal, here 1.25 mm.
    normal = volume.direction[:, 2]
    distances = sorted(
        float(np.dot(normal, pydicom.dcmread(p).ImagePositionPatient)) for p in case.files
    )
    np.testing.assert_allclose(volume.spacing[2], np.median(np.diff(distances)), atol=ORIGIN_MM)


def _check_rt_dose(case: Case, entries) -> None:
    """RT Dose: frame positions from GridFrameOffsetVector (as SimpleITK) and values in dose
    units, i.e. scaled by DoseGridScaling (which SimpleITK leaves out)."""
    [series] = entries
    assert series.stack.loadable, series.stack.problem
    volume = load_series(case.path, case.series_uid)
    assert volume.shape == case.shape
    ref = realdata.sitk_reference(case)
    assert_geometry(volume, ref)
    scaling = float(pydicom.dcmread(case.files[0], stop_before_pixels=True).DoseGridScaling)
    assert_voxels(volume.array, ref.array * scaling, atol=0)


def test_rt_dose_units(get_case: GetCase) -> None:
    case = get_case("pydicom/rtdose")
    units = str(pydicom.dcmread(case.files[0], stop_before_pixels=True).DoseUnits)
    assert load_series(case.path).metadata["units"].upper() == units.upper()


# --------------------------------------------------------------------------- other checks


def test_dicomdir_finds_every_series_it_lists(get_case: GetCase) -> None:
    """Scanning a DICOMDIR finds every series it references, and no DICOMDIR (this one or the
    variants beside it) is listed as a problem; a series loads from it as from its folder."""
    case = get_case("pydicom/DICOMDIR-CT5N")
    dicomdir = pydicom.dcmread(case.path)
    listed = {
        str(r.SeriesInstanceUID)
        for r in dicomdir.DirectoryRecordSequence
        if r.DirectoryRecordType == "SERIES"
    }
    assert len(listed) >= 12
    catalog = scan(case.path)
    assert listed <= {s.uid for s in catalog.series}
    directories = {str(p) for p in case.path.parent.glob("DICOMDIR*")}
    assert len(directories) >= 2
    assert not directories & {p.path for p in catalog.problems}
    assert not [p for p in catalog.problems if "DICOMDIR" in p.reason]
    from_dir = load_series(case.path, case.series_uid)
    from_folder = load_series(case.files[0].parent)
    np.testing.assert_array_equal(from_dir.array, from_folder.array)
    assert from_dir.origin == from_folder.origin
    assert from_dir.spacing == from_folder.spacing


@pytest.mark.parametrize(
    ("name", "series_count"), [("pydicom/MR2-localizer", 3), ("pydicom/MR700-radial", 1)]
)
def test_folder_lists_each_series(name: str, series_count: int, get_case: GetCase) -> None:
    """A folder holding several series gives one catalog entry per series (per stack when a
    series mixes orientations), and loading without a choice names the choices."""
    case = get_case(name)
    catalog = scan(case.path)
    uids = {
        str(pydicom.dcmread(p, stop_before_pixels=True).SeriesInstanceUID)
        for p in case.path.iterdir()
    }
    assert len(uids) == series_count
    assert {s.uid for s in catalog.series} == uids
    with pytest.raises(AmbiguousSeriesError):
        load_series(case.path)


def test_folder_of_three_single_file_series(get_case: GetCase) -> None:
    """``98892003/MR1``: three series of one file each → three catalog entries."""
    folder = get_case("pydicom/MR2-localizer").path.parent / "MR1"
    catalog = scan(folder)
    assert len(catalog.series) == 3
    assert len({s.uid for s in catalog.series}) == 3
    for series in catalog.series:
        volume = load_series(catalog, series.key)
        ref = _sitk_files(series.files)
        np.testing.assert_array_equal(volume.array, ref.array)
        np.testing.assert_allclose(volume.origin, ref.origin, atol=ORIGIN_MM)


TWINS = [
    # (uncompressed, compressed, lossless)
    *[
        ("pydicom/MR_small", f"pydicom/MR_small_{s}", True)
        for s in ("implicit", "bigendian", "RLE", "jpeg_ls", "j2k")
    ],
    *[
        ("pydicom-data/emri_small", f"pydicom-data/emri_small_{s}", True)
        for s in ("RLE", "big_endian", "j2k", "jpeg_ls")
    ],
    ("pydicom-data/MR2_UNCR", "pydicom-data/MR2_J2KR", True),
    ("pydicom-data/MR2_UNCR", "pydicom-data/MR2_J2KI", False),
    ("pydicom-data/693_UNCR", "pydicom-data/693_J2KR", True),
    ("pydicom-data/693_UNCR", "pydicom/693_J2KI", False),
]


@pytest.mark.parametrize(("plain", "packed", "lossless"), TWINS, ids=[t[1] for t in TWINS])
def test_compressed_equals_uncompressed_twin(
    plain: str, packed: str, lossless: bool, get_case: GetCase
) -> None:
    """The same image in another transfer syntax loads to the same volume (exactly when the
    codec is lossless, closely when lossy) with the same geometry."""
    a = load_series(get_case(plain).path)
    b = load_series(get_case(packed).path)
    assert (a.spacing, a.origin) == (b.spacing, b.origin)
    np.testing.assert_array_equal(a.direction, b.direction)
    if lossless:
        np.testing.assert_array_equal(a.array.astype(np.float64), b.array.astype(np.float64))
    else:
        r = np.corrcoef(a.array.ravel().astype(np.float64), b.array.ravel().astype(np.float64))
        assert r[0, 1] > 0.99


@pytest.mark.parametrize(
    "syntax",
    # JPEG 2000 is left out: OpenJPEG's encoder needs at least 32×32 pixels (CT5N is 16×16);
    # the real J2K files (MR_small_j2k, 693_J2KR, MR2_J2KR, emri_small_j2k) cover it.
    [pydicom.uid.RLELossless, pydicom.uid.JPEGLSLossless],
    ids=lambda uid: uid.name,
)
def test_transcoded_real_series_loads_identically(
    syntax: pydicom.uid.UID, get_case: GetCase, tmp_path: Path
) -> None:
    """No real compressed multi-file series ships anywhere, so compress CT5N losslessly: the
    series loads to the uncompressed volume, voxel for voxel (and equals SimpleITK's reading)."""
    case = get_case("pydicom/CT5N")
    for path in case.files:
        ds = pydicom.dcmread(path)
        try:
            ds.compress(syntax)
        except (RuntimeError, ValueError, NotImplementedError) as error:
            pytest.skip(f"no {syntax.name} encoder: {error}")
        ds.save_as(tmp_path / path.name, enforce_file_format=True)
    plain = load_series(case.path)
    packed = load_series(tmp_path)
    assert packed.metadata["transfer_syntax"] == syntax
    assert (packed.spacing, packed.origin) == (plain.spacing, plain.origin)
    np.testing.assert_array_equal(packed.array, plain.array)
    ref = _sitk_files(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(tmp_path)))
    assert_matches_sitk(packed, ref, case)


@pytest.mark.parametrize(
    "name", ["pydicom/J2K_pixelrep_mismatch", "heudiconv/fmap_oblique", "nibabel/philips_mprage"]
)
def test_export_oblique_keeps_geometry(name: str, get_case: GetCase, tmp_path: Path) -> None:
    """An oblique real series exported to .nii.gz reads back (SimpleITK) with the same
    geometry and voxels."""
    case = get_case(name)
    volume = load_series(case.path, case.series_uid)
    assert "oblique" in case.notes
    out = export_volume(volume, tmp_path / "oblique.nii.gz")
    back = sitk.ReadImage(str(out))
    np.testing.assert_allclose(back.GetSpacing(), volume.spacing, atol=ORIGIN_MM)
    np.testing.assert_allclose(back.GetOrigin(), volume.origin, atol=ORIGIN_MM)
    np.testing.assert_allclose(
        np.reshape(back.GetDirection(), (3, 3)), volume.direction, atol=DIRECTION
    )
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), volume.array)

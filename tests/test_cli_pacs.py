"""``workstation pacs search | fetch`` against a real Orthanc (see tests/orthanc.py).

One Orthanc per module holds two studies: ALPHA (a CT and an MR series, 2023-01-05) and BETA (an
MR series, 2024-06-15). Skipped without Orthanc unless ``MEDWS_REQUIRE_ORTHANC=1``.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from orthanc import Orthanc, OrthancInstallation, find_orthanc, free_port, orthanc_required

from workstation.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, main
from workstation.dicom import load_series
from workstation.dicom.synthetic import SeriesSpec, write_series

PASSWORD = "s3cret-horse-battery"  # the test server's


@dataclass
class Written:
    study_uid: str
    series_uid: str
    folder: Path


@dataclass
class Pacs:
    server: Orthanc
    series: dict[str, Written]

    @property
    def url(self) -> str:
        return self.server.dicomweb_url


def _write(root: Path, name: str, slices: int, seed: int, **spec: object) -> Written:
    import pydicom

    stored = np.random.default_rng(seed).integers(0, 2000, size=(slices, 12, 10), dtype=np.uint16)
    folder = root / name
    header_values = SeriesSpec(**spec)  # type: ignore[arg-type]
    paths = write_series(
        folder, stored, spacing=(0.7, 0.8, 2.0), origin=(-5.0, 3.0, 1.5), spec=header_values
    )
    header = pydicom.dcmread(paths[0], stop_before_pixels=True)
    return Written(str(header.StudyInstanceUID), str(header.SeriesInstanceUID), folder)


@pytest.fixture(scope="module")
def orthanc_install() -> OrthancInstallation:
    install = find_orthanc()
    if install is None:
        message = "Orthanc with the DICOMweb plugin is not installed"
        if orthanc_required():
            pytest.fail(message + "; MEDWS_REQUIRE_ORTHANC is set")
        pytest.skip(message)
    return install


@pytest.fixture(scope="module")
def pacs(
    orthanc_install: OrthancInstallation, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pacs]:
    from pydicom.uid import generate_uid

    root = tmp_path_factory.mktemp("pacs-source")
    alpha = generate_uid()
    series = {
        "alpha_ct": _write(
            root, "alpha_ct", 4, 1, modality="CT", patient_name="PACS^ALPHA", patient_id="P-A",
            study_date="20230105", study_uid=alpha, series_number=1, series_description="ct",
            study_description="alpha study",
        ),
        "alpha_mr": _write(
            root, "alpha_mr", 3, 2, modality="MR", patient_name="PACS^ALPHA", patient_id="P-A",
            study_date="20230105", study_uid=alpha, series_number=2, series_description="mr",
            study_description="alpha study",
        ),
        "beta_mr": _write(
            root, "beta_mr", 3, 3, modality="MR", patient_name="PACS^BETA", patient_id="P-B",
            study_date="20240615", series_number=1, series_description="beta mr",
        ),
    }  # fmt: skip
    with Orthanc(orthanc_install) as server:
        server.upload(p for s in series.values() for p in sorted(s.folder.iterdir()))
        yield Pacs(server, series)


@pytest.fixture(scope="module")
def pacs_auth(orthanc_install: OrthancInstallation) -> Iterator[Orthanc]:
    with Orthanc(orthanc_install, users={"alice": PASSWORD}) as server:
        yield server


@pytest.fixture(autouse=True)
def _no_secrets_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORKSTATION_PACS_PASSWORD", raising=False)
    monkeypatch.delenv("WORKSTATION_PACS_TOKEN", raising=False)


def _json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    assert main([*argv, "--json"]) == EXIT_OK, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def _study_uids(document: dict) -> set[str]:
    return {record["study_uid"] for record in document["results"]}


# -- search -----------------------------------------------------------------------------------
def test_search_lists_studies_as_a_table(pacs: Pacs, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pacs", "search", pacs.url]) == EXIT_OK
    out = capsys.readouterr().out
    header, *rows, footer = out.splitlines()
    assert header.split()[:4] == ["DATE", "PATIENT", "ID", "MODALITIES"]
    assert len(rows) == 2
    alpha = next(row for row in rows if "PACS^ALPHA" in row)
    assert "2023-01-05" in alpha and "P-A" in alpha and "alpha study" in alpha
    assert pacs.series["alpha_ct"].study_uid in alpha
    assert set(alpha.split()[3].split(",")) == {"CT", "MR"}
    assert alpha.split()[-2] == "2"  # number of series
    assert "2 study(ies)" in footer


def test_search_json_document_and_filters(pacs: Pacs, capsys: pytest.CaptureFixture[str]) -> None:
    alpha, beta = pacs.series["alpha_ct"].study_uid, pacs.series["beta_mr"].study_uid
    search = ["pacs", "search", pacs.url]
    document = _json(search, capsys)
    assert {k: document[k] for k in ("schema", "server", "level", "study_uid", "count")} == {
        "schema": 1, "server": pacs.url, "level": "studies", "study_uid": None, "count": 2,
    }  # fmt: skip
    record = next(r for r in document["results"] if r["study_uid"] == alpha)
    assert record["patient_name"] == "PACS^ALPHA"
    assert record["study_date"] == "20230105"
    assert record["series_count"] == 2
    assert _study_uids(_json([*search, "--patient-name", "PACS^AL*"], capsys)) == {alpha}
    assert _study_uids(_json([*search, "--patient-name", "beta", "--fuzzy"], capsys)) == {beta}
    assert _study_uids(_json([*search, "--date", "20240101-20241231"], capsys)) == {beta}
    assert _study_uids(_json([*search, "--date", "-20231231"], capsys)) == {alpha}
    assert _study_uids(_json([*search, "--modality", "CT"], capsys)) == {alpha}
    both = [*search, "--modality", "CT", "--modality", "MR"]
    assert _study_uids(_json(both, capsys)) == {alpha, beta}
    assert _study_uids(_json([*search, "--patient-id", "P-B"], capsys)) == {beta}
    first = _json([*search, "--limit", "1"], capsys)
    second = _json([*search, "--limit", "1", "--offset", "1"], capsys)
    assert (first["count"], second["count"], second["limit"], second["offset"]) == (1, 1, 1, 1)
    assert _study_uids(first) | _study_uids(second) == {alpha, beta}


def test_search_limit_hints_at_the_next_page(
    pacs: Pacs, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["pacs", "search", pacs.url, "--limit", "1"]) == EXIT_OK
    assert "--offset 1" in capsys.readouterr().out


def test_search_lists_a_studys_series(pacs: Pacs, capsys: pytest.CaptureFixture[str]) -> None:
    ct, mr = pacs.series["alpha_ct"], pacs.series["alpha_mr"]
    assert main(["pacs", "search", pacs.url, "--study", ct.study_uid]) == EXIT_OK
    header, first, second, footer = capsys.readouterr().out.splitlines()
    assert header.split() == ["#", "MODALITY", "DESCRIPTION", "INSTANCES", "SERIES", "UID"]
    assert first.split() == ["1", "CT", "ct", "4", ct.series_uid]
    assert second.split() == ["2", "MR", "mr", "3", mr.series_uid]
    assert footer.startswith("2 series")
    document = _json(["pacs", "search", f"{pacs.url}/studies/{ct.study_uid}"], capsys)
    assert (document["level"], document["study_uid"], document["count"]) == (
        "series", ct.study_uid, 2,
    )  # fmt: skip
    assert [r["series_uid"] for r in document["results"]] == [ct.series_uid, mr.series_uid]
    assert document["results"][0]["instance_count"] == 4


def test_search_unknown_study_fails(pacs: Pacs, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pacs", "search", pacs.url, "--study", "1.2.3.4.5"]) == EXIT_FAILURE
    err = capsys.readouterr().err
    assert "1.2.3.4.5" in err and "Traceback" not in err


# -- fetch ------------------------------------------------------------------------------------
def test_fetch_writes_the_study_and_a_rerun_skips_it(
    pacs: Pacs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ct, mr = pacs.series["alpha_ct"], pacs.series["alpha_mr"]
    argv = ["pacs", "fetch", pacs.url, "--study", ct.study_uid, "--out", str(tmp_path)]
    assert main(argv) == EXIT_OK
    out = capsys.readouterr().out
    assert "7 written, 0 skipped" in out and "0 failed" in out
    for written in (ct, mr):
        folder = tmp_path / written.series_uid
        assert len(list(folder.glob("*.dcm"))) == len(list(written.folder.iterdir()))
        fetched, original = load_series(folder), load_series(written.folder)
        np.testing.assert_array_equal(fetched.array, original.array)
        np.testing.assert_allclose(fetched.origin, original.origin)
        np.testing.assert_allclose(fetched.spacing, original.spacing)
    document = _json(argv, capsys)
    assert (document["schema"], document["written"], document["skipped"]) == (1, 0, 7)
    assert (document["failed"], document["complete"]) == (0, True)
    assert [s["series_uid"] for s in document["series"]] == [ct.series_uid, mr.series_uid]
    assert document["series"][0] | {"folder": ""} == {
        "series_uid": ct.series_uid, "folder": "", "instances": 4, "written": 0,
        "skipped": 4, "failed": [], "error": None,
    }  # fmt: skip


def test_fetch_a_series_url(pacs: Pacs, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    beta = pacs.series["beta_mr"]
    url = f"{pacs.url}/studies/{beta.study_uid}/series/{beta.series_uid}"
    document = _json(["pacs", "fetch", url, "--out", str(tmp_path), "--connections", "2"], capsys)
    assert (document["study_uid"], document["written"]) == (beta.study_uid, 3)
    assert [p.name for p in tmp_path.iterdir()] == [beta.series_uid]


def test_fetch_draws_a_progress_bar_on_a_terminal(
    pacs: Pacs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    study = pacs.series["alpha_ct"].study_uid
    assert main(["pacs", "fetch", pacs.url, "--study", study, "--out", str(tmp_path)]) == EXIT_OK
    assert "series 1/2" in terminal.getvalue() and "series 2/2" in terminal.getvalue()
    assert "█" in terminal.getvalue()


def test_fetch_unknown_series_is_a_failure(
    pacs: Pacs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study, out = pacs.series["beta_mr"].study_uid, str(tmp_path)
    argv = ["pacs", "fetch", pacs.url, "--study", study, "--series", "1.2.3", "--out", out]
    assert main(argv) == EXIT_FAILURE
    err = capsys.readouterr().err
    assert "1.2.3" in err and "no instances" in err


# -- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["pacs", "search", "ftp://pacs/dicom-web"], "http:// or https://"),
        (["pacs", "search", "not a url"], "http:// or https://"),
        (["pacs", "search", "http://pacs/dicom-web/studies/"], "/studies/UID"),
        (["pacs", "search", "http://pacs/dicom-web", "--date", "2024"], "not a date"),
        (["pacs", "search", "http://pacs/dicom-web", "--limit", "0"], "whole number"),
        (["pacs", "fetch", "http://pacs/dicom-web", "--out", "x"], "needs --study"),
        (["pacs", "fetch", "http://pacs/dicom-web/studies/1", "--study", "2", "--out", "x"],
         "differs"),
        (["pacs", "search", "http://pacs/dicom-web", "--study", "1", "--patient-id", "P"],
         "--patient-id"),
        (["pacs", "search", "http://pacs/dicom-web", "--ca", "/no/such/ca.pem"], "CA bundle"),
        (["pacs", "search", "http://pacs/dicom-web", "--token-env", "MEDWS_NO_SUCH_VAR"],
         "MEDWS_NO_SUCH_VAR"),
        (["pacs", "search", "http://pacs/dicom-web", "--ca", "a", "--insecure"], "not allowed"),
    ],
)  # fmt: skip
def test_usage_errors(argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


def test_unusable_files_fail_in_one_line(
    pacs: Pacs, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "not-a-ca.pem").write_text("not a certificate")
    argv = ["pacs", "search", pacs.url, "--ca", str(tmp_path / "not-a-ca.pem")]
    assert main(argv) == EXIT_FAILURE
    err = capsys.readouterr().err
    assert "CA bundle" in err and err.count("\n") == 1
    (tmp_path / "file").write_text("")
    study = pacs.series["beta_mr"].study_uid
    argv = ["pacs", "fetch", pacs.url, "--study", study, "--out", str(tmp_path / "file" / "x")]
    assert main(argv) == EXIT_FAILURE
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_closed_port_cannot_reach(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}/dicom-web"
    assert main(["pacs", "search", url, "--timeout", "5"]) == EXIT_FAILURE
    err = capsys.readouterr().err
    assert err.startswith("error: cannot reach") and err.count("\n") == 1


def test_wrong_password_is_refused_and_never_shown(
    pacs_auth: Orthanc, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "wrong-pa55word"
    url = pacs_auth.dicomweb_url.replace("http://", f"http://alice:{wrong}@")
    assert main(["pacs", "search", url]) == EXIT_FAILURE
    captured = capsys.readouterr()
    assert "credentials" in captured.err and "Traceback" not in captured.err
    assert wrong not in captured.err + captured.out
    monkeypatch.setenv("WORKSTATION_PACS_PASSWORD", wrong)
    assert main(["pacs", "search", pacs_auth.dicomweb_url, "--user", "alice"]) == EXIT_FAILURE
    captured = capsys.readouterr()
    assert "credentials" in captured.err and wrong not in captured.err + captured.out
    monkeypatch.delenv("WORKSTATION_PACS_PASSWORD")
    assert main(["pacs", "search", pacs_auth.dicomweb_url]) == EXIT_FAILURE
    assert "--user" in capsys.readouterr().err


def test_password_from_the_environment_or_a_prompt(
    pacs_auth: Orthanc, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKSTATION_PACS_PASSWORD", PASSWORD)
    assert main(["pacs", "search", pacs_auth.dicomweb_url, "--user", "alice"]) == EXIT_OK
    assert "0 study(ies)" in capsys.readouterr().out
    monkeypatch.delenv("WORKSTATION_PACS_PASSWORD")
    asked: list[str] = []
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("getpass.getpass", lambda prompt: asked.append(prompt) or PASSWORD)
    assert main(["pacs", "search", pacs_auth.dicomweb_url, "--user", "alice"]) == EXIT_OK
    captured = capsys.readouterr()
    assert asked and "alice" in asked[0]
    assert PASSWORD not in captured.out + captured.err

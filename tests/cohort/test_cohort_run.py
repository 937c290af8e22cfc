"""``workstation cohort run`` on real Dask clusters (no mocks): a generated cohort end to end,
resuming after a limited run, a retried study stored once, a real scheduler losing a worker
mid-run, a list file and a DICOMweb search against a real Orthanc."""

from __future__ import annotations

import csv
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pydicom
import pytest
from conftest import MODEL, DaskCluster, cohort_cli, rows, stored_results
from orthanc import Orthanc, installed_or_skip

from workstation.cohort.results import FIXED_COLUMNS
from workstation.cohort.runner import RunOptions, run_cohort
from workstation.cohort.sources import iter_source, study_key
from workstation.cohort.task import TaskConfig, process_study

Cohort = tuple[Path, dict[str, Any]]


def _when(row: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(row["finished"])


def _kinds(truth: dict[str, Any]) -> dict[str, str]:
    return {s["key"]: s["kind"] for s in truth["studies"]}


@pytest.mark.slow
def test_a_cohort_runs_end_to_end_and_a_rerun_does_only_what_is_left(
    cohort: Cohort, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, truth = cohort
    out = tmp_path / "out"
    kinds = _kinds(truth)
    common = ("--model", MODEL, "--out", str(out), "--workers", "2")

    assert cohort_cli("run", str(source), *common, "--limit", "4") == 0  # "interrupted" at 4
    first = rows(out)
    assert len(first) == 4
    between = datetime.now().astimezone()
    assert "Dask dashboard: http" in capsys.readouterr().err

    assert cohort_cli("run", str(source), *common, "--json") == 0
    manifest = json.loads(capsys.readouterr().out)
    final = rows(out)
    assert set(final) == set(kinds)
    for key, row in final.items():
        if kinds[key] == "broken":
            assert row["status"] == "failed" and row["stage"] == "load"
            assert "CorruptStudyError" in row["error"] and row["result_id"] is None
        else:
            assert row["status"] == "ok", row["error"]
            assert row["result_id"] and row["in_modality"] == "MR" and "out_n_findings" in row
            assert (out / "thumbs" / f"{key}.png").read_bytes()[:4] == b"\x89PNG"
        if key in first and first[key]["status"] == "ok":  # skipped by the rerun
            assert row == first[key] and row["attempts"] == 1 and _when(row) < between
        elif key in first:  # failed in the first run: retried, its earlier error kept
            assert row["attempts"] == 2 and _when(row) > between
            assert row["history"][0]["error"] == first[key]["error"]
        else:
            assert row["attempts"] == 1 and _when(row) > between
    ok = [r for r in final.values() if r["status"] == "ok"]
    assert len(ok) == 6
    skipped = sum(1 for r in first.values() if r["status"] == "ok")
    assert manifest["counts"] == {"ok": 6, "failed": 2, "skipped": skipped, "total": 8}
    assert manifest["this_run"]["submitted"] == 8 - skipped
    assert manifest["state"] == "finished" and manifest["dashboard"].startswith("http")

    results = stored_results()  # one encrypted result per ok study, none for the retries
    assert sorted(r.id for r in results) == sorted(r["result_id"] for r in ok)

    with (out / "summary.csv").open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        table = list(reader)
    assert reader.fieldnames[: len(FIXED_COLUMNS)] == list(FIXED_COLUMNS)
    assert sorted(r["study_key"] for r in table) == sorted(kinds)
    flags = json.loads((out / "qc_flags.json").read_text(encoding="utf-8"))
    for key in truth["outliers"]:
        assert flags.get(key), f"planted outlier {key} not flagged"
    for key in truth["broken"]:
        assert any(reason.startswith("failed:") for reason in flags[key])
    assert (out / "report" / "index.html").is_file()
    assert json.loads((out / "cohort.json").read_text(encoding="utf-8"))["flagged"] == len(flags)

    (out / "report" / "index.html").unlink()
    (out / "summary.csv").unlink()
    assert cohort_cli("report", str(out)) == 0  # rebuilt from the per-study rows alone
    said = capsys.readouterr().out
    assert "8 studies: 6 ok, 2 failed" in said and f"{len(flags)} flagged" in said
    assert (out / "report" / "index.html").is_file() and (out / "summary.csv").is_file()
    assert cohort_cli("report", str(tmp_path)) == 1  # no results there


def test_a_study_run_twice_is_stored_once(cohort: Cohort, home: Path) -> None:
    source, truth = cohort
    normal = next(s for s in truth["studies"] if s["kind"] == "normal")
    item = next(i for i in iter_source(str(source)) if i.key == normal["key"])
    config = TaskConfig(model=MODEL, explain=None, actor="test")
    once, again = process_study(item, config)["row"], process_study(item, config)["row"]
    assert once["status"] == again["status"] == "ok"
    assert again["result_id"] == once["result_id"] and again["reused_result"] is True
    assert [r.id for r in stored_results()] == [once["result_id"]]


def _run_in_thread(options: RunOptions) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["manifest"] = run_cohort(options)
        except BaseException as error:  # noqa: BLE001 - reported by the test
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


@pytest.mark.slow
def test_a_real_scheduler_loses_a_worker_and_no_study_is_lost_or_doubled(
    cohort: Cohort, home: Path, tmp_path: Path, dask_cluster: DaskCluster
) -> None:
    source, truth = cohort
    out = tmp_path / "out"
    options = RunOptions(source=str(source), model=MODEL, out=out, scheduler=dask_cluster.address)
    pids = dask_cluster.worker_pids()
    thread, outcome = _run_in_thread(options)
    deadline = time.monotonic() + 120
    victim, lost = None, []
    while victim is None and time.monotonic() < deadline and thread.is_alive():
        if list((out / "results").glob("*.json")):  # the cluster is warm: kill a busy worker
            busy = dask_cluster.busy_worker()
            if busy is not None:
                victim, lost = pids[busy[0]], busy[1]
                os.kill(victim, signal.SIGKILL)
        time.sleep(0.2)
    assert victim is not None, "no worker was busy to kill"
    thread.join(240)
    assert not thread.is_alive() and "error" not in outcome, outcome.get("error")
    assert outcome["manifest"]["scheduler"] == dask_cluster.address
    final = rows(out)
    kinds = _kinds(truth)
    assert set(final) == set(kinds)
    ok = [r for r in final.values() if r["status"] == "ok"]
    assert len(ok) == 6 and all(r["attempts"] == 1 for r in final.values())
    assert {r["worker"].split("@")[0] for r in final.values()} <= {"w0", "w1"}
    for task in lost:  # what the dead worker was running was finished by another process
        row = final[task.split("-")[1]]
        assert row["status"] == "ok" or kinds[row["study_key"]] == "broken"
        assert not row["worker"].endswith(f":{victim}")
    results = stored_results()
    assert len(results) == 6 and len({r.study for r in results}) == 6  # none doubled
    assert sorted(r.id for r in results) == sorted(r["result_id"] for r in ok)
    with pytest.raises(ProcessLookupError):
        os.kill(victim, 0)


@pytest.mark.slow
def test_a_list_file_source(
    cohort: Cohort, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, truth = cohort
    normal = [s["folder"] for s in truth["studies"] if s["kind"] == "normal"][:2]
    listing = tmp_path / "cohort.txt"
    missing = tmp_path / "nowhere"
    listing.write_text(
        f"# two studies and a path that is gone\n{source / normal[0]}\n\n"
        f"{os.path.relpath(source / normal[1], tmp_path)}\n{missing}\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    args = ("--model", MODEL, "--out", str(out), "--workers", "1", "--no-store", "--json")
    assert cohort_cli("run", str(listing), *args) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["counts"]["ok"] == 2 and manifest["counts"]["failed"] == 1
    final = rows(out)
    expected = [source / normal[0], source / normal[1], missing]
    assert set(final) == {study_key(f"path:{p}") for p in expected}
    gone = final[study_key(f"path:{missing}")]
    assert gone["status"] == "failed" and gone["error"]
    assert all(r["result_id"] is None for r in final.values())  # --no-store


@pytest.fixture(scope="module")
def orthanc() -> Iterator[Orthanc]:
    with Orthanc(installed_or_skip()) as server:
        yield server


@pytest.mark.slow
def test_a_dicomweb_search_is_paged_and_each_study_retrieved_on_its_worker(
    cohort: Cohort, home: Path, tmp_path: Path, orthanc: Orthanc, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, truth = cohort
    normal = [s["folder"] for s in truth["studies"] if s["kind"] == "normal"][:3]
    study_uids = []
    for n, folder in enumerate(normal):
        files = sorted((source / folder).glob("*.dcm"))
        study_uids.append(str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID))
        if n < 2:
            orthanc.upload(files)
            continue
        relabelled = []  # the third study as CT: the search must leave it out
        for path in files:
            ds = pydicom.dcmread(path)
            ds.Modality = "CT"
            relabelled.append(_to_bytes(ds))
        orthanc.upload(relabelled)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))  # where the workers put retrieved studies
    out = tmp_path / "out"
    url = f"{orthanc.dicomweb_url}/studies?ModalitiesInStudy=MR"
    # Paging: limit/offset one study at a time (Orthanc 1.10 pages wrongly once it post-filters,
    # as with ModalitiesInStudy, so the filtered run below uses the default page).
    paged = list(iter_source(f"{orthanc.dicomweb_url}/studies", page_size=1))
    assert sorted(i.study_uid for i in paged) == sorted(study_uids)
    assert len({i.key for i in paged}) == 3
    options = RunOptions(source=url, model=MODEL, out=out, workers=1)
    manifest = run_cohort(options)
    assert manifest["counts"]["ok"] == 2 and manifest["counts"]["failed"] == 0
    final = rows(out)
    assert sorted(r["source"].rsplit("/", 1)[1] for r in final.values()) == sorted(study_uids[:2])
    assert all(r["in_modality"] == "MR" for r in final.values())
    assert len(stored_results()) == 2
    assert not [p for p in scratch.iterdir() if p.name.startswith("medws-cohort-")]


def _to_bytes(ds: pydicom.Dataset) -> bytes:
    from io import BytesIO

    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_the_demo_cohort_is_deterministic_and_says_what_was_planted(tmp_path: Path) -> None:
    args = ("--studies", "3", "--broken", "1", "--outliers", "1", "--seed", "7")
    assert cohort_cli("demo", str(tmp_path / "a"), *args) == 0
    assert cohort_cli("demo", str(tmp_path / "b"), *args) == 0
    truth = json.loads((tmp_path / "a" / "truth.json").read_text(encoding="utf-8"))
    assert truth == json.loads((tmp_path / "b" / "truth.json").read_text(encoding="utf-8"))
    assert len(truth["broken"]) == 1 and len(truth["outliers"]) == 1
    found = {i.key for i in iter_source(str(tmp_path / "a"))}
    assert found == {s["key"] for s in truth["studies"]}  # the keys a run of DIR will use
    normal = next(s["folder"] for s in truth["studies"] if s["kind"] == "normal")
    first = sorted((tmp_path / "a" / normal).glob("*.dcm"))[0]
    assert first.read_bytes() == (tmp_path / "b" / normal / first.name).read_bytes()
    assert cohort_cli("demo", str(tmp_path / "c"), "--studies", "1", "--broken", "2") == 2

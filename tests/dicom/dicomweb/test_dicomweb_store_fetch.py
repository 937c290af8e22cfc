"""STOW-RS round trip, and fetching series to files that a rerun completes without refetching."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from workstation.dicom import load_series
from workstation.dicom.dicomweb import (
    DicomwebClient,
    fetch_series,
    fetch_study,
    load_dicomweb_series,
)


@pytest.fixture
def client(orthanc):
    with DicomwebClient(orthanc.dicomweb_url, timeout=20) as client:
        yield client


def test_stow_round_trip(client, make_series):
    written = make_series(
        "stow", slices=6, rows=24, columns=16, patient_name="STOW^ROUNDTRIP", modality="CT",
        rescale_intercept=-1024.0,
    )  # fmt: skip
    header = pydicom.dcmread(written.paths[0], stop_before_pixels=True)
    study_uid, series_uid = str(header.StudyInstanceUID), str(header.SeriesInstanceUID)
    sops = [str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in written.paths]
    # Paths are streamed from disk; bytes work too.
    result = client.store_instances(
        [*written.paths[:4], *(p.read_bytes() for p in written.paths[4:])]
    )
    assert result.ok and result.status == 200
    assert sorted(result.stored) == sorted(sops)
    [study] = client.search_studies(patient_name="STOW^ROUNDTRIP")
    assert study.study_uid == study_uid and study.instance_count == 6
    volume = load_dicomweb_series(client, study_uid, series_uid)
    np.testing.assert_array_equal(volume.array, load_series(written.folder).array)
    # Storing into a named study checks the instances belong to it.
    again = client.store_instances([written.paths[0]], study_uid=study_uid)
    assert again.ok and again.stored == (sops[0],)


def test_stow_reports_what_the_server_refused(client, make_series):
    written = make_series("other", slices=1, patient_name="STOW^REFUSED")
    result = client.store_instances([written.paths[0]], study_uid="1.2.3.999")
    assert not result.ok
    assert result.stored == ()
    assert [sop for sop, _ in result.failed] == [
        str(pydicom.dcmread(written.paths[0], stop_before_pixels=True).SOPInstanceUID)
    ]


def test_fetch_writes_the_files_and_a_rerun_skips_them(orthanc, dataset, tmp_path):
    remote = dataset["alpha_ct"]
    requests: list[str] = []
    hooks = {"request": [lambda request: requests.append(request.url.path)]}
    originals = {
        str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID): p.read_bytes()
        for p in remote.files
    }
    reports: list[tuple[int, int]] = []
    with DicomwebClient(orthanc.dicomweb_url, event_hooks=hooks) as client:
        report = fetch_series(
            client, remote.study_uid, remote.series_uid, tmp_path,
            progress=lambda d, t, m: reports.append((d, t)),
        )  # fmt: skip
        assert (report.written, report.skipped, report.failed) == (12, 0, [])
        assert reports[-1] == (12, 12)
        assert len(requests) == 2  # the QIDO search, then the series in one response
        for sop, data in originals.items():
            assert (tmp_path / f"{sop}.dcm").read_bytes() == data  # as stored, byte for byte
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".part")]
        # A rerun fetches nothing; a lost file is fetched again.
        requests.clear()
        (tmp_path / f"{next(iter(originals))}.dcm").unlink()
        report = fetch_series(client, remote.study_uid, remote.series_uid, tmp_path)
        assert (report.written, report.skipped) == (1, 11)
        assert len(requests) == 2  # the QIDO search and the one missing instance
        assert sum("/instances/" in p for p in requests) == 1
        study = fetch_study(client, remote.study_uid, tmp_path / "study", connections=2)
        assert study.written == 12 + 7 and study.complete
        assert sorted(p.name for p in (tmp_path / "study").iterdir()) == sorted(
            [remote.series_uid, dataset["alpha_mr"].series_uid]
        )
    fetched = load_series(tmp_path, remote.series_uid)
    np.testing.assert_array_equal(fetched.array, load_series(remote.files).array)


def test_a_fetch_cut_off_is_completed_per_instance(fault_proxy, dataset, tmp_path):
    remote = dataset["gamma_ct"]
    fault_proxy.plan = lambda number, path: "cut" if path.endswith(remote.series_uid) else "pass"
    with DicomwebClient(fault_proxy.dicomweb_url, retries=0) as client:
        report = fetch_series(client, remote.study_uid, remote.series_uid, tmp_path)
    assert (report.written, report.failed) == (40, [])
    written = sorted(p.read_bytes() for p in tmp_path.iterdir())
    assert written == sorted(p.read_bytes() for p in remote.files)

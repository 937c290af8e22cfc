"""Opening a DICOMweb series through the workflow, against a real Orthanc: same volume as a
local load, geometry first then the middle slice, study URLs, the encrypted default cache."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from orthanc import Orthanc, installed_or_skip

from workstation.core.tasks import CancelToken
from workstation.dicom import load_series
from workstation.workflow import LoadUpdate, load_progressively
from workstation.workflow.remote import (
    PacsServer,
    RemoteSeries,
    default_cache,
    remote_source,
    server_from_url,
)


@pytest.fixture(scope="module")
def orthanc() -> Iterator[Orthanc]:
    with Orthanc(installed_or_skip()) as server:
        yield server


@pytest.fixture
def uploaded(orthanc: Orthanc, make_series: Any) -> Any:
    written = make_series("remote", slices=9, rows=24, columns=20, seed=3)
    orthanc.upload(written.paths)
    return written


def _uids(written: Any) -> tuple[str, str]:
    header = pydicom.dcmread(written.paths[0], stop_before_pixels=True)
    return str(header.StudyInstanceUID), str(header.SeriesInstanceUID)


def _load(source: RemoteSeries, **options: Any) -> tuple[Any, list[LoadUpdate]]:
    updates: list[LoadUpdate] = []
    volume = load_progressively(
        source,
        progress=lambda done, total, message="": None,
        cancel=CancelToken(),
        partial=updates.append,
        **options,
    )
    return volume, updates


def test_a_remote_series_loads_like_the_local_files(orthanc: Orthanc, uploaded: Any) -> None:
    study, series = _uids(uploaded)
    source = RemoteSeries(PacsServer(orthanc.dicomweb_url), study, series)
    volume, updates = _load(source, cache=None)
    local = load_series(uploaded.folder)
    np.testing.assert_array_equal(volume.array, local.array)
    np.testing.assert_allclose(volume.spacing, local.spacing)
    np.testing.assert_allclose(volume.origin, local.origin)
    assert updates[0].slices == ()  # the geometry comes first, blank
    assert updates[1].slices == (len(uploaded.paths) // 2,)  # then the middle slice alone
    assert sorted(k for update in updates for k in update.slices) == list(range(9))


def test_a_study_url_opens_its_first_series(orthanc: Orthanc, uploaded: Any) -> None:
    study, series = _uids(uploaded)
    source = remote_source(f"{orthanc.dicomweb_url}/studies/{study}")
    assert (source.study_uid, source.series_uid) == (study, series)
    assert source.server.url == orthanc.dicomweb_url


def test_a_server_url_is_not_a_study(orthanc: Orthanc) -> None:
    with pytest.raises(ValueError, match="names a server, not a study"):
        remote_source(orthanc.dicomweb_url)


def test_credentials_in_the_url_stay_in_memory() -> None:
    server = server_from_url("http://alice:secret@127.0.0.1:1/dicom-web/studies/1.2")
    assert server.url == "http://127.0.0.1:1/dicom-web" and server.username == "alice"
    assert server.credentials.password == "secret"
    assert "secret" not in repr(server)


def test_the_default_cache_needs_the_key_store(
    orthanc: Orthanc, uploaded: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKSTATION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WORKSTATION_PASSPHRASE", "correct horse battery staple")
    assert default_cache() is None  # no key store: no cache, never plaintext
    from workstation.security.keystore import KeyStore, default_folder

    KeyStore.create(default_folder(), use_keyring=False)
    study, series = _uids(uploaded)
    source = RemoteSeries(PacsServer(orthanc.dicomweb_url), study, series)
    first, _ = _load(source)
    cached = [p for p in (tmp_path / "home" / "cache" / "dicomweb").rglob("*") if p.is_file()]
    assert len(cached) >= 9
    pixel_bytes = first.array.tobytes()[:64]
    assert all(pixel_bytes not in p.read_bytes() for p in cached)  # encrypted at rest
    again, _ = _load(source)
    np.testing.assert_array_equal(again.array, first.array)

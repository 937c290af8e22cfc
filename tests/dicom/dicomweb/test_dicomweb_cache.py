"""The encrypted instance cache: hits make no request, LRU eviction, tamper, offline reopening."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from workstation.dicom import load_series
from workstation.dicom.dicomweb import (
    DicomwebClient,
    InstanceCache,
    ServerUnreachableError,
    open_cache,
    stream_dicomweb_series,
)
from workstation.security.aead import DataKeyRing

LE = "1.2.840.10008.1.2.1"


@pytest.fixture(scope="module")
def keys() -> DataKeyRing:
    return DataKeyRing.generate()


class RequestCounter:
    """An httpx event hook: the paths of every request sent (real server, nothing mocked)."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def __call__(self, request) -> None:
        self.paths.append(request.url.path)

    @property
    def pixel_requests(self) -> int:
        """Requests for instances (one each, or the whole series at once)."""
        return sum(not p.endswith("/metadata") for p in self.paths)


def files_under(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_a_cached_series_reopens_without_a_pixel_request(orthanc, dataset, keys, tmp_path):
    remote = dataset["alpha_ct"]
    local = load_series(remote.files)
    counter = RequestCounter()
    cache = InstanceCache(keys, root=tmp_path / "cache")
    with DicomwebClient(orthanc.dicomweb_url, event_hooks={"request": [counter]}) as client:
        with stream_dicomweb_series(client, remote.study_uid, remote.series_uid, cache=cache) as s:
            s.wait()
        assert counter.pixel_requests == s.requests == 2  # the middle one, then the rest
        assert s.fetch == "series"
        assert len(cache) == 12 + 1  # the instances and the series metadata
        counter.paths.clear()
        # Reopened through a fresh cache object on the same folder (a restart).
        again = InstanceCache(keys, root=tmp_path / "cache")
        with stream_dicomweb_series(client, remote.study_uid, remote.series_uid, cache=again) as s:
            iterator = iter(s)
            first = next(iterator)
            rest = list(iterator)
        assert first == 6 and sorted([first, *rest]) == list(range(12))
        assert counter.pixel_requests == 0 and s.requests == 0
        assert s.fetch == "instances"  # around cached instances, never the whole series
        assert counter.paths == [
            f"/dicom-web/studies/{remote.study_uid}/series/{remote.series_uid}/metadata"
        ]
    np.testing.assert_array_equal(s.result().array, local.array)


def test_nothing_in_the_cache_is_plaintext(orthanc, dataset, keys, tmp_path):
    remote = dataset["beta_mr"]
    cache = InstanceCache(keys, root=tmp_path)
    with (
        DicomwebClient(orthanc.dicomweb_url) as client,
        stream_dicomweb_series(client, remote.study_uid, remote.series_uid, cache=cache) as s,
    ):
        s.wait()
    names = files_under(tmp_path)
    assert len(names) == 5 + 1
    assert not any(remote.series_uid in n or "QIDO" in n for n in names)  # UIDs are hashed
    for path in tmp_path.rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            assert blob[:4] == b"MWA1"
            assert b"DICM" not in blob and b"QIDO^BETA" not in blob
    # Another key cannot read it: every entry is a miss, and is dropped.
    stranger = InstanceCache(DataKeyRing.generate(), root=tmp_path)
    sop = s.series.stack.slices[0].sop_instance_uid
    assert stranger.get(sop) is None
    assert sop not in stranger


def test_no_key_means_no_cache(tmp_path):
    assert open_cache(None, root=tmp_path / "c") is None
    assert not (tmp_path / "c").exists()
    cache = open_cache(DataKeyRing.generate(), root=tmp_path / "c")
    assert isinstance(cache, InstanceCache)
    assert (tmp_path / "c" / "instances").is_dir()


def test_entries_are_addressed_by_instance_and_transfer_syntax(keys, tmp_path):
    cache = InstanceCache(keys, root=tmp_path)
    cache.put("1.2.3", LE, b"explicit")
    cache.put("1.2.3", "1.2.840.10008.1.2.5", b"rle")
    assert cache.get("1.2.3", LE).data == b"explicit"
    assert cache.get("1.2.3", "1.2.840.10008.1.2.5").data == b"rle"
    assert cache.get("1.2.3").data in (b"explicit", b"rle")
    assert cache.get("1.2.3", "1.2.840.10008.1.2.4.80") is None
    assert cache.get("1.2.4") is None
    # A file moved onto another address does not decrypt there.
    [explicit] = [p for p in tmp_path.rglob(f"*.{LE}")]
    moved = explicit.with_name(explicit.name.replace(LE, "1.2.840.10008.1.2"))
    explicit.rename(moved)
    reopened = InstanceCache(keys, root=tmp_path)
    assert reopened.get("1.2.3", "1.2.840.10008.1.2") is None
    assert not moved.exists()  # dropped


def test_least_recently_used_entries_go_first(keys, tmp_path):
    blob = os.urandom(1000)
    cache = InstanceCache(keys, root=tmp_path, max_bytes=3 * 1100)
    for uid in ("1.1", "1.2", "1.3"):
        cache.put(uid, LE, blob)
        time.sleep(0.01)  # distinct modification times for the reopened index
    assert cache.get("1.1") is not None  # used: now the most recent
    cache.put("1.4", LE, blob)  # over the cap: the least recently used (1.2) goes
    assert "1.2" not in cache
    assert all(uid in cache for uid in ("1.1", "1.3", "1.4"))
    assert cache.size <= cache.max_bytes
    # The order survives a restart (it is kept in the files' modification times).
    reopened = InstanceCache(keys, root=tmp_path, max_bytes=3 * 1100)
    reopened.put("1.5", LE, blob)
    assert "1.3" not in reopened
    assert all(uid in reopened for uid in ("1.1", "1.4", "1.5"))


def test_tampered_and_torn_entries_are_misses(keys, tmp_path):
    cache = InstanceCache(keys, root=tmp_path)
    cache.put("9.9", LE, b"x" * 500)
    [path] = [p for p in tmp_path.rglob("*") if p.is_file()]
    data = bytearray(path.read_bytes())
    data[100] ^= 1
    path.write_bytes(bytes(data))
    assert cache.get("9.9") is None
    assert "9.9" not in cache
    cache.put("9.8", LE, b"y" * 500)
    [path] = [p for p in tmp_path.rglob("*") if p.is_file()]
    path.write_bytes(path.read_bytes()[:200])  # torn
    assert cache.get("9.8") is None
    # Temporary files of an interrupted write are cleaned up on opening.
    (path.parent / ".tmp-abandoned").write_bytes(b"partial")
    InstanceCache(keys, root=tmp_path)
    assert files_under(tmp_path) == []


def test_a_cached_series_opens_offline(orthanc, dataset, keys, tmp_path, closed_port):
    remote = dataset["real_ct5n"]
    cache = InstanceCache(keys, root=tmp_path)
    with (
        DicomwebClient(orthanc.dicomweb_url) as client,
        stream_dicomweb_series(client, remote.study_uid, remote.series_uid, cache=cache) as s,
    ):
        s.wait()
    offline = f"http://127.0.0.1:{closed_port}/dicom-web"
    with DicomwebClient(offline, retries=0) as client:
        with stream_dicomweb_series(client, remote.study_uid, remote.series_uid, cache=cache) as s:
            assert s.offline
            volume = s.result()
        np.testing.assert_array_equal(volume.array, load_series(remote.files).array)
        assert s.requests == 0
        # Without a cached copy, the server being down is the error.
        other = dataset["beta_mr"]
        with pytest.raises(ServerUnreachableError):
            stream_dicomweb_series(client, other.study_uid, other.series_uid, cache=cache)

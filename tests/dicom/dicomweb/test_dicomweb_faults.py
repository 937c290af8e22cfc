"""Faults: server down, slow, failing mid-stream, cutting transfers off, refusing credentials.

Each ends in a clear, typed error (or, for one missing instance, a blank reported slice), and
the cache never holds anything but complete, verified instances.
"""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest

from workstation.dicom import load_series
from workstation.dicom.dicomweb import (
    AuthenticationError,
    BadResponseError,
    BearerAuth,
    DicomwebClient,
    DicomwebTimeoutError,
    InstanceCache,
    ServerError,
    ServerUnreachableError,
    TlsError,
    TruncatedResponseError,
    stream_dicomweb_series,
)
from workstation.security.aead import DataKeyRing


def is_pixel_request(path: str) -> bool:
    return "/instances/" in path and not path.endswith("/metadata")


def cache_is_clean(cache: InstanceCache, originals: dict[str, bytes], landed: set[str]) -> None:
    """Only complete entries: each decrypts to the exact instance, no temporary files; every
    instance that landed is there (one placed as the error arrived may be too)."""
    files = [p for p in cache.root.rglob("*") if p.is_file()]
    assert not [p for p in files if p.name.startswith(".tmp")]
    instances = [p for p in files if p.parent.parent.name == "instances"]
    cached = {sop for sop in originals if sop in cache}
    assert len(instances) == len(cached) >= len(landed)
    assert landed <= cached
    for sop in cached:
        hit = cache.get(sop)
        assert hit is not None and hit.data == originals[sop]


def slices_are_whole(volume: np.ndarray, local: np.ndarray, loaded: np.ndarray) -> None:
    """Slices that landed are right; the others are blank or right, never partly written."""
    for k in range(local.shape[0]):
        if loaded[k] or volume[k].any():
            np.testing.assert_array_equal(volume[k], local[k])


def originals(files) -> dict[str, bytes]:
    out = {}
    for path in files:
        data = path.read_bytes()
        out[str(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID)] = data
    return out


def test_server_down(closed_port, dataset):
    url = f"http://127.0.0.1:{closed_port}/dicom-web"
    with DicomwebClient(url, retries=2, backoff=0.01) as client:
        with pytest.raises(ServerUnreachableError) as caught:
            client.search_studies(patient_name="DOE^JOHN")
        remote = dataset["beta_mr"]
        with pytest.raises(ServerUnreachableError):
            stream_dicomweb_series(client, remote.study_uid, remote.series_uid)
    message = str(caught.value)
    assert f"127.0.0.1:{closed_port}" in message and "check the address" in message
    assert "DOE" not in message  # the query (a patient name) is never in a message


def test_slow_server_times_out(stalling_server):
    with (
        DicomwebClient(stalling_server.url + "/dicom-web", timeout=0.3, retries=1) as client,
        pytest.raises(DicomwebTimeoutError) as caught,
    ):
        client.search_studies()
    assert "did not answer within 0.3 s" in str(caught.value)


def test_a_500_mid_stream_stops_it_and_the_cache_keeps_only_whole_instances(
    fault_proxy, dataset, tmp_path
):
    remote = dataset["gamma_ct"]  # 40 slices
    served = []

    def plan(number: int, path: str) -> str:
        if is_pixel_request(path):
            served.append(path)
            return "500" if len(served) > 6 else "pass"
        return "pass"

    fault_proxy.plan = plan
    cache = InstanceCache(DataKeyRing.generate(), root=tmp_path)
    landed = []
    with (
        DicomwebClient(fault_proxy.dicomweb_url, retries=2, backoff=0.01) as client,
        pytest.raises(ServerError) as caught,
        stream_dicomweb_series(
            client,
            remote.study_uid,
            remote.series_uid,
            cache=cache,
            connections=2,
            fetch="instances",
        ) as stream,
    ):
        for k in stream:
            landed.append(k)
    assert caught.value.status == 500
    assert "HTTP 500" in str(caught.value) and "try again later" in str(caught.value)
    assert landed[0] == 20 and 1 <= len(landed) <= 6
    assert sorted(landed) == [k for k in range(40) if stream.loaded[k]]
    local = load_series(remote.files)
    slices_are_whole(stream.volume.array, local.array, stream.loaded)
    sops = {stream.series.stack.slices[k].sop_instance_uid for k in landed}
    cache_is_clean(cache, originals(remote.files), sops)


def test_transient_503s_are_retried(fault_proxy, dataset):
    remote = dataset["alpha_ct"]
    seen: set[str] = set()

    def plan(number: int, path: str) -> str:
        if path in seen:
            return "pass"
        seen.add(path)
        return "503"  # every request fails once

    fault_proxy.plan = plan
    with (
        DicomwebClient(fault_proxy.dicomweb_url, retries=1, backoff=0.001) as client,
        stream_dicomweb_series(client, remote.study_uid, remote.series_uid) as stream,
    ):
        volume = stream.result()
    np.testing.assert_array_equal(volume.array, load_series(remote.files).array)
    assert len(fault_proxy.paths) == 2 * len(seen)


@pytest.mark.parametrize(
    ("action", "words"), [("truncate", "cut off"), ("cut", "broke off during the transfer")]
)
def test_cut_transfers_raise_and_leave_nothing_half_written(
    fault_proxy, dataset, tmp_path, action, words
):
    remote = dataset["alpha_ct"]
    served = []

    def plan(number: int, path: str) -> str:
        if is_pixel_request(path):
            served.append(path)
            return action if len(served) > 2 else "pass"
        return "pass"

    fault_proxy.plan = plan
    cache = InstanceCache(DataKeyRing.generate(), root=tmp_path)
    with (
        DicomwebClient(fault_proxy.dicomweb_url, retries=1, backoff=0.001) as client,
        pytest.raises(TruncatedResponseError) as caught,
        stream_dicomweb_series(
            client,
            remote.study_uid,
            remote.series_uid,
            cache=cache,
            connections=1,
            fetch="instances",
        ) as stream,
    ):
        list(stream)
    assert words in str(caught.value)
    landed = [k for k in range(12) if stream.loaded[k]]
    assert len(landed) == 2
    slices_are_whole(stream.volume.array, load_series(remote.files).array, stream.loaded)
    sops = {stream.series.stack.slices[k].sop_instance_uid for k in landed}
    cache_is_clean(cache, originals(remote.files), sops)


def test_a_cut_series_retrieve_yields_only_whole_instances(fault_proxy, dataset):
    remote = dataset["gamma_ct"]
    fault_proxy.plan = lambda number, path: (
        "truncate" if path.endswith(remote.series_uid) else "pass"
    )
    expected = originals(remote.files)
    received = []
    with (
        DicomwebClient(fault_proxy.dicomweb_url, retries=0) as client,
        pytest.raises(TruncatedResponseError),
    ):
        for part in client.iter_instances(remote.study_uid, remote.series_uid):
            received.append(part.content)
    assert 0 < len(received) < 40
    for data in received:
        sop = str(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID)
        assert expected[sop] == data


@pytest.mark.parametrize("action", ["cut", "truncate"])
def test_a_broken_series_stream_is_completed_per_instance(fault_proxy, dataset, tmp_path, action):
    remote = dataset["gamma_ct"]
    fault_proxy.plan = lambda number, path: action if path.endswith(remote.series_uid) else "pass"
    cache = InstanceCache(DataKeyRing.generate(), root=tmp_path)
    with (
        DicomwebClient(fault_proxy.dicomweb_url, retries=0) as client,
        stream_dicomweb_series(
            client, remote.study_uid, remote.series_uid, cache=cache, fetch="series"
        ) as stream,
    ):
        volume = stream.result()
    np.testing.assert_array_equal(volume.array, load_series(remote.files).array)
    assert not volume.warnings
    assert 2 < stream.requests < 40  # the series, the middle one, then the missing ones
    cache_is_clean(cache, originals(remote.files), set(originals(remote.files)))


def test_a_500_on_the_series_stream_is_raised(fault_proxy, dataset):
    remote = dataset["gamma_ct"]
    fault_proxy.plan = lambda number, path: "500" if path.endswith(remote.series_uid) else "pass"
    with (
        DicomwebClient(fault_proxy.dicomweb_url) as client,
        pytest.raises(ServerError),
        stream_dicomweb_series(client, remote.study_uid, remote.series_uid) as stream,
    ):
        list(stream)


def test_a_missing_instance_leaves_its_slice_blank(fault_proxy, dataset):
    remote = dataset["beta_mr"]
    victim = sorted(originals(remote.files))[0]
    fault_proxy.plan = lambda number, path: "404" if path.endswith(victim) else "pass"
    with (
        DicomwebClient(fault_proxy.dicomweb_url) as client,
        stream_dicomweb_series(
            client, remote.study_uid, remote.series_uid, fetch="instances"
        ) as stream,
    ):
        volume = stream.result()
    local = load_series(remote.files)
    [k] = [k for k, s in enumerate(stream.series.stack.slices) if s.sop_instance_uid == victim]
    assert not volume.array[k].any()
    keep = [i for i in range(5) if i != k]
    np.testing.assert_array_equal(volume.array[keep], local.array[keep])
    assert any("left blank" in w and "HTTP 404" in w for w in volume.warnings)


def test_malformed_json_is_a_bad_response(fault_proxy, dataset):
    fault_proxy.plan = lambda number, path: "garbage"
    with (
        DicomwebClient(fault_proxy.dicomweb_url) as client,
        pytest.raises(BadResponseError, match="malformed JSON"),
    ):
        client.search_studies()


def test_wrong_credentials(orthanc_auth, dataset, tmp_path):
    remote = dataset["beta_mr"]
    url = orthanc_auth.dicomweb_url
    cache = InstanceCache(DataKeyRing.generate(), root=tmp_path)
    for auth in (None, ("alice", "wrong"), ("mallory", "correct horse"), BearerAuth("t0ken")):
        with DicomwebClient(url, auth=auth) as client:
            with pytest.raises(AuthenticationError) as caught:
                client.search_studies()
            assert caught.value.status == 401
            assert "check the user name and password" in str(caught.value)
            with pytest.raises(AuthenticationError):
                stream_dicomweb_series(client, remote.study_uid, remote.series_uid, cache=cache)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    # The right credentials, given either way, work.
    for client in (
        DicomwebClient(url, auth=("alice", "correct horse")),
        DicomwebClient(url.replace("http://", "http://alice:correct%20horse@")),
    ):
        with (
            client,
            stream_dicomweb_series(
                client, remote.study_uid, remote.series_uid, cache=cache
            ) as stream,
        ):
            np.testing.assert_array_equal(stream.result().array, load_series(remote.files).array)
        assert "alice" not in client.base_url


def test_tls_verification_with_a_hospital_ca(tls_proxy, dataset):
    proxy, certificate = tls_proxy
    with DicomwebClient(proxy.dicomweb_url, retries=0) as client, pytest.raises(TlsError) as caught:
        client.search_studies()
    assert "not trusted" in str(caught.value) and "CA bundle" in str(caught.value)
    remote = dataset["beta_mr"]
    for verify in (certificate, str(certificate)):  # the CA bundle, as a path
        with (
            DicomwebClient(proxy.dicomweb_url, verify=verify) as client,
            stream_dicomweb_series(client, remote.study_uid, remote.series_uid) as stream,
        ):
            np.testing.assert_array_equal(stream.result().array, load_series(remote.files).array)
    with DicomwebClient(proxy.dicomweb_url, verify=False) as client:
        assert client.search_studies(patient_name="QIDO^BETA")

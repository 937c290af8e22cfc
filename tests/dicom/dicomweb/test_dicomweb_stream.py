"""A remote series streams like a local one: same geometry, same voxels, middle slice first."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from workstation.core import Cancelled, CancelToken
from workstation.dicom import load_series, scan
from workstation.dicom.dicomweb import (
    DicomwebClient,
    DicomwebSeriesStream,
    load_dicomweb_series,
    stream_dicomweb_series,
)
from workstation.dicom.dicomweb._metadata import series_from_metadata
from workstation.dicom.errors import SeriesNotFoundError
from workstation.dicom.stream import SeriesStream


@pytest.fixture
def client(orthanc):
    with DicomwebClient(orthanc.dicomweb_url, timeout=20) as client:
        yield client


SERIES = ["alpha_ct", "alpha_mr", "gamma_ct", "real_ct5n", "real_mr_rle", "real_mr_jpegls",
          "real_rtdose"]  # fmt: skip


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")  # in pydicom's rtdose.dcm
@pytest.mark.parametrize("name", SERIES)
def test_metadata_gives_the_geometry_of_the_local_scan(client, dataset, name):
    remote = dataset[name]
    items = client.series_metadata(remote.study_uid, remote.series_uid)
    series = series_from_metadata(items, root="test", key=remote.series_uid, locate=lambda sop: sop)
    local = scan(remote.files).find(remote.series_uid)
    ours, theirs = series.stack, local.stack
    assert [(s.sop_instance_uid, s.frame) for s in ours.slices] == [
        (s.sop_instance_uid, s.frame) for s in theirs.slices
    ]
    assert ours.normal == theirs.normal
    assert ours.slice_spacing == theirs.slice_spacing
    assert ours.warnings == theirs.warnings
    assert ours.label == theirs.label
    for mine, yours in zip(ours.slices, theirs.slices, strict=True):
        assert mine.position == yours.position
        assert mine.orientation == yours.orientation
        assert mine.pixel_spacing == yours.pixel_spacing
        assert (mine.rescale_slope, mine.rescale_intercept) == (
            yours.rescale_slope,
            yours.rescale_intercept,
        )


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
@pytest.mark.parametrize("name", SERIES)
@pytest.mark.parametrize(
    ("fetch", "connections"), [("instances", 1), ("instances", 4), ("series", 1)]
)
def test_streamed_voxels_equal_the_local_load(client, dataset, name, fetch, connections):
    remote = dataset[name]
    local = load_series(remote.files, remote.series_uid)
    with stream_dicomweb_series(
        client, remote.study_uid, remote.series_uid, connections=connections, fetch=fetch
    ) as stream:
        assert isinstance(stream, SeriesStream)
        # Allocated from the metadata before any pixel data: the final shape, still blank.
        assert stream.volume.array.shape == local.array.shape
        assert stream.volume.array.dtype == local.array.dtype
        assert not stream.volume.array.any()
        assert stream.volume.spacing == local.spacing
        assert stream.volume.origin == local.origin
        np.testing.assert_array_equal(stream.volume.direction, local.direction)
        seen = list(stream)
    volume = stream.result()
    assert sorted(seen) == list(range(local.array.shape[0]))
    assert volume.array is stream.volume.array
    assert volume.array.dtype == local.array.dtype
    np.testing.assert_array_equal(volume.array, local.array)
    assert volume.warnings == local.warnings
    assert volume.metadata["transfer_syntax"] == local.metadata["transfer_syntax"]
    assert volume.metadata["window"] == local.metadata["window"]
    instances = len({s.sop_instance_uid for s in stream.series.stack.slices})
    assert stream.fetch == (fetch if instances > 2 else "instances")
    assert stream.requests == (instances if stream.fetch == "instances" else 2)


def test_synthetic_voxels_are_the_written_values(client, dataset):
    remote = dataset["gamma_ct"]
    volume = load_dicomweb_series(client, remote.study_uid, remote.series_uid)
    assert remote.stored is not None
    np.testing.assert_array_equal(volume.array, remote.stored * 0.5 - 100.0)


@pytest.mark.parametrize("fetch", ["instances", "series"])
def test_the_middle_slice_lands_first(client, dataset, fetch):
    remote = dataset["gamma_ct"]  # 40 slices
    for connections in (1, 4, 8):
        with stream_dicomweb_series(
            client, remote.study_uid, remote.series_uid, connections=connections, fetch=fetch
        ) as stream:
            iterator = iter(stream)
            assert next(iterator) == 20
            # At that moment the middle slice is in place.
            assert stream.volume.array[20].any()
            assert sorted([20, *iterator]) == list(range(40))


@pytest.mark.parametrize("fetch", ["instances", "series"])
def test_cancel_mid_stream(client, dataset, fetch):
    remote = dataset["gamma_ct"]
    token = CancelToken()
    received = []
    with (
        pytest.raises(Cancelled),
        stream_dicomweb_series(
            client, remote.study_uid, remote.series_uid, cancel=token, connections=4, fetch=fetch
        ) as stream,
    ):
        for k in stream:
            received.append(k)
            token.cancel()
    assert received == [20]
    assert not stream.complete
    # stream.cancel() (the consumer's own) stops it the same way.
    with stream_dicomweb_series(client, remote.study_uid, remote.series_uid) as stream:
        iterator = iter(stream)
        assert next(iterator) == 20
        stream.cancel()
        with pytest.raises(Cancelled):
            list(iterator)


@pytest.mark.parametrize("fetch", ["instances", "series"])
def test_leaving_early_does_not_hang(client, dataset, fetch):
    remote = dataset["gamma_ct"]
    done = threading.Event()
    outcome: list[object] = []

    def consume() -> None:
        try:
            with stream_dicomweb_series(
                client, remote.study_uid, remote.series_uid, connections=8, fetch=fetch
            ) as stream:
                for _k in stream:
                    break
            outcome.append(stream)
        finally:
            done.set()

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    assert done.wait(30), "leaving the stream early hung"
    [stream] = outcome
    assert isinstance(stream, DicomwebSeriesStream)
    assert not stream.complete


def test_progress_reaches_the_total(client, dataset):
    remote = dataset["alpha_ct"]
    reports: list[tuple[int, int]] = []
    load_dicomweb_series(
        client, remote.study_uid, remote.series_uid, progress=lambda d, t, m: reports.append((d, t))
    )
    assert reports[0] == (0, 12)
    assert reports[-1] == (12, 12)


def test_unknown_series_is_reported(client, dataset):
    from workstation.dicom.dicomweb import DicomwebNotFoundError

    remote = dataset["alpha_ct"]
    with pytest.raises((DicomwebNotFoundError, SeriesNotFoundError)) as caught:
        stream_dicomweb_series(client, remote.study_uid, "1.2.3.4.5.6.7")
    assert "1.2.3.4.5.6.7" in str(caught.value) or "no such resource" in str(caught.value)

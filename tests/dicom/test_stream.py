"""Progressive loading: middle slice first, every slice once, one array, clean early exit."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from workstation.core import Cancelled, CancelToken
from workstation.dicom import load_series, scan, stream_series
from workstation.dicom.stream import SeriesStream, middle_out


@pytest.mark.parametrize("count", [1, 2, 3, 12, 13])
def test_middle_out_order_covers_every_index_once(count):
    order = middle_out(count)
    assert order[0] == count // 2
    assert sorted(order) == list(range(count))
    # Alternating outwards: distance from the middle never decreases.
    distances = [abs(k - count // 2) for k in order]
    assert distances == sorted(distances)


def test_first_slice_yielded_is_the_middle_and_each_slice_once(make_series):
    written = make_series(slices=12)
    catalog = scan(written.folder)
    for _ in range(10):
        with stream_series(catalog, workers=1) as stream:
            assert stream.volume.array.shape == (12, 32, 32)
            seen = list(stream)
        assert seen[0] == 6
        assert sorted(seen) == list(range(12))
        np.testing.assert_array_equal(stream.result().array, written.stored)


def test_middle_slice_first_with_several_workers(make_series, monkeypatch):
    written = make_series(slices=12)
    catalog = scan(written.folder)
    for _ in range(20):
        with stream_series(catalog, workers=4) as stream:
            seen = list(stream)
        assert seen[0] == 6, seen
        assert sorted(seen) == list(range(12))
    # The middle file is slow (a network share): the viewer still wants it first.
    original = SeriesStream._read_native

    def slow_middle(self, indices):
        if indices == self.order[:1]:
            time.sleep(0.3)
        return original(self, indices)

    monkeypatch.setattr(SeriesStream, "_read_native", slow_middle)
    with stream_series(catalog, workers=4) as stream:
        seen = list(stream)
    assert seen[0] == 6, seen


def test_stream_volume_is_the_result_array(make_series):
    written = make_series(slices=12, rescale_intercept=-1024.0)
    with stream_series(written.folder) as stream:
        array = stream.volume.array
        assert not array.any()  # allocated before any slice is read
        for k in stream:
            # Each yielded slice is already in place in the shared array.
            np.testing.assert_array_equal(array[k], written.stored[k].astype(np.int32) - 1024)
    result = stream.result()
    assert result.array is array
    assert stream.complete
    assert result.spacing == stream.volume.spacing
    assert result.origin == stream.volume.origin


def test_breaking_out_early_does_not_hang(make_series):
    written = make_series(slices=40, rows=64, columns=64)
    catalog = scan(written.folder)
    done = threading.Event()
    outcome: list[object] = []

    def consume() -> None:
        try:
            with stream_series(catalog, workers=4) as stream:
                for _k in stream:
                    break
            outcome.append(stream)
        except BaseException as error:  # noqa: BLE001 - reported to the main thread
            outcome.append(error)
        finally:
            done.set()

    start = time.monotonic()
    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    assert done.wait(20), "leaving the stream early hung"
    thread.join(5)
    assert time.monotonic() - start < 20
    [stream] = outcome
    assert not isinstance(stream, BaseException), stream
    # The rest can still be loaded afresh afterwards.
    np.testing.assert_array_equal(load_series(catalog).array, written.stored)


def test_cancel_token_stops_the_stream(make_series):
    written = make_series(slices=12)
    token = CancelToken()
    received = []
    with pytest.raises(Cancelled), stream_series(written.folder, cancel=token, workers=1) as stream:
        for k in stream:
            received.append(k)
            token.cancel()
    assert received[0] == 6
    assert len(received) < 12


def test_stream_progress_reaches_total(make_series):
    written = make_series(slices=12)
    reports: list[tuple[int, int]] = []
    with stream_series(written.folder, progress=lambda d, t, m: reports.append((d, t))) as stream:
        list(stream)
    assert reports[0] == (0, 12) and reports[-1] == (12, 12)


def test_a_stream_iterates_once(make_series):
    written = make_series(slices=3)
    with stream_series(written.folder) as stream:
        list(stream)
        with pytest.raises(RuntimeError):
            list(stream)


def test_slice_that_fails_is_reported(make_series):
    written = make_series(slices=6, rescale_intercept=-1024.0)  # rescaled: read via scratch
    catalog = scan(written.folder)
    # Truncate one file after the scan: its pixels can no longer be read.
    victim = written.paths[2]
    victim.write_bytes(victim.read_bytes()[:-100])
    volume = load_series(catalog)
    assert any(str(victim) in w and "left blank" in w for w in volume.warnings)
    assert not volume.array[2].any()
    keep = [k for k in range(6) if k != 2]
    np.testing.assert_array_equal(volume.array[keep], written.stored[keep].astype(np.int32) - 1024)


def test_slice_that_fails_on_the_direct_path_is_blank(make_series):
    written = make_series(slices=6)  # no rescale: read straight into the volume
    catalog = scan(written.folder)
    victim = written.paths[2]
    victim.write_bytes(victim.read_bytes()[:-100])
    volume = load_series(catalog)
    assert any(str(victim) in w and "left blank" in w for w in volume.warnings)
    keep = [k for k in range(6) if k != 2]
    np.testing.assert_array_equal(volume.array[keep], written.stored[keep])
    assert not volume.array[2].any()

"""Series thumbnails: the middle slice only, its window, compressed data, unreadable pixels."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate, generate_frames

from workstation.core.errors import Cancelled
from workstation.core.tasks import CancelToken
from workstation.dicom import Series, scan
from workstation.dicom.errors import PixelDecodeError
from workstation.render.thumbnail import thumbnail
from workstation.render.windowing import Window, auto_window
from workstation.workflow.thumbnails import (
    Thumbnail,
    middle_slice,
    series_thumbnail,
    series_thumbnails,
    series_window,
)

RLE = "1.2.840.10008.1.2.5"
SLICES, ROWS, COLUMNS = 5, 40, 30
# (i, j, k) in mm: columns 2 mm apart, rows 0.5 mm: 60 mm wide, 20 mm high.
ANISOTROPIC = (2.0, 0.5, 3.0)


@pytest.fixture(autouse=True)
def _quiet_pydicom() -> Iterator[None]:
    # pydicom logs every decoder that fails on the corrupt file, with a traceback.
    logger = logging.getLogger("pydicom")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


def middle_bright_left() -> np.ndarray:
    """Noise; the middle slice has its left half bright, every other slice its right half."""
    rng = np.random.default_rng(3)
    stored = rng.integers(0, 200, (SLICES, ROWS, COLUMNS)).astype(np.uint16)
    for k in range(SLICES):
        half = np.s_[:, : COLUMNS // 2] if k == SLICES // 2 else np.s_[:, COLUMNS // 2 :]
        stored[k][half] += 800
    return stored


def only(folder: Path) -> Series:
    [series] = scan(folder).series
    return series


def compress(paths: list[Path]) -> None:
    """Re-encode the files in place as RLE Lossless."""
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.compress(RLE, encoding_plugin="pydicom")
        ds.save_as(path, enforce_file_format=True)


def corrupt_pixels(path: Path) -> None:
    """Cut the file's (compressed) codestream in half: the header stays readable."""
    ds = pydicom.dcmread(path)
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    cut = frame[: len(frame) // 2]
    ds.PixelData = encapsulate([cut + b"\0" * (len(cut) % 2)])
    ds.save_as(path)


def test_thumbnail_of_the_middle_slice_with_physical_aspect(
    make_series: Callable[..., Any],
) -> None:
    written = make_series(stored=middle_bright_left(), spacing=ANISOTROPIC)
    series = only(written.folder)
    assert middle_slice(series).path == str(written.paths[SLICES // 2])
    image = series_thumbnail(series, size=64)
    assert image.shape == (21, 64) and image.dtype == np.uint8
    left, right = image[:, :32], image[:, 32:]
    assert left.min() > 150 and right.max() < 100  # the middle slice, not another


def test_only_the_middle_instance_is_read(make_series: Callable[..., Any]) -> None:
    written = make_series(stored=middle_bright_left(), spacing=ANISOTROPIC)
    series = only(written.folder)
    expected = series_thumbnail(series)
    for k, path in enumerate(written.paths):
        if k != SLICES // 2:
            path.unlink()
    np.testing.assert_array_equal(series_thumbnail(series), expected)


def test_the_series_dicom_window_wins_over_auto(make_series: Callable[..., Any]) -> None:
    """CT with a rescale: the thumbnail is the DICOM window over the slice's HU values."""
    stored = np.tile(np.linspace(0, 2000, COLUMNS).astype(np.uint16), (SLICES, ROWS, 1))
    common = {"stored": stored, "spacing": (1.0, 1.0, 1.0), "modality": "CT"}
    common["rescale_intercept"] = -1024.0
    windowed = make_series("windowed", window_center=40.0, window_width=400.0, **common)
    plain = make_series("plain", **common)
    hu = stored[SLICES // 2].astype(np.int32) - 1024
    window = series_window(only(windowed.folder))
    assert window == Window(40.0, 400.0)
    np.testing.assert_array_equal(
        series_thumbnail(only(windowed.folder)), thumbnail(hu, size=64, window=window)
    )
    assert series_window(only(plain.folder)) is None
    np.testing.assert_array_equal(
        series_thumbnail(only(plain.folder)), thumbnail(hu, size=64, window=auto_window(hu))
    )
    assert not np.array_equal(series_thumbnail(only(plain.folder)), thumbnail(hu, window=window))


def test_monochrome1_is_inverted(make_series: Callable[..., Any]) -> None:
    stored = middle_bright_left()
    normal = series_thumbnail(only(make_series("m2", stored=stored).folder))
    extra = {"PhotometricInterpretation": "MONOCHROME1"}
    inverted = series_thumbnail(only(make_series("m1", stored=stored, extra=extra).folder))
    # Equal up to the rounding of the averaged grey levels.
    assert np.abs(inverted.astype(int) - (255 - normal.astype(int))).max() <= 1
    assert np.abs(inverted.astype(int) - normal.astype(int)).mean() > 100


def test_compressed_series_gives_the_same_thumbnail(make_series: Callable[..., Any]) -> None:
    native = make_series("native", stored=middle_bright_left(), spacing=ANISOTROPIC)
    packed = make_series("rle", stored=middle_bright_left(), spacing=ANISOTROPIC)
    compress(packed.paths)
    series = only(packed.folder)
    assert middle_slice(series).compressed
    np.testing.assert_array_equal(series_thumbnail(series), series_thumbnail(only(native.folder)))


def test_unreadable_middle_slice_raises_the_engines_error(make_series: Callable[..., Any]) -> None:
    written = make_series(stored=middle_bright_left())
    compress(written.paths)
    corrupt_pixels(written.paths[SLICES // 2])
    series = only(written.folder)  # the header is fine: the scan keeps the file
    assert series.slice_count == SLICES
    with pytest.raises(PixelDecodeError) as caught:
        series_thumbnail(series)
    assert caught.value.path == written.paths[SLICES // 2]


def test_many_series_in_order_with_failures_reported(make_series: Callable[..., Any]) -> None:
    good = only(make_series("good", stored=middle_bright_left()).folder)
    bad_files = make_series("bad", stored=middle_bright_left())
    compress(bad_files.paths)
    corrupt_pixels(bad_files.paths[SLICES // 2])
    bad = only(bad_files.folder)
    seen: list[Thumbnail] = []
    reports: list[tuple[int, int]] = []
    results = series_thumbnails(
        [bad, good, bad],
        size=32,
        partial=seen.append,
        progress=lambda done, total, _message="": reports.append((done, total)),
    )
    assert results == seen
    assert [(t.index, t.key) for t in seen] == [(0, bad.key), (1, good.key), (2, bad.key)]
    assert seen[0].image is None and "IM00003.dcm" in seen[0].problem
    assert seen[1].image is not None and seen[1].image.shape == (32, 21) and not seen[1].problem
    assert reports[-1] == (3, 3)


def test_cancel_stops_before_the_next_series(make_series: Callable[..., Any]) -> None:
    series = only(make_series(stored=middle_bright_left()).folder)
    token = CancelToken()
    seen: list[Thumbnail] = []

    def cancel_after_first(result: Thumbnail) -> None:
        seen.append(result)
        token.cancel()

    with pytest.raises(Cancelled):
        series_thumbnails([series] * 3, cancel=token, partial=cancel_after_first)
    assert len(seen) == 1

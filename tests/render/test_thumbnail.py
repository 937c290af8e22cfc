"""Thumbnails of one image: shape from the physical aspect, windowing, area averaging."""

from __future__ import annotations

import numpy as np
import pytest

from workstation.render.thumbnail import thumbnail, thumbnail_shape
from workstation.render.windowing import Window, apply_window, auto_window

FULL = Window.from_range(0, 255)  # uint8 values as they are


def _left_bright(rows: int, columns: int) -> np.ndarray:
    rng = np.random.default_rng(3)
    image = rng.integers(0, 200, (rows, columns)).astype(np.uint16)
    image[:, : columns // 2] += 800
    return image


@pytest.mark.parametrize(
    ("shape", "spacing", "size", "expected"),
    [
        ((40, 30), (1.0, 1.0), 64, (64, 48)),
        ((40, 30), (0.5, 2.0), 64, (21, 64)),  # 20 mm high, 60 mm wide
        ((40, 30), (2.0, 0.5), 64, (64, 12)),  # 80 mm high, 15 mm wide
        ((512, 512), (0.7, 0.7), 48, (48, 48)),
        ((8, 8), None, 64, (64, 64)),  # small images grow to the size
        ((10, 1000), (1.0, 1.0), 64, (1, 64)),  # never an empty side
    ],
)
def test_shape_keeps_the_physical_aspect(
    shape: tuple[int, int],
    spacing: tuple[float, float] | None,
    size: int,
    expected: tuple[int, int],
) -> None:
    assert thumbnail_shape(shape, spacing, size) == expected
    assert thumbnail(np.ones(shape, np.uint8), spacing, size=size).shape == expected


@pytest.mark.parametrize("spacing", [(0.0, 1.0), (float("nan"), 1.0), (-1.0, 2.0), (1.0,)])
def test_unusable_spacing_counts_as_square_pixels(spacing: tuple[float, ...]) -> None:
    assert thumbnail_shape((40, 20), spacing, 64) == (64, 32)


def test_pattern_survives_on_anisotropic_spacing() -> None:
    image = _left_bright(40, 30)
    small = thumbnail(image, (0.5, 2.0), size=64)
    assert small.shape == (21, 64) and small.dtype == np.uint8 and small.flags.c_contiguous
    # Input column 15 (the edge) starts at output column 15 * 64 / 30 = 32: not shifted.
    left, right = small[:, :32], small[:, 32:]
    assert left.min() > 150 and right.max() < 100


def test_area_averaging_not_sampling() -> None:
    """A 1-pixel checkerboard shrunk 2× becomes mid-grey (sampling would keep 0 or 255)."""
    board = (np.indices((64, 64)).sum(axis=0) % 2 * 255).astype(np.uint8)
    small = thumbnail(board, size=32, window=FULL)
    assert small.shape == (32, 32)
    assert np.all(np.abs(small.astype(int) - 128) <= 1)
    # A fractional factor (3 -> 2) averages overlapping areas too.
    stripes = np.array([[0, 255, 0]] * 3, dtype=np.uint8)
    assert np.all(np.abs(thumbnail(stripes, size=2, window=FULL).astype(int) - 85) <= 1)


def test_given_window_and_auto_window() -> None:
    image = np.linspace(0, 1000, 64 * 64).reshape(64, 64).astype(np.int16)
    window = Window(100, 50)
    np.testing.assert_array_equal(
        thumbnail(image, size=64, window=window), apply_window(image, window)
    )
    np.testing.assert_array_equal(
        thumbnail(image, size=64), apply_window(image, auto_window(image))
    )
    inverted = thumbnail(image, size=64, window=window, invert=True)
    np.testing.assert_array_equal(inverted, 255 - apply_window(image, window))


def test_float_values_and_nan() -> None:
    image = np.linspace(-1.0, 1.0, 32 * 32, dtype=np.float32).reshape(32, 32)
    image[0, 0] = np.nan
    small = thumbnail(image, size=16, window=Window(0.0, 2.0, "LINEAR_EXACT"))
    assert small.shape == (16, 16)
    assert small[-1, -1] > 240 and small[0, 0] < 10  # NaN: black


def test_colour_is_shown_as_luma() -> None:
    rgb = np.zeros((20, 20, 3), np.uint8)
    rgb[:, :10] = (0, 255, 0)  # green is bright in luma
    rgb[:, 10:] = (0, 0, 255)  # blue is dark
    small = thumbnail(rgb, size=20, window=FULL)
    assert small.shape == (20, 20)
    assert abs(int(small[0, 0]) - round(0.587 * 255)) <= 1
    assert abs(int(small[0, -1]) - round(0.114 * 255)) <= 1


@pytest.mark.parametrize(
    ("image", "size"),
    [(np.zeros(10), 64), (np.zeros((0, 4)), 64), (np.zeros((4, 4)), 0), (np.zeros((2, 2, 2)), 8)],
)
def test_bad_input_raises(image: np.ndarray, size: int) -> None:
    with pytest.raises(ValueError):
        thumbnail(image, size=size)

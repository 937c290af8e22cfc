"""Zoom and pan mapping between widget and image pixels (no Qt)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from workstation.render.viewport import (
    FIT,
    MAX_ZOOM,
    MIN_ZOOM,
    ImageFrame,
    Viewport,
    fit_scale,
    image_rect,
    image_to_widget,
    pan_by,
    pixels_per_mm,
    widget_to_image,
    zoom_about,
)

# 30 columns of 1 mm by 20 rows of 2 mm: 30 mm wide, 40 mm high.
FRAME = ImageFrame((20, 30), (2.0, 1.0))
SIZE = (300.0, 300.0)
Pair = tuple[float, float]

sizes = st.tuples(st.floats(50, 2000), st.floats(50, 2000))
frames = st.builds(
    ImageFrame,
    st.tuples(st.integers(1, 600), st.integers(1, 600)),
    st.tuples(st.floats(0.05, 10), st.floats(0.05, 10)),
)
viewports = st.builds(
    Viewport,
    st.floats(MIN_ZOOM, MAX_ZOOM),
    st.tuples(st.floats(-500, 500), st.floats(-500, 500)),
)
points = st.tuples(st.floats(-500, 2500), st.floats(-500, 2500))
factors = st.floats(0.2, 5.0)


def test_fit_to_window_centres_the_image_keeping_its_aspect() -> None:
    assert fit_scale(SIZE, FRAME) == pytest.approx(7.5)  # 300 px / 40 mm
    left, top, width, height = image_rect(FIT, SIZE, FRAME)
    assert (left, top, width, height) == pytest.approx((300 / 2 - 112.5, 0.0, 225.0, 300.0))
    # The centre of pixel (0, 0) is half a pixel in from the corner: 0.5 mm right, 1 mm down.
    assert image_to_widget(FIT, SIZE, FRAME, (0, 0)) == pytest.approx((37.5 + 3.75, 7.5))


def test_zoom_scales_about_the_widget_centre_by_default() -> None:
    zoomed = Viewport(2.0)
    assert pixels_per_mm(zoomed, SIZE, FRAME) == pytest.approx(15.0)
    centre = widget_to_image(FIT, SIZE, FRAME, (150, 150))
    assert widget_to_image(zoomed, SIZE, FRAME, (150, 150)) == pytest.approx(centre)
    left, top, width, height = image_rect(zoomed, SIZE, FRAME)
    assert (width, height) == pytest.approx((450.0, 600.0))
    assert (left, top) == pytest.approx((150 - 225, 150 - 300))


def test_pan_is_in_image_mm_so_resizing_keeps_the_centre() -> None:
    panned = Viewport(1.5, (4.0, -6.0))
    # The image point at the widget centre is 4 mm right and 6 mm up of the image centre.
    for size in (SIZE, (800.0, 500.0)):
        row, col = widget_to_image(panned, size, FRAME, (size[0] / 2, size[1] / 2))
        assert ((col + 0.5) * 1.0, (row + 0.5) * 2.0) == pytest.approx((15 + 4, 20 - 6))


def test_zoom_is_clamped_and_keeps_the_point() -> None:
    point = (40.0, 250.0)
    before = widget_to_image(FIT, SIZE, FRAME, point)
    huge = zoom_about(FIT, SIZE, FRAME, point, 1e6)
    assert huge.zoom == MAX_ZOOM
    assert widget_to_image(huge, SIZE, FRAME, point) == pytest.approx(before)
    tiny = zoom_about(FIT, SIZE, FRAME, point, 1e-6)
    assert tiny.zoom == MIN_ZOOM
    assert widget_to_image(tiny, SIZE, FRAME, point) == pytest.approx(before)


def test_invalid_values_are_refused() -> None:
    with pytest.raises(ValueError, match="zoom"):
        Viewport(0.0)
    with pytest.raises(ValueError, match="pan"):
        Viewport(1.0, (float("nan"), 0.0))
    with pytest.raises(ValueError, match="spacing"):
        ImageFrame((2, 2), (0.0, 1.0))
    with pytest.raises(ValueError, match="pixel"):
        ImageFrame((0, 2), (1.0, 1.0))
    with pytest.raises(ValueError, match="factor"):
        zoom_about(FIT, SIZE, FRAME, (0, 0), -2.0)


def test_an_empty_widget_does_not_divide_by_zero() -> None:
    assert np.all(np.isfinite(widget_to_image(FIT, (0, 0), FRAME, (0, 0))))


def test_arrays_of_points_map_at_once() -> None:
    pixels = np.array([[0.0, 0.0], [19.0, 29.0], [3.5, 7.25]])
    widget = image_to_widget(Viewport(3.0, (1.0, 2.0)), SIZE, FRAME, pixels)
    assert widget.shape == (3, 2)
    back = widget_to_image(Viewport(3.0, (1.0, 2.0)), SIZE, FRAME, widget)
    assert back == pytest.approx(pixels)


@given(viewports, sizes, frames, points)
def test_widget_image_round_trip(
    viewport: Viewport, size: Pair, frame: ImageFrame, point: Pair
) -> None:
    pixel = widget_to_image(viewport, size, frame, point)
    again = image_to_widget(viewport, size, frame, pixel)
    assert again == pytest.approx(point, abs=1e-6 * (1 + max(abs(v) for v in point)))


@given(viewports, sizes, frames, points, factors)
def test_zoom_about_keeps_the_image_under_the_point(
    viewport: Viewport, size: Pair, frame: ImageFrame, point: Pair, factor: float
) -> None:
    before = widget_to_image(viewport, size, frame, point)
    zoomed = zoom_about(viewport, size, frame, point, factor)
    assert MIN_ZOOM <= zoomed.zoom <= MAX_ZOOM
    scale = max(frame.extent_mm) / min(frame.spacing)  # image pixels across the image
    after = widget_to_image(zoomed, size, frame, point)
    assert after == pytest.approx(before, abs=1e-7 * (scale + np.abs(before).max()))


@given(viewports, sizes, frames, st.floats(-300, 300), st.floats(-300, 300))
def test_pan_moves_every_point_by_the_drag(
    viewport: Viewport, size: Pair, frame: ImageFrame, dx: float, dy: float
) -> None:
    pixel = (frame.shape[0] / 3, frame.shape[1] / 4)
    before = image_to_widget(viewport, size, frame, pixel)
    moved = pan_by(viewport, size, frame, dx, dy)
    assert moved.zoom == viewport.zoom
    after = image_to_widget(moved, size, frame, pixel)
    assert after - before == pytest.approx((dx, dy), abs=1e-6 * (1 + np.abs(before).max()))
    back = pan_by(moved, size, frame, -dx, -dy)
    assert back.pan == pytest.approx(viewport.pan, abs=1e-9 * (1 + max(map(abs, viewport.pan))))


@given(viewports, sizes, frames)
def test_image_rect_bounds_the_pixels(viewport: Viewport, size: Pair, frame: ImageFrame) -> None:
    left, top, width, height = image_rect(viewport, size, frame)
    rows, cols = frame.shape
    corners = image_to_widget(viewport, size, frame, [(-0.5, -0.5), (rows - 0.5, cols - 0.5)])
    tol = 1e-6 * (1 + abs(left) + abs(top) + width + height)
    assert corners[0] == pytest.approx((left, top), abs=tol)
    assert corners[1] == pytest.approx((left + width, top + height), abs=tol)


@given(sizes, frames)
def test_fit_shows_the_whole_image_touching_two_edges(size: Pair, frame: ImageFrame) -> None:
    left, top, width, height = image_rect(FIT, size, frame)
    tol = 1e-6 * max(size)
    assert left >= -tol and top >= -tol
    assert left + width <= size[0] + tol and top + height <= size[1] + tol
    assert min(abs(width - size[0]), abs(height - size[1])) <= tol
    assert width / height == pytest.approx(frame.extent_mm[0] / frame.extent_mm[1])

"""Rulers in patient space: length, where they show, the shared list (no Qt)."""

from __future__ import annotations

import gc
import math
import weakref

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from workstation.core.volume import Volume
from workstation.render import (
    ObliquePlane,
    Slice2D,
    StudyView,
    ViewPlane,
    point_at_slice,
    reslice,
)
from workstation.render.measure import (
    Measurements,
    Ruler,
    measurements_for,
    ruler_visible,
    slice_spacing,
)

# i: 1 mm, j: 2 mm, k: 3 mm, so every plane has its own slice spacing.
VOLUME = Volume(array=np.zeros((10, 20, 30), dtype=np.int16), spacing=(1.0, 2.0, 3.0))
finite = st.floats(-1e4, 1e4)
lps = st.tuples(finite, finite, finite)
Point = tuple[float, float, float]


def test_length_is_the_3d_distance_and_labelled_in_mm() -> None:
    ruler = Ruler((0, 0, 0), (3.0, 4.0, 12.0))
    assert ruler.length_mm == pytest.approx(13.0)
    assert ruler.label == "13.0 mm"
    assert Ruler(np.array([1.0, 2.0, 3.0]), [1.0, 2.0, 3.0]).length_mm == 0.0


def test_ends_must_be_finite_points() -> None:
    with pytest.raises(ValueError, match="finite"):
        Ruler((0, 0, math.inf), (0, 0, 0))
    with pytest.raises(ValueError):
        Ruler((0, 0), (0, 0, 0))


@given(lps, lps)
def test_length_is_symmetric_and_matches_numpy(a: Point, b: Point) -> None:
    assert Ruler(a, b).length_mm == pytest.approx(Ruler(b, a).length_mm)
    assert Ruler(a, b).length_mm == pytest.approx(float(np.linalg.norm(np.subtract(a, b))))


@pytest.mark.parametrize(
    ("plane", "spacing"),
    [(ViewPlane.AXIAL, 3.0), (ViewPlane.CORONAL, 2.0), (ViewPlane.SAGITTAL, 1.0)],
)
def test_slice_spacing_per_plane(plane: ViewPlane, spacing: float) -> None:
    assert slice_spacing(VOLUME, plane) == pytest.approx(spacing)


def _cut(plane: ViewPlane, index: int) -> Slice2D:
    point = point_at_slice(VOLUME, plane, (10.0, 20.0, 15.0), index)
    return reslice(VOLUME, plane, point)


def test_a_ruler_drawn_on_a_slice_shows_there_only() -> None:
    cut = _cut(ViewPlane.AXIAL, 4)
    ruler = Ruler(cut.pixel_to_lps((2, 3)), cut.pixel_to_lps((12.5, 20.25)))
    spacing = slice_spacing(VOLUME, ViewPlane.AXIAL)
    assert ruler_visible(ruler, cut, spacing)
    assert not ruler_visible(ruler, _cut(ViewPlane.AXIAL, 3), spacing)
    assert not ruler_visible(ruler, _cut(ViewPlane.AXIAL, 5), spacing)


def test_tolerance_is_half_a_slice_half_open() -> None:
    cut = _cut(ViewPlane.AXIAL, 4)  # z = 12 mm; slices every 3 mm
    z = float(cut.origin[2])
    spacing = slice_spacing(VOLUME, ViewPlane.AXIAL)

    def at(dz: float) -> Ruler:
        return Ruler((1.0, 2.0, z + dz), (5.0, 9.0, z))

    assert ruler_visible(at(1.49), cut, spacing)
    assert ruler_visible(at(-1.5), cut, spacing)  # the lower bound belongs to this slice
    assert not ruler_visible(at(1.5), cut, spacing)  # the upper one to the next
    assert not ruler_visible(at(-1.51), cut, spacing)


def test_a_ruler_in_one_plane_shows_in_another_that_holds_it() -> None:
    axial = _cut(ViewPlane.AXIAL, 4)
    # Along L (x) at the cut's z and a fixed y: the coronal slice through that y holds it too.
    ruler = Ruler((2.0, 20.0, axial.origin[2]), (25.0, 20.0, axial.origin[2]))
    coronal = reslice(VOLUME, ViewPlane.CORONAL, (0.0, 20.0, 0.0))
    assert ruler_visible(ruler, axial, 3.0)
    assert ruler_visible(ruler, coronal, slice_spacing(VOLUME, ViewPlane.CORONAL))
    slanted = Ruler((2.0, 20.0, axial.origin[2]), (25.0, 30.0, axial.origin[2]))
    assert ruler_visible(slanted, axial, 3.0)
    assert not ruler_visible(slanted, coronal, 2.0)


def test_oblique_plane() -> None:
    plane = ObliquePlane(col_dir=(1.0, 0.0, 0.0), row_dir=(0.0, 0.6, -0.8))
    cut = reslice(VOLUME, plane, (10.0, 20.0, 15.0))
    ruler = Ruler(cut.pixel_to_lps((1.0, 2.0)), cut.pixel_to_lps((7.0, 3.0)))
    spacing = slice_spacing(VOLUME, plane)
    assert ruler_visible(ruler, cut, spacing)
    moved = Ruler(np.add(ruler.start, cut.normal * spacing), np.add(ruler.end, cut.normal * 0.1))
    assert not ruler_visible(moved, cut, spacing)


def test_measurements_list_emits_changes() -> None:
    measurements = Measurements()
    calls: list[int] = []
    measurements.events.changed.connect(lambda: calls.append(len(measurements)))
    a = measurements.add(Ruler((0, 0, 0), (1, 0, 0)))
    b = measurements.add(Ruler((0, 0, 0), (1, 0, 0)))  # equal but not the same ruler
    assert measurements.rulers == (a, b) and list(measurements) == [a, b]
    measurements.remove(b)
    assert measurements.rulers == (a,) and measurements.rulers[0] is a
    with pytest.raises(ValueError):
        measurements.remove(b)
    measurements.clear()
    measurements.clear()  # nothing to clear: no event
    assert calls == [1, 2, 1, 0]


def test_visible_on_filters_in_order() -> None:
    cut = _cut(ViewPlane.AXIAL, 4)
    measurements = Measurements()
    first = measurements.add(Ruler(cut.pixel_to_lps((1, 1)), cut.pixel_to_lps((5, 5))))
    elsewhere = _cut(ViewPlane.AXIAL, 7)
    measurements.add(Ruler(elsewhere.pixel_to_lps((1, 1)), elsewhere.pixel_to_lps((5, 5))))
    last = measurements.add(Ruler(cut.pixel_to_lps((2, 1)), cut.pixel_to_lps((9, 5))))
    assert measurements.visible_on(cut, 3.0) == [first, last]


def test_views_of_one_study_share_one_list() -> None:
    study, other = StudyView(), StudyView()
    shared = measurements_for(study)
    assert measurements_for(study) is shared
    assert measurements_for(other) is not shared
    alive = weakref.ref(study)
    del study
    gc.collect()
    assert alive() is None  # the shared list does not keep its study alive

"""MPR geometry: the bright-marker test, views vs SimpleITK, scrolling, orientation labels."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from geometry import quaternion_rotation
from hypothesis import given, settings
from hypothesis import strategies as st

from workstation.core.volume import Volume
from workstation.render import (
    ObliquePlane,
    Slice2D,
    ViewPlane,
    direction_label,
    edge_labels,
    orientation_of,
    point_at_slice,
    reslice,
    slice_count,
    slice_index_of,
)

PLANES = list(ViewPlane)
MARKER = 5000
FILL = -100

# Direction columns are the LPS directions of i, j, k.
IDENTITY = np.eye(3)
FLIP_I = np.diag([-1.0, 1.0, 1.0])  # i toward patient Right
FLIP_JK = np.diag([1.0, -1.0, -1.0])  # j toward Anterior, slices stacked toward Inferior
SAGITTAL_ACQ = np.column_stack([(0, 1, 0), (0, 0, -1), (-1, 0, 0)])  # i->P, j->I, k->R
CORONAL_ACQ = np.column_stack([(1, 0, 0), (0, 0, -1), (0, 1, 0)])  # i->L, j->I, k->P


def rotation(axis: np.ndarray, degrees: float) -> np.ndarray:
    axis = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    versor = sitk.VersorTransform(tuple(axis), float(np.radians(degrees)))
    return np.asarray(versor.GetMatrix()).reshape(3, 3)


def marker_volume(
    shape: tuple[int, int, int],
    direction: np.ndarray,
    spacing: tuple[float, float, float] = (0.9, 1.1, 1.7),
    origin: tuple[float, float, float] = (-12.0, 7.5, 30.0),
    marker: tuple[int, int, int] | None = None,
    seed: int = 0,
) -> tuple[Volume, np.ndarray]:
    """Low random background (1..50), one bright voxel; returns the volume and its LPS point."""
    rng = np.random.default_rng(seed)
    array = rng.integers(1, 51, size=shape).astype(np.int16)
    k, j, i = marker if marker is not None else tuple(s // 2 for s in shape)
    array[k, j, i] = MARKER
    volume = Volume(array, spacing=spacing, origin=origin, direction=direction)
    return volume, volume.index_to_lps((i, j, k))


def sitk_plane(volume: Volume, s: Slice2D, *, nearest: bool = False) -> np.ndarray:
    """SimpleITK resampling of the same output grid: origin, spacing, direction of ``s``."""
    rows, cols = s.shape
    col = s.col_vector / s.col_spacing
    row = s.row_vector / s.row_spacing
    reference = sitk.Image(cols, rows, 1, sitk.sitkFloat32)
    reference.SetOrigin(tuple(float(v) for v in s.origin))
    reference.SetSpacing((s.col_spacing, s.row_spacing, 1.0))
    reference.SetDirection(tuple(np.column_stack([col, row, np.cross(col, row)]).ravel()))
    interpolator = sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear
    out = sitk.Resample(
        volume.to_sitk(), reference, sitk.Transform(), interpolator, float(FILL), sitk.sitkFloat32
    )
    return sitk.GetArrayFromImage(out)[0]


def assert_matches_sitk(volume: Volume, s: Slice2D, *, nearest: bool = False) -> None:
    """Equal to SimpleITK within rounding, ignoring pixels on the volume's box boundary."""
    reference = sitk_plane(volume, s, nearest=nearest)
    rows, cols = np.indices(s.shape)
    ijk = volume.lps_to_index(s.pixel_to_lps(np.stack([rows, cols], axis=-1)))
    size = np.asarray(volume.size)
    edge = np.minimum(np.abs(ijk + 0.5), np.abs(ijk - (size - 0.5))).min(axis=-1) < 1e-6
    if nearest:  # ties between two voxels may go either way
        edge |= (np.abs(ijk - np.round(ijk) - 0.5) < 1e-6).any(axis=-1)
    ours = s.image.astype(np.float64)
    assert ((ours == FILL) == (reference == FILL))[~edge].all()
    inside = ~edge & (reference != FILL)
    np.testing.assert_array_less(np.abs(ours - reference)[inside], 0.5 + 1e-3)


def brightest(s: Slice2D) -> np.ndarray:
    return np.array(np.unravel_index(np.argmax(s.image), s.shape))


# -- display conventions -----------------------------------------------------------------------
def test_identity_views_are_plain_views_of_the_array() -> None:
    volume, point = marker_volume((6, 7, 8), IDENTITY, marker=(2, 3, 4))
    array = volume.array
    axial = reslice(volume, ViewPlane.AXIAL, point)
    # i increases toward patient Left = screen right, j toward Posterior = screen down: no flip.
    np.testing.assert_array_equal(axial.image, array[2])
    assert np.shares_memory(axial.image, array)
    np.testing.assert_array_equal(axial.col_vector, [0.9, 0, 0])  # +col = patient Left
    np.testing.assert_array_equal(axial.row_vector, [0, 1.1, 0])  # +row = Posterior
    coronal = reslice(volume, ViewPlane.CORONAL, point)
    np.testing.assert_array_equal(coronal.image, array[::-1, 3, :])  # Superior at the top
    sagittal = reslice(volume, ViewPlane.SAGITTAL, point)
    np.testing.assert_array_equal(sagittal.image, array[::-1, :, 4])  # Anterior on the left
    for s in (coronal, sagittal):
        assert np.shares_memory(s.image, array)


@pytest.mark.parametrize(
    ("direction", "plane"), [(SAGITTAL_ACQ, ViewPlane.SAGITTAL), (CORONAL_ACQ, ViewPlane.CORONAL)]
)
def test_native_plane_of_an_acquisition_is_its_slice(
    direction: np.ndarray, plane: ViewPlane
) -> None:
    volume, point = marker_volume((5, 6, 7), direction, marker=(1, 2, 3))
    s = reslice(volume, plane, point)
    np.testing.assert_array_equal(s.image, volume.array[1])
    assert np.shares_memory(s.image, volume.array)


# -- the bright-marker test --------------------------------------------------------------------
@pytest.mark.parametrize(
    "direction",
    [IDENTITY, FLIP_I, FLIP_JK, SAGITTAL_ACQ, CORONAL_ACQ],
    ids=["identity", "flip-i", "flip-jk", "sagittal-acq", "coronal-acq"],
)
@pytest.mark.parametrize("plane", PLANES, ids=[p.value for p in PLANES])
def test_marker_axis_aligned(direction: np.ndarray, plane: ViewPlane) -> None:
    volume, point = marker_volume((7, 9, 11), direction, marker=(2, 6, 3))
    s = reslice(volume, plane, point, fill=FILL)
    pixel = s.lps_to_pixel(point)
    np.testing.assert_allclose(pixel, np.round(pixel), atol=1e-9)
    assert tuple(brightest(s)) == tuple(np.round(pixel).astype(int))
    assert s.image[tuple(np.round(pixel).astype(int))] == MARKER
    np.testing.assert_allclose(s.pixel_to_lps(pixel), point, atol=1e-9)
    assert abs(s.distance(point)) < 1e-9
    assert_matches_sitk(volume, s)
    # The sampled path on the same grid gives the same pixels.
    general = reslice(volume, plane, point, spacing=(s.col_spacing, s.row_spacing), fill=FILL)
    np.testing.assert_allclose(general.origin, s.origin, atol=1e-9)
    np.testing.assert_array_equal(general.image, s.image)


unit = st.floats(-1.0, 1.0, allow_nan=False)
spacing_st = st.tuples(*[st.floats(0.8, 1.25)] * 3)


@st.composite
def oblique_direction(draw: st.DrawFn) -> np.ndarray:
    q = np.array([draw(unit) for _ in range(4)])
    r = quaternion_rotation(q, fallback=(1.0, 0.3, 0.2, 0.1))
    if draw(st.booleans()):
        r[:, draw(st.integers(0, 2))] *= -1  # a left-handed (flipped) voxel grid
    return r


@settings(max_examples=30, deadline=None, derandomize=True)
@given(
    direction=oblique_direction(),
    shape=st.tuples(*[st.integers(3, 9)] * 3),
    spacing=spacing_st,
    where=st.tuples(*[st.floats(0.0, 1.0)] * 3),
    seed=st.integers(0, 1000),
)
def test_marker_oblique_volume(
    direction: np.ndarray,
    shape: tuple[int, int, int],
    spacing: tuple[float, float, float],
    where: tuple[float, float, float],
    seed: int,
) -> None:
    k, j, i = (int(f * (n - 1)) for f, n in zip(where, shape, strict=True))
    volume, point = marker_volume(shape, direction, spacing, marker=(k, j, i), seed=seed)
    for plane in PLANES:
        s = reslice(volume, plane, point, fill=FILL)
        assert abs(s.distance(point)) < 1e-9  # the plane passes through the point
        assert np.abs(brightest(s) - s.lps_to_pixel(point)).max() <= 1.0
        assert s.image.max() > 200  # the marker shows (trilinear weight > 4 %)
        assert_matches_sitk(volume, s)
    nearest = reslice(volume, ViewPlane.AXIAL, point, order=0, fill=FILL)
    assert_matches_sitk(volume, nearest, nearest=True)


@settings(max_examples=15, deadline=None, derandomize=True)
@given(direction=oblique_direction(), seed=st.integers(0, 100))
def test_marker_oblique_plane(direction: np.ndarray, seed: int) -> None:
    volume, point = marker_volume((8, 7, 6), IDENTITY, (1.0, 1.0, 1.0), seed=seed)
    r = direction if np.linalg.det(direction) > 0 else -direction
    plane = ObliquePlane(r[:, 0], r[:, 1])
    s = reslice(volume, plane, point, fill=FILL)
    assert np.abs(brightest(s) - s.lps_to_pixel(point)).max() <= 1.0
    assert_matches_sitk(volume, s)


# -- geometry helpers --------------------------------------------------------------------------
def test_pixel_lps_round_trip() -> None:
    volume, point = marker_volume((5, 6, 7), oblique_direction_example())
    s = reslice(volume, ViewPlane.CORONAL, point)
    pixels = np.array([[0.0, 0.0], [3.5, 2.25], [s.shape[0] - 1, s.shape[1] - 1]])
    np.testing.assert_allclose(s.lps_to_pixel(s.pixel_to_lps(pixels)), pixels, atol=1e-9)


def oblique_direction_example() -> np.ndarray:
    return rotation([1.0, 2.0, 0.5], 25.0)


@pytest.mark.parametrize("direction", [IDENTITY, FLIP_JK, SAGITTAL_ACQ])
@pytest.mark.parametrize("plane", PLANES, ids=[p.value for p in PLANES])
def test_scrolling_counts_and_indices(direction: np.ndarray, plane: ViewPlane) -> None:
    volume, point = marker_volume((7, 9, 11), direction, marker=(2, 6, 3))
    count = slice_count(volume, plane)
    normal = np.cross(plane.col_dir, plane.row_dir)
    # The axis-aligned count is the number of voxels along the normal.
    axis = int(np.argmax(np.abs(volume.direction.T @ normal)))
    assert count == volume.size[axis]
    seen = set()
    for index in range(count):
        moved = point_at_slice(volume, plane, point, index)
        assert slice_index_of(volume, plane, moved) == index
        s = reslice(volume, plane, moved)
        assert s.index == index and abs(s.distance(moved)) < 1e-9
        seen.add(s.image.tobytes())
        # In-plane components of the crosshair are kept.
        np.testing.assert_allclose(
            (moved - point) - ((moved - point) @ normal) * normal, 0, atol=1e-9
        )
    assert len(seen) == count
    # The index grows along col × row: Superior (axial), Posterior (coronal), Right (sagittal).
    first = point_at_slice(volume, plane, point, 0)
    last = point_at_slice(volume, plane, point, count - 1)
    assert (last - first) @ normal > 0


def test_identity_axial_index_is_k_and_flipped_stack_reverses() -> None:
    volume, point = marker_volume((7, 4, 5), IDENTITY, marker=(2, 1, 1))
    assert reslice(volume, ViewPlane.AXIAL, point).index == 2
    flipped, point = marker_volume((7, 4, 5), FLIP_JK, marker=(2, 1, 1))
    assert reslice(flipped, ViewPlane.AXIAL, point).index == 7 - 1 - 2


def test_outside_the_volume_is_fill() -> None:
    volume, point = marker_volume((5, 6, 7), IDENTITY)
    far = point + np.array([0.0, 0.0, 100.0])
    s = reslice(volume, ViewPlane.AXIAL, far)
    assert s.image.shape == (6, 7) and (s.image == volume.array.min()).all()
    # Snapped to the slice grid extended beyond the volume (k spacing 1.7 mm).
    assert abs(s.distance(far)) <= 1.7 / 2 and s.index == slice_index_of(
        volume, ViewPlane.AXIAL, far
    )
    assert (reslice(volume, ViewPlane.AXIAL, far, fill=-7).image == -7).all()
    oblique = Volume(volume.array, direction=oblique_direction_example())
    corner = reslice(oblique, ViewPlane.AXIAL, oblique.index_to_lps((3, 3, 2)), fill=FILL)
    assert (corner.image == FILL).any() and (corner.image != FILL).any()


def test_invalid_arguments() -> None:
    volume, point = marker_volume((3, 3, 3), IDENTITY)
    with pytest.raises(ValueError, match="order"):
        reslice(volume, ViewPlane.AXIAL, point, order=3)
    with pytest.raises(ValueError, match="orthogonal"):
        ObliquePlane([1, 0, 0], [1, 1, 0])


# -- orientation labels ------------------------------------------------------------------------
def test_edge_labels_of_standard_views() -> None:
    volume, point = marker_volume((4, 5, 6), IDENTITY)
    labels = {p: edge_labels(*_vectors(reslice(volume, p, point))) for p in PLANES}
    assert tuple(labels[ViewPlane.AXIAL]) == ("A", "P", "R", "L")  # top, bottom, left, right
    assert tuple(labels[ViewPlane.CORONAL]) == ("S", "I", "R", "L")
    assert tuple(labels[ViewPlane.SAGITTAL]) == ("S", "I", "A", "P")


def _vectors(s: Slice2D) -> tuple[np.ndarray, np.ndarray]:
    return s.col_vector, s.row_vector


def test_edge_labels_of_a_30_degree_oblique() -> None:
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    # An axial plane turned 30° about the S axis: right = 0.87 L + 0.5 P.
    labels = edge_labels([c, s, 0.0], [-s, c, 0.0])
    assert tuple(labels) == ("AL", "PR", "RA", "LP")
    # Tilted 30° about L (a coronal-ish oblique): small components below 0.2 drop out.
    assert direction_label([0.0, s, -c]) == "IP"
    assert direction_label([0.99, 0.1, 0.0]) == "L"
    assert direction_label([0.99, 0.1, 0.0], threshold=0.05) == "LP"


def test_orientation_of_acquisitions() -> None:
    assert orientation_of(IDENTITY) == "axial"
    assert orientation_of(FLIP_JK) == "axial"
    assert orientation_of(SAGITTAL_ACQ) == "sagittal"
    assert orientation_of(CORONAL_ACQ) == "coronal"
    assert orientation_of(rotation([1, 0, 0], 5.0)) == "axial"
    assert orientation_of(rotation([1, 0, 0], 30.0)) == "oblique"

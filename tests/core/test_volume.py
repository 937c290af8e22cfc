"""Volume: validation, geometry conventions, and the SimpleITK crossing (the reference)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from geometry import quaternion_rotation
from hypothesis import given, settings
from hypothesis import strategies as st

from workstation.core import Volume

GEOMETRY = settings(max_examples=60, deadline=None)

# Quaternion components on a grid: no subnormal products, which ITK's SVD chokes on.
unit = st.integers(-1000, 1000).map(lambda n: n / 1000)
spacings = st.tuples(*[st.floats(0.05, 10.0) for _ in range(3)])
origins = st.tuples(*[st.floats(-500.0, 500.0) for _ in range(3)])
shapes = st.tuples(*[st.integers(1, 6) for _ in range(3)])


@st.composite
def directions(draw: st.DrawFn) -> np.ndarray:
    """A random rotation (from a unit quaternion), sometimes with one axis flipped (det -1)."""
    q = np.array([draw(unit) for _ in range(4)])
    rotation = quaternion_rotation(q, fallback=(1.0, 0.0, 0.0, 0.0))
    if draw(st.booleans()):
        rotation[:, draw(st.integers(0, 2))] *= -1
    return rotation


@st.composite
def volumes(draw: st.DrawFn) -> Volume:
    shape = draw(shapes)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    array = rng.integers(-1000, 3000, size=shape).astype(np.int16)
    return Volume(array, draw(spacings), draw(origins), draw(directions()))


def _index_points(volume: Volume, rng: np.random.Generator, count: int = 8) -> np.ndarray:
    """Random integer (i, j, k) indices inside the volume."""
    return rng.integers(0, volume.size, size=(count, 3))


# -- construction ---------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(4,), (4, 5), (2, 3, 4, 5)])
def test_only_3d_arrays(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="3D"):
        Volume(np.zeros(shape))


@pytest.mark.parametrize(
    "spacing",
    [(0.0, 1.0, 1.0), (1.0, -1.0, 1.0), (1.0, 1.0, float("nan")), (1.0, 1.0), (1, 1, 1, 1)],
)
def test_spacing_must_be_three_positive_numbers(spacing: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="spacing"):
        Volume(np.zeros((2, 2, 2)), spacing=spacing)


@pytest.mark.parametrize("origin", [(0.0, 0.0), (0.0, float("inf"), 0.0)])
def test_origin_must_be_three_finite_numbers(origin: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="origin"):
        Volume(np.zeros((2, 2, 2)), origin=origin)


def test_direction_must_be_3x3() -> None:
    with pytest.raises(ValueError):
        Volume(np.zeros((2, 2, 2)), direction=np.eye(2))


def test_fields_are_normalised() -> None:
    volume = Volume(np.zeros((2, 3, 4)), spacing=[1, 2, 3], origin=[4, 5, 6], warnings=["w"])
    assert volume.spacing == (1.0, 2.0, 3.0)
    assert all(type(v) is float for v in (*volume.spacing, *volume.origin))
    assert volume.origin == (4.0, 5.0, 6.0)
    assert volume.warnings == ("w",)
    assert volume.shape == (2, 3, 4)
    assert volume.size == (4, 3, 2)


def test_direction_is_a_read_only_copy() -> None:
    mine = np.eye(3)
    volume = Volume(np.zeros((2, 2, 2)), direction=mine)
    with pytest.raises(ValueError):
        volume.direction[0, 0] = 2.0
    mine[0, 0] = -1.0  # the caller's matrix does not alias the volume's
    assert volume.direction[0, 0] == 1.0
    assert volume.direction.dtype == np.float64


def test_direction_accepts_a_flat_sequence() -> None:
    volume = Volume(np.zeros((2, 2, 2)), direction=(0, 1, 0, 1, 0, 0, 0, 0, 1))
    np.testing.assert_array_equal(volume.direction[:, 0], [0, 1, 0])


def test_metadata_is_read_only() -> None:
    source = {"modality": "MR"}
    volume = Volume(np.zeros((2, 2, 2)), metadata=source)
    source["modality"] = "CT"
    assert volume.metadata["modality"] == "MR"
    with pytest.raises(TypeError):
        volume.metadata["modality"] = "CT"  # type: ignore[index]


def test_with_array_keeps_geometry_and_checks_shape() -> None:
    volume = Volume(np.zeros((2, 3, 4)), (1, 2, 3), (4, 5, 6), np.diag([1.0, -1.0, -1.0]))
    other = volume.with_array(np.ones((2, 3, 4), np.float32), warnings=("changed",))
    assert other.spacing == volume.spacing
    assert other.origin == volume.origin
    np.testing.assert_array_equal(other.direction, volume.direction)
    assert other.warnings == ("changed",)
    with pytest.raises(ValueError, match="shape"):
        volume.with_array(np.zeros((3, 3, 4)))


# -- geometry ---------------------------------------------------------------------------------
def test_axis_conventions_by_hand() -> None:
    """Column i steps along direction[:, 0] by spacing[0]; slice k along direction[:, 2]."""
    direction = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    volume = Volume(np.zeros((4, 3, 2)), (0.5, 2.0, 3.0), (10.0, 20.0, 30.0), direction)
    np.testing.assert_allclose(volume.index_to_lps([1, 0, 0]), [10.0, 20.5, 30.0])
    np.testing.assert_allclose(volume.index_to_lps([0, 1, 0]), [10.0, 20.0, 28.0])
    np.testing.assert_allclose(volume.index_to_lps([0, 0, 1]), [13.0, 20.0, 30.0])
    np.testing.assert_allclose(volume.ras_affine[:3, 3], [-10.0, -20.0, 30.0])


@GEOMETRY
@given(volumes(), st.integers(0, 2**32 - 1))
def test_affine_index_lps_round_trip(volume: Volume, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ijk = rng.uniform(-5, 10, size=(7, 3))
    lps = volume.index_to_lps(ijk)
    homogeneous = np.c_[ijk, np.ones(len(ijk))]
    np.testing.assert_allclose((homogeneous @ volume.affine.T)[:, :3], lps, atol=1e-9)
    np.testing.assert_allclose(volume.lps_to_index(lps), ijk, atol=1e-6)
    # one point (shape (3,)) behaves like a batch of one
    np.testing.assert_allclose(volume.index_to_lps(ijk[0]), lps[0])
    np.testing.assert_allclose(volume.lps_to_index(lps[0]), ijk[0], atol=1e-6)
    np.testing.assert_allclose(volume.affine[3], [0, 0, 0, 1])
    np.testing.assert_allclose(volume.affine[:3, 3], volume.origin)


@GEOMETRY
@given(volumes())
def test_ras_affine_flips_left_and_posterior(volume: Volume) -> None:
    ras, lps = volume.ras_affine, volume.affine
    np.testing.assert_allclose(ras[:2], -lps[:2])
    np.testing.assert_allclose(ras[2:], lps[2:])


# -- SimpleITK, the reference ------------------------------------------------------------------
@GEOMETRY
@given(volumes())
def test_sitk_round_trip_is_exact(volume: Volume) -> None:
    back = Volume.from_sitk(volume.to_sitk(), warnings=("w",), metadata={"m": 1})
    np.testing.assert_array_equal(back.array, volume.array)
    assert back.array.dtype == volume.array.dtype
    assert back.spacing == volume.spacing
    assert back.origin == volume.origin
    np.testing.assert_array_equal(back.direction, volume.direction)
    assert back.warnings == ("w",)
    assert back.metadata == {"m": 1}


@GEOMETRY
@given(volumes(), st.integers(0, 2**32 - 1))
def test_geometry_agrees_with_sitk(volume: Volume, seed: int) -> None:
    """Our index_to_lps / affine / [k, j, i] indexing match ITK's own transforms."""
    image = volume.to_sitk()
    assert image.GetSize() == volume.size
    rng = np.random.default_rng(seed)
    for i, j, k in _index_points(volume, rng):
        index = (int(i), int(j), int(k))
        expected = image.TransformIndexToPhysicalPoint(index)
        np.testing.assert_allclose(volume.index_to_lps(index), expected, atol=1e-9)
        np.testing.assert_allclose((volume.affine @ [*index, 1])[:3], expected, atol=1e-9)
        assert image.GetPixel(*index) == volume.array[k, j, i]
    for point in rng.uniform(-5, 10, size=(4, 3)):
        expected = image.TransformContinuousIndexToPhysicalPoint(point.tolist())
        np.testing.assert_allclose(volume.index_to_lps(point), expected, atol=1e-9)
        np.testing.assert_allclose(
            volume.lps_to_index(expected),
            image.TransformPhysicalPointToContinuousIndex(expected),
            atol=1e-6,
        )


def test_from_an_image_sitk_built() -> None:
    image = sitk.Image([5, 4, 3], sitk.sitkFloat32)  # size is (i, j, k)
    image.SetSpacing((0.7, 0.8, 2.5))
    image.SetOrigin((-1.0, 2.0, -3.0))
    image.SetDirection((0, 0, 1, 1, 0, 0, 0, 1, 0))
    image.SetPixel(4, 1, 2, 7.5)
    volume = Volume.from_sitk(image)
    assert volume.shape == (3, 4, 5)
    assert volume.array[2, 1, 4] == 7.5
    np.testing.assert_allclose(
        volume.index_to_lps([4, 1, 2]), image.TransformIndexToPhysicalPoint((4, 1, 2))
    )


def test_from_sitk_2d_becomes_one_slice() -> None:
    image = sitk.Image([5, 4], sitk.sitkUInt8)
    image.SetSpacing((0.5, 0.25))
    volume = Volume.from_sitk(image)
    assert volume.shape == (1, 4, 5)
    assert volume.spacing[:2] == (0.5, 0.25)


def test_from_sitk_refuses_vector_images() -> None:
    image = sitk.Image([4, 4, 4], sitk.sitkVectorFloat32, 3)
    with pytest.raises(ValueError, match="scalar"):
        Volume.from_sitk(image)


def test_to_sitk_copies_a_non_contiguous_array() -> None:
    base = np.arange(4 * 6 * 8, dtype=np.float32).reshape(4, 6, 8)
    view = base[:, ::2, ::-1]
    image = Volume(view).to_sitk()
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), view)

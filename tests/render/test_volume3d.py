"""3D rendering: the Volume -> ImageData conversion, presets, brain surface, offscreen frames."""

from __future__ import annotations

import numpy as np
import pytest

pv = pytest.importorskip("pyvista")

from scipy.spatial.transform import Rotation  # noqa: E402

from workstation.core.volume import Volume  # noqa: E402
from workstation.render.volume3d import (  # noqa: E402
    PRESET_NAMES,
    VIEWS,
    brain_surface,
    fit_scale,
    render_offscreen,
    to_image_data,
    transfer_function,
)

OBLIQUE = Rotation.from_euler("xyz", [20, -10, 35], degrees=True).as_matrix()
FLIPPED = np.diag([1.0, -1.0, -1.0]) @ Rotation.from_euler("z", 15, degrees=True).as_matrix()


@pytest.fixture(scope="module")
def demo_brain() -> Volume:
    from workstation.config import demo_study_path
    from workstation.dicom import load_series

    return load_series(demo_study_path())


def _foreground(frame: np.ndarray) -> np.ndarray:
    return frame.astype(int).sum(axis=-1) > 15


# -- conversion --------------------------------------------------------------------------------
@pytest.mark.parametrize("direction", [np.eye(3), OBLIQUE, FLIPPED], ids=["eye", "oblique", "flip"])
def test_image_data_geometry_and_values(direction: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    array = rng.integers(-1000, 3000, size=(7, 9, 11)).astype(np.int16)
    volume = Volume(
        array, spacing=(0.7, 0.9, 2.5), origin=(-12.0, 30.5, 101.0), direction=direction
    )
    image = to_image_data(volume)

    assert image.dimensions == (11, 9, 7)
    np.testing.assert_allclose(image.spacing, volume.spacing)
    np.testing.assert_allclose(image.origin, volume.origin)
    np.testing.assert_allclose(np.asarray(image.direction_matrix), direction)
    assert np.shares_memory(image.point_data["values"], array)  # no copy

    ijk = np.stack([rng.integers(0, n, 20) for n in (11, 9, 7)], axis=1)
    ids = ijk[:, 0] + 11 * (ijk[:, 1] + 9 * ijk[:, 2])
    expected = volume.index_to_lps(ijk)
    np.testing.assert_allclose(np.asarray(image.points)[ids], expected, atol=1e-9)
    homogeneous = np.c_[ijk, np.ones(len(ijk))] @ np.asarray(image.index_to_physical_matrix).T
    np.testing.assert_allclose(homogeneous[:, :3], expected, atol=1e-9)
    np.testing.assert_array_equal(
        image.point_data["values"][ids], array[ijk[:, 2], ijk[:, 1], ijk[:, 0]]
    )
    # and back: VTK finds the same point id for the LPS position
    for point_id, lps in zip(ids[:5], expected[:5], strict=True):
        assert image.find_closest_point(lps) == point_id


# -- transfer functions ------------------------------------------------------------------------
def test_presets_are_valid_and_mr_scales_to_the_volume(demo_brain: Volume) -> None:
    for name in PRESET_NAMES:
        tf = transfer_function(name, demo_brain)
        assert np.all(np.diff(tf.points) > 0)
        opacity = tf.opacity()
        assert len(opacity) < 256 and opacity.min() >= 0.0 and opacity.max() <= 1.0
        assert opacity[0] == 0.0 and opacity.max() > (0.05 if "glass" in name else 0.3)
    mr = transfer_function("MR brain", demo_brain)
    glass = transfer_function("MR glass", demo_brain)
    assert glass.points == mr.points and glass.opacity().max() <= 0.1 * mr.opacity().max() + 1e-9
    foreground = demo_brain.array[demo_brain.array > 0]
    assert foreground.min() <= mr.clim[0] < mr.clim[1] <= foreground.max()
    doubled = transfer_function("MR brain", demo_brain.with_array(demo_brain.array * 2))
    np.testing.assert_allclose(doubled.points, np.asarray(mr.points) * 2, rtol=1e-3)
    with pytest.raises(ValueError, match="unknown"):
        transfer_function("PET hot")
    with pytest.raises(ValueError, match="pass the volume"):
        transfer_function("MR brain")


# -- brain surface -----------------------------------------------------------------------------
def test_brain_surface_lies_in_patient_space(demo_brain: Volume) -> None:
    surface = brain_surface(demo_brain)
    assert surface.n_cells > 10_000 and "Normals" in surface.point_data
    inside = np.argwhere(demo_brain.array > 0)[:, ::-1]  # (i, j, k)
    corners = (
        np.array(np.meshgrid(*zip(inside.min(0), inside.max(0), strict=True))).reshape(3, -1).T
    )
    lps = demo_brain.index_to_lps(corners)
    np.testing.assert_allclose(surface.bounds[0::2], lps.min(0), atol=2.0)
    np.testing.assert_allclose(surface.bounds[1::2], lps.max(0), atol=2.0)

    # Surface points map back onto the mask boundary: the nearest voxel (within 1 voxel) of a
    # point has both inside and outside voxels in its 3x3x3 neighbourhood.
    mask = np.pad(demo_brain.array > 0, 1)
    rng = np.random.default_rng(0)
    for point in np.asarray(surface.points)[rng.integers(0, surface.n_points, 25)]:
        i, j, k = np.rint(demo_brain.lps_to_index(point)).astype(int) + 1
        block = mask[k - 1 : k + 2, j - 1 : j + 2, i - 1 : i + 2]
        assert block.any() and not block.all(), point


def test_brain_surface_options() -> None:
    array = np.zeros((20, 20, 20), np.uint8)
    array[5:15, 5:15, 5:15] = 1
    volume = Volume(array, direction=FLIPPED)
    full = brain_surface(volume, smooth_iterations=0)
    reduced = brain_surface(volume, array, smooth_iterations=10, decimate=0.5)
    assert reduced.n_cells < full.n_cells
    assert full.volume == pytest.approx(1000, rel=0.1)  # closed, outward-oriented
    with pytest.raises(ValueError, match="empty"):
        brain_surface(volume, np.zeros_like(array))
    with pytest.raises(ValueError, match="shape"):
        brain_surface(volume, np.ones((2, 2, 2)))


# -- offscreen frames --------------------------------------------------------------------------
def test_offscreen_renders_are_not_blank_and_presets_differ(demo_brain: Volume) -> None:
    size = (200, 200)
    surface = render_offscreen(demo_brain, mode="surface", size=size)
    mr = render_offscreen(demo_brain, mode="volume", preset="MR brain", size=size)
    bone = render_offscreen(demo_brain, mode="volume", preset="CT bone", size=size)
    for frame in (surface, mr):
        assert frame.shape == (200, 200, 3) and frame.dtype == np.uint8
        assert 0.05 < _foreground(frame).mean() < 0.8
    assert np.abs(mr.astype(int) - bone.astype(int)).mean() > 5
    assert np.abs(mr.astype(int) - surface.astype(int)).mean() > 5
    with pytest.raises(ValueError, match="mode"):
        render_offscreen(demo_brain, mode="mip")


def test_labels_render_in_label_colours() -> None:
    labels = np.zeros((30, 30, 30), np.uint8)
    labels[5:15, 5:25, 5:25] = 1
    labels[15:25, 5:25, 5:25] = 2
    frame = render_offscreen(Volume(labels), mode="surface", labels=labels, size=(120, 120))
    assert 0.05 < _foreground(frame).mean() < 0.8
    assert len(np.unique(frame.reshape(-1, 3), axis=0)) > 20


def _sphere_volume(direction: np.ndarray, centre: np.ndarray, radius: float) -> Volume:
    shape = (48, 48, 48)
    blank = Volume(np.zeros(shape, np.uint8), spacing=(2.0, 2.0, 2.0), direction=direction)
    middle = blank.index_to_lps((np.array(shape[::-1]) - 1) / 2)
    blank = Volume(blank.array, spacing=blank.spacing, origin=-middle, direction=direction)
    k, j, i = np.indices(shape)
    lps = blank.index_to_lps(np.stack([i, j, k], axis=-1))
    inside = np.linalg.norm(lps - centre, axis=-1) <= radius
    return blank.with_array(np.where(inside, 1500, 0).astype(np.int16))  # bone-bright


@pytest.mark.parametrize("direction", [np.eye(3), FLIPPED], ids=["eye", "flip"])
@pytest.mark.parametrize("mode", ["surface", "volume"])
@pytest.mark.parametrize(
    ("view", "expected"),
    [
        # anterior: patient's left (+x) on the right of the image, superior (+z) up
        ("anterior", lambda c: (c[0], c[2])),
        # left lateral: posterior (+y) on the right, so the anterior sphere is left; superior up
        ("left", lambda c: (c[1], c[2])),
    ],
)
def test_sphere_silhouette_is_where_the_camera_says(direction, mode, view, expected) -> None:
    centre, radius = np.array([18.0, -14.0, 12.0]), 12.0  # left, anterior, superior of centre
    volume = _sphere_volume(direction, centre, radius)
    size = 160
    frame = render_offscreen(volume, mode=mode, preset="CT bone", size=(size, size), view=view)
    rows, cols = np.nonzero(_foreground(frame))
    assert rows.size > 0
    image = to_image_data(volume)
    mm_per_pixel = 2 * fit_scale(image.bounds) / size
    right, up = expected(centre - np.asarray(image.center))
    assert cols.mean() == pytest.approx(size / 2 + right / mm_per_pixel, abs=0.05 * size)
    assert rows.mean() == pytest.approx(size / 2 - up / mm_per_pixel, abs=0.05 * size)
    diameter_px = 2 * radius / mm_per_pixel
    assert (cols.max() - cols.min()) == pytest.approx(diameter_px, rel=0.2)
    with pytest.raises(ValueError, match="view"):
        render_offscreen(volume, mode=mode, view="oblique")


def test_views_are_orthonormal_pairs() -> None:
    for to_camera, up in VIEWS.values():
        assert np.dot(to_camera, up) == 0 and np.linalg.norm(to_camera) == 1 == np.linalg.norm(up)

"""The 3D scene without Qt: crosshair crop, quality levels, volume and surface props, surfaces."""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

pv = pytest.importorskip("pyvista")

from scipy.spatial.transform import Rotation  # noqa: E402

from workstation.core.errors import Cancelled  # noqa: E402
from workstation.core.tasks import CancelToken  # noqa: E402
from workstation.core.volume import Volume  # noqa: E402
from workstation.render.colormaps import label_color  # noqa: E402
from workstation.render.labelmesh3d import (  # noqa: E402
    MAX_BIN,
    fit_budget,
    label_mesh,
    simplify,
)
from workstation.render.layers import LabelsLayer  # noqa: E402
from workstation.render.scene3d import (  # noqa: E402
    CROPPING_FLAGS,
    DEFAULT_VIEW,
    LABEL_TRIANGLE_BUDGET,
    QUALITY,
    SurfaceProp,
    VolumeProp,
    crosshair_crop,
    default_camera,
    default_preset,
    facing_octant,
    heatmap_surface,
    label_surfaces,
)

OBLIQUE = Rotation.from_euler("xyz", [10, -20, 30], degrees=True).as_matrix()
FLIPPED = np.diag([1.0, -1.0, -1.0]) @ Rotation.from_euler("z", 15, degrees=True).as_matrix()
SAGITTAL = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # i -> P, j -> I, k -> R
DIRECTIONS = pytest.mark.parametrize(
    "direction", [np.eye(3), OBLIQUE, FLIPPED, SAGITTAL], ids=["eye", "oblique", "flip", "sagittal"]
)
SHAPE = (40, 44, 48)  # k, j, i
CURSOR = (22, 20, 19)  # i, j, k: off-centre
OFFSET = 8  # voxels from the cursor to each block's centre, along each axis
SIZE = 448


def _blocks_volume(direction: np.ndarray, **metadata: Any) -> tuple[Volume, dict]:
    """Zeros with a bright 5-voxel cube in each octant around :data:`CURSOR`."""
    array = np.zeros(SHAPE, np.uint16)
    array[0, 0, 0] = 1
    centres = {}
    for signs in itertools.product((-1, 1), repeat=3):
        i, j, k = (c + s * OFFSET for c, s in zip(CURSOR, signs, strict=True))
        array[k - 2 : k + 3, j - 2 : j + 3, i - 2 : i + 3] = 1000
        centres[signs] = (i, j, k)
    volume = Volume(
        array,
        spacing=(0.9, 1.1, 1.6),
        origin=(-20.0, 15.0, -30.0),
        direction=direction,
        metadata={"modality": "CT", **metadata},
    )
    return volume, centres


@pytest.fixture
def plotter() -> Iterator[Any]:
    plotter = pv.Plotter(off_screen=True, window_size=(SIZE, SIZE))
    plotter.set_background("black")
    yield plotter
    plotter.close()
    plotter.deep_clean()


def _look(plotter: Any, bounds: Any) -> None:
    pose = default_camera(bounds)
    camera = plotter.camera
    camera.position, camera.focal_point, camera.up = pose.position, pose.focal_point, pose.up
    plotter.renderer.ResetCameraClippingRange()


def _frame(plotter: Any) -> np.ndarray:
    plotter.render()
    return np.asarray(plotter.screenshot(return_img=True))[..., :3].astype(int).sum(axis=-1)


def _pixel(plotter: Any, lps: Any) -> tuple[int, int]:
    """Row and column of the screenshot pixel where the LPS point projects."""
    renderer = plotter.renderer
    renderer.SetWorldPoint(*lps, 1.0)
    renderer.WorldToDisplay()
    x, y, _ = renderer.GetDisplayPoint()
    return SIZE - 1 - round(y), round(x)


def _brightness(frame: np.ndarray, pixel: tuple[int, int]) -> int:
    row, col = pixel
    return int(frame[row - 1 : row + 2, col - 1 : col + 2].max())


# -- crosshair crop ----------------------------------------------------------------------------
def test_the_default_cut_faces_the_default_camera() -> None:
    volume, _ = _blocks_volume(np.eye(3))
    # The default view looks from the patient's left (+x), anterior (-y) and superior (+z).
    assert facing_octant(volume) == (1, -1, 1)
    assert facing_octant(volume.with_array(volume.array), (-1, 1, -1)) == (-1, 1, -1)
    flipped = Volume(volume.array, direction=np.diag([-1.0, 1.0, -1.0]))
    assert facing_octant(flipped) == (-1, -1, -1)

    crop = crosshair_crop(volume, volume.index_to_lps(CURSOR))
    assert crop.cut == (1, -1, 1)
    np.testing.assert_allclose(crop.index, CURSOR)
    np.testing.assert_allclose(crop.centre_lps, volume.index_to_lps(CURSOR))
    inside = volume.index_to_lps(np.add(CURSOR, (3, -3, 3)))
    outside = volume.index_to_lps(np.add(CURSOR, (3, 3, 3)))
    assert crop.contains([inside, outside]).tolist() == [True, False]
    # The ray caster's planes, in the volume's local frame (spacing * index).
    at = np.asarray(volume.spacing) * np.asarray(CURSOR)
    planes = np.asarray(crop.region_planes).reshape(3, 2)
    assert planes[0, 0] == pytest.approx(at[0]) and planes[0, 1] > at[0]
    assert planes[1, 1] == pytest.approx(at[1]) and planes[1, 0] < at[1]
    assert planes[2, 0] == pytest.approx(at[2]) and planes[2, 1] > at[2]


def test_a_cursor_outside_is_clamped_into_the_volume() -> None:
    volume, _ = _blocks_volume(OBLIQUE)
    crop = crosshair_crop(volume, volume.index_to_lps((-10, 20, 400)), cut=(-1, 1, 1))
    np.testing.assert_allclose(crop.index, (0, 20, SHAPE[0] - 1))
    assert crop.cut == (-1, 1, 1)


@DIRECTIONS
def test_the_crop_hides_the_cut_octant_only(plotter: Any, direction: np.ndarray) -> None:
    volume, centres = _blocks_volume(direction)
    prop = VolumeProp(volume)
    assert prop.preset == "CT bone"
    plotter.renderer.AddVolume(prop.actor)
    _look(plotter, prop.bounds)
    pixels = {signs: _pixel(plotter, volume.index_to_lps(ijk)) for signs, ijk in centres.items()}
    whole = _frame(plotter)
    assert all(_brightness(whole, pixel) > 60 for pixel in pixels.values())

    actor = prop.actor
    crop = crosshair_crop(volume, volume.index_to_lps(CURSOR))
    prop.set_crop(crop)
    assert prop.mapper.GetCropping() and prop.mapper.GetCroppingRegionFlags() == CROPPING_FLAGS
    cropped = _frame(plotter)
    for signs, pixel in pixels.items():
        in_cut = signs == crop.cut
        assert crop.contains(volume.index_to_lps(centres[signs])) == in_cut
        if in_cut:
            assert _brightness(cropped, pixel) < 20, signs
        else:
            assert _brightness(cropped, pixel) > 60, signs

    # Moving the cursor past the cut block brings it back; no new actor.
    prop.set_crop(
        crosshair_crop(volume, volume.index_to_lps(np.add(CURSOR, 12 * np.array(crop.cut))))
    )
    assert prop.actor is actor
    assert _brightness(_frame(plotter), pixels[crop.cut]) > 60
    prop.set_crop(None)
    assert not prop.mapper.GetCropping()


# -- quality and presets -----------------------------------------------------------------------
def test_quality_levels_set_the_ray_caster_sampling() -> None:
    still, interactive = QUALITY["still"], QUALITY["interactive"]
    assert interactive.sample_distance > still.sample_distance
    assert interactive.image_sample_distance > still.image_sample_distance
    volume, _ = _blocks_volume(np.eye(3))
    prop = VolumeProp(volume)
    assert prop.quality == "still"
    assert prop.mapper.GetSampleDistance() == pytest.approx(still.sample_distance * 0.9)
    assert prop.mapper.GetImageSampleDistance() == pytest.approx(1.0)
    assert not prop.mapper.GetAutoAdjustSampleDistances()
    prop.set_quality("interactive")
    assert prop.mapper.GetSampleDistance() == pytest.approx(interactive.sample_distance * 0.9)
    assert prop.mapper.GetImageSampleDistance() == pytest.approx(interactive.image_sample_distance)
    with pytest.raises(KeyError):
        prop.set_quality("draft")


def test_presets_opacity_and_refresh_keep_the_actor() -> None:
    ramp = (np.arange(np.prod(SHAPE)) % 2000 + 1).astype(np.uint16).reshape(SHAPE)  # 1..2000
    volume = Volume(ramp, metadata={"modality": "MR"})
    assert default_preset(volume) == "MR brain"
    assert default_preset(_blocks_volume(np.eye(3))[0]) == "CT bone"
    prop = VolumeProp(volume, opacity=0.5)
    actor = prop.actor
    assert prop.preset == "MR brain"
    assert prop.property.GetScalarOpacity().GetValue(2500.0) == pytest.approx(0.6 * 0.5)
    prop.set_preset("CT skin")
    assert prop.property.GetScalarOpacity().GetValue(2500.0) == pytest.approx(0.5 * 0.5)
    prop.set_opacity(1.0)
    assert prop.property.GetScalarOpacity().GetValue(2500.0) == pytest.approx(0.5)

    # A progressive load fills the array in place: refresh re-reads it (shared, not copied)
    # and rescales the MR preset to the new intensities.
    prop.set_preset("MR brain")
    before = prop.property.GetScalarOpacity().GetValue(1500.0)
    volume.array[...] *= 3
    prop.refresh()
    assert np.shares_memory(prop.image.point_data["values"], volume.array)
    assert 0.0 < prop.property.GetScalarOpacity().GetValue(1500.0) < before / 2
    assert prop.actor is actor


def test_voxel_types_the_gpu_lacks_are_converted() -> None:
    volume = Volume(np.arange(4 * 5 * 6, dtype=np.int64).reshape(4, 5, 6))
    prop = VolumeProp(volume, "CT bone")
    assert prop.image.point_data["values"].dtype == np.float32
    volume.array[...] += 7
    prop.refresh()
    assert prop.image.point_data["values"][0] == 7


# -- surfaces ----------------------------------------------------------------------------------
def _labels() -> LabelsLayer:
    array = np.zeros((20, 24, 28), np.int16)
    array[3:9, 4:14, 5:12] = 1  # k, j, i
    array[10:18, 12:22, 14:26] = 4
    array[0, 0, 0] = -1  # negative labels are not drawn
    volume = Volume(array, spacing=(0.8, 0.9, 1.5), origin=(5.0, -3.0, 40.0), direction=OBLIQUE)
    return LabelsLayer(volume, colors={1: (10, 200, 30, 255)})


def _lps_extent(volume: Volume, value: int) -> tuple[np.ndarray, np.ndarray]:
    """LPS bounds of the label's voxels grown by half a voxel (where its surface may lie)."""
    ijk = np.argwhere(volume.array == value)[:, ::-1]
    corners = np.array(
        list(itertools.product(*zip(ijk.min(0) - 0.5, ijk.max(0) + 0.5, strict=True)))
    )
    lps = volume.index_to_lps(corners)
    return lps.min(0), lps.max(0)


def test_label_surfaces_one_per_label_inside_its_extent_coloured_by_the_layer() -> None:
    layer = _labels()
    reports: list[tuple[int, int, str]] = []
    surfaces = label_surfaces(layer.volume, layer.color, progress=lambda *a: reports.append(a))
    assert [s.label for s in surfaces] == [1, 4]
    assert [s.rgba for s in surfaces] == [(10, 200, 30, 255), label_color(4)]
    assert reports[-1][:2] == (2, 2)
    for surface in surfaces:
        low, high = _lps_extent(layer.volume, surface.label)
        bounds = np.asarray(surface.mesh.bounds)
        assert np.all(bounds[0::2] >= low - 1e-6) and np.all(bounds[1::2] <= high + 1e-6)
        # and it spans most of the extent (smoothing rounds the corners only)
        assert np.all(bounds[1::2] - bounds[0::2] > 0.7 * (high - low))
        assert surface.mesh.n_cells > 100 and "Normals" in surface.mesh.point_data
    # A mapping works as well; labels it lacks get the palette colour.
    by_mapping = label_surfaces(layer.volume, {4: (1, 2, 3, 255)}, smooth_iterations=0)
    assert [s.rgba for s in by_mapping] == [label_color(1), (1, 2, 3, 255)]


def _signed_volume(mesh: Any) -> float:
    """The volume a closed mesh encloses: positive when its faces point outward."""
    a, b, c = (np.asarray(mesh.points)[mesh.regular_faces[:, n]] for n in range(3))
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6)


def _boundary_voxels(labels: np.ndarray, value: int) -> np.ndarray:
    """``(i, j, k)`` of the label's voxels with a 6-neighbour outside it."""
    from scipy import ndimage

    mask = labels == value
    return np.argwhere(mask & ~ndimage.binary_erosion(mask, border_value=0))[:, ::-1].astype(float)


def test_touching_labels_share_their_boundary_and_face_outward() -> None:
    array = np.zeros((16, 18, 20), np.uint8)
    array[3:13, 4:14, 3:10] = 1
    array[3:13, 4:14, 10:17] = 2  # touches label 1 across the plane i = 9.5
    volume = Volume(array, spacing=(0.8, 0.9, 1.5), origin=(5.0, -3.0, 40.0), direction=OBLIQUE)
    first, second = label_surfaces(volume)
    voxel_mm3 = float(np.prod(volume.spacing))
    for surface in (first, second):
        enclosed = _signed_volume(surface.mesh) / voxel_mm3
        assert enclosed == pytest.approx((array == surface.label).sum(), rel=0.2)
    # The common boundary is one sheet: the same points in both surfaces, on the plane.
    ours, theirs = (np.asarray(s.mesh.points) for s in (first, second))
    shared = ours[(ours[:, None, :] == theirs[None, :, :]).all(-1).any(1)]
    assert len(shared) > 30
    np.testing.assert_allclose(volume.lps_to_index(shared)[:, 0], 9.5, atol=0.75)


def test_simplifying_keeps_thin_layers_and_shared_boundaries() -> None:
    k, j, i = np.mgrid[0:40, 0:40, 0:40]
    radius = np.sqrt((i - 19.5) ** 2 + (j - 19.5) ** 2 + (k - 19.5) ** 2)
    array = np.where(radius < 14, 1, 0).astype(np.uint8)
    array[(radius >= 14) & (radius < 15)] = 2  # a one-voxel shell around label 1
    mesh = label_mesh(array, [1, 2])
    counts = mesh.counts()
    simpler = simplify(mesh, 2.5)
    assert simpler.bin_size == 2.5
    assert all(simpler.counts()[v] < counts[v] / 3 for v in (1, 2))
    # Points move less than a bin's diagonal.
    from scipy.spatial import cKDTree

    distance, _ = cKDTree(mesh.points).query(simpler.points)
    assert distance.max() < np.sqrt(3) * 2.5
    # The shell keeps an inside and an outside: its two sheets are not merged into one.
    shells = [pv.PolyData.from_regular_faces(*m.surface(2)) for m in (mesh, simpler)]
    assert _signed_volume(shells[1]) == pytest.approx(_signed_volume(shells[0]), rel=0.2)
    assert _signed_volume(shells[0]) > 0.2 * (array == 2).sum()
    radii = np.linalg.norm(shells[1].points - 19.5, axis=1)
    assert radii.min() < 14.2 and radii.max() > 14.6

    fitted = fit_budget(mesh, 2_000)
    assert max(fitted.counts().values()) <= 2_000 and 1.0 < fitted.bin_size <= MAX_BIN
    assert fit_budget(mesh, 10**9) is mesh
    assert fit_budget(mesh, 1).bin_size == MAX_BIN  # the budget gives way to the error bound


def test_demo_tissue_surfaces_stay_under_the_budget_and_follow_the_labels() -> None:
    pytest.importorskip("SimpleITK")
    from workstation.config import demo_study_path
    from workstation.dicom import load_series
    from workstation.render.tissue import TISSUE_COLORS, demo_tissue_labels

    layer = demo_tissue_labels(load_series(demo_study_path()))
    labels = layer.volume
    surfaces = label_surfaces(labels, layer.color)
    assert [s.label for s in surfaces] == [1, 2, 3]
    assert [s.rgba for s in surfaces] == [TISSUE_COLORS[v] for v in (1, 2, 3)]
    from scipy.spatial import cKDTree

    for surface in surfaces:
        mesh = surface.mesh
        assert 10_000 < mesh.n_cells <= LABEL_TRIANGLE_BUDGET
        boundary = _boundary_voxels(labels.array, surface.label)
        # surface -> boundary voxel centres, and boundary voxel centres -> surface (voxels)
        to_boundary, _ = cKDTree(boundary).query(labels.lps_to_index(np.asarray(mesh.points)))
        assert to_boundary.mean() < 1.0
        sample = boundary[::10]
        _, closest = mesh.find_closest_cell(labels.index_to_lps(sample), return_closest_point=True)
        to_surface = np.linalg.norm(labels.lps_to_index(closest) - sample, axis=1)
        assert to_surface.mean() < 1.0 and np.percentile(to_surface, 99) < 3.0
        # Within the label's extent, give or take the voxel by which smoothing may move a
        # boundary shared with another label.
        low, high = _lps_extent(labels, surface.label)
        bounds = np.asarray(mesh.bounds)
        assert np.all(bounds[0::2] >= low - 1.0) and np.all(bounds[1::2] <= high + 1.0)


def test_label_surfaces_stop_when_cancelled() -> None:
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        label_surfaces(_labels().volume, cancel=token)
    empty = Volume(np.zeros((4, 4, 4), np.uint8))
    assert label_surfaces(empty) == []
    with pytest.raises(TypeError, match="integer"):
        label_surfaces(Volume(np.zeros((4, 4, 4), np.float32)))


def test_surface_prop_is_clipped_in_place() -> None:
    layer = _labels()
    (surface, _) = label_surfaces(layer.volume, layer.color)
    prop = SurfaceProp(surface.mesh, surface.rgba, opacity=0.5, label=surface.label)
    actor = prop.actor
    assert actor.GetProperty().GetColor() == pytest.approx((10 / 255, 200 / 255, 30 / 255))
    assert actor.GetProperty().GetOpacity() == pytest.approx(0.5)
    centre = np.mean(np.reshape(surface.mesh.bounds, (3, 2)), axis=1)
    crop = crosshair_crop(layer.volume, centre)
    prop.set_crop(crop)
    prop.mapper.Update()
    clipped = pv.wrap(prop.mapper.GetInput())
    assert 0 < clipped.n_cells < surface.mesh.n_cells

    # How deep points lie inside the cut octant (negative: outside); the clip interpolates the
    # planes' max along edges, so cut points may sit inside by a fraction of an edge.
    def depth(points: Any) -> np.ndarray:
        return (-(np.asarray(points) - crop.centre_lps) @ crop.normals.T).min(axis=1)

    assert depth(surface.mesh.points).max() > 2.0
    assert depth(clipped.points).max() < 0.5
    prop.set_crop(None)
    assert prop.mapper.GetInput() is surface.mesh
    prop.set_visible(False)
    assert not prop.visible and prop.actor is actor


def test_heatmap_iso_surface() -> None:
    k, j, i = np.mgrid[0:24, 0:24, 0:24]
    blob = np.exp(-((i - 12.0) ** 2 + (j - 12.0) ** 2 + (k - 12.0) ** 2) / (2 * 4.0**2))
    blob[0, 0, 0] = np.nan
    volume = Volume(blob.astype(np.float32), spacing=(1.0, 1.0, 2.0), origin=(0.0, 0.0, 0.0))
    surface = heatmap_surface(volume, 0.5, cmap="inferno", value_range=(0.0, 1.0))
    assert surface is not None and surface.mesh.n_cells > 100
    radius = 4.0 * np.sqrt(2 * np.log(2))  # where the Gaussian is 0.5, in voxels
    extent = np.diff(np.reshape(surface.mesh.bounds, (3, 2)), axis=1).ravel()
    np.testing.assert_allclose(extent, 2 * radius * np.array([1.0, 1.0, 2.0]), rtol=0.15)
    assert surface.rgba[:3] != (0, 0, 0)
    assert heatmap_surface(volume, 2.0) is None


def test_importing_the_scene_module_loads_no_vtk() -> None:
    code = (
        "import sys, workstation.render.scene3d; "
        "print(sorted(m for m in ('vtk', 'pyvista', 'vtkmodules') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_the_scene_module_re_exports_every_part() -> None:
    import workstation.render.scene3d as scene3d
    from workstation.render import camera3d, crop3d, raycast3d, surfaces3d

    for part in (camera3d, crop3d, raycast3d, surfaces3d):
        for name in part.__all__:
            assert name in scene3d.__all__ and getattr(scene3d, name) is getattr(part, name)
    assert all(hasattr(scene3d, name) for name in scene3d.__all__)


def test_a_crop_without_a_cursor_goes_through_the_centre() -> None:
    volume, _ = _blocks_volume(OBLIQUE)
    crop = crosshair_crop(volume, None)
    np.testing.assert_allclose(crop.index, (np.asarray(volume.size) - 1) / 2)


def test_default_camera_frames_the_bounds() -> None:
    pose = default_camera((-10, 10, 0, 40, 5, 25))
    np.testing.assert_allclose(pose.focal_point, (0, 20, 15))
    np.testing.assert_allclose(pose.to_camera, DEFAULT_VIEW[0])
    assert pose.up == (0.0, 0.0, 1.0)

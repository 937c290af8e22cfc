"""The demo tissue labels: on the demo series' grid, plausible, drawn in 2D through the model."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

from workstation.config import demo_study_path
from workstation.core.volume import Volume
from workstation.dicom import load_series
from workstation.render.compose import Compositor, compose_view
from workstation.render.grid import GeometryMismatchError
from workstation.render.layers import ImageLayer, LabelsLayer
from workstation.render.reslice import ViewPlane
from workstation.render.study_view import StudyView
from workstation.render.tissue import (
    TISSUE_COLORS,
    TISSUE_LAYER_NAME,
    demo_tissue_labels,
    demo_tissue_labels_path,
)


@pytest.fixture(scope="module")
def demo() -> Volume:
    return load_series(demo_study_path())


@pytest.fixture(scope="module")
def tissue(demo: Volume) -> LabelsLayer:
    return demo_tissue_labels(demo)


def test_labels_sit_on_the_demo_grid(demo: Volume, tissue: LabelsLayer) -> None:
    labels = tissue.volume
    assert tissue.name == TISSUE_LAYER_NAME
    assert labels.shape == demo.shape == (189, 233, 197)
    np.testing.assert_allclose(labels.origin, demo.origin, atol=1e-3)
    np.testing.assert_allclose(labels.spacing, demo.spacing, atol=1e-3)
    np.testing.assert_allclose(labels.direction, demo.direction, atol=1e-6)
    assert labels.array.dtype == np.uint8
    assert set(np.unique(labels.array)) == {0, 1, 2, 3}
    assert tissue.label_names == {1: "Grey matter", 2: "White matter", 3: "CSF / other brain"}
    assert tissue.color(2) == TISSUE_COLORS[2]


def test_labels_match_the_anatomy(demo: Volume, tissue: LabelsLayer) -> None:
    labels, mr = tissue.volume.array, demo.array
    # Background voxels of the MR are background labels, and every brain voxel is labelled.
    assert not labels[mr == 0].any()
    assert (labels[mr > 0] > 0).all()
    counts = np.bincount(labels.ravel(), minlength=4)
    brain = counts[1:].sum()
    fractions = counts[1:] / brain
    print(
        f"brain {brain} voxels; GM {fractions[0]:.3f}, WM {fractions[1]:.3f}, "
        f"CSF/other {fractions[2]:.3f}"
    )
    assert 0.2 <= fractions[0] <= 0.6 and 0.2 <= fractions[1] <= 0.6
    # T1 contrast: white matter is brighter than grey matter, which is brighter than CSF.
    medians = [np.median(mr[labels == n]) for n in (1, 2, 3)]
    assert medians[1] > medians[0] > medians[2]


def test_other_grids_are_refused(demo: Volume) -> None:
    shifted = Volume(demo.array, spacing=demo.spacing, origin=(0.0, 0.0, 0.0))
    with pytest.raises(GeometryMismatchError, match="demo tissue labels"):
        demo_tissue_labels(shifted)


def test_missing_file_is_a_config_error(demo: Volume, tmp_path: Path) -> None:
    from workstation.core.errors import ConfigError

    assert demo_tissue_labels_path().is_file()
    with pytest.raises(ConfigError, match=r"build_demo_study\.py"):
        demo_tissue_labels(demo, path=tmp_path / "missing.nii.gz")


def test_tissue_over_the_mr_in_2d(demo: Volume, tissue: LabelsLayer) -> None:
    view = StudyView([ImageLayer(demo, name="T1")])
    view.add(tissue)
    compositor = Compositor()
    for plane in ViewPlane:
        rgba, cut = compose_view(view, plane, compositor=compositor)
        assert rgba.shape == (*cut.shape, 4) and (rgba[..., 3] == 255).all()
    # Axial slice through the cursor: where the labels are white matter, the colour is half
    # grey, half the white matter colour (opacity 0.5).
    rgba, cut = compose_view(view, ViewPlane.AXIAL)
    k = cut.index
    white = tissue.data[k] == 2
    assert white.any()
    tissue.visible = False
    plain, _ = compose_view(view, ViewPlane.AXIAL)
    blue = np.asarray(TISSUE_COLORS[2][:3], dtype=float)
    expected = 0.5 * plain[white][:, :3] + 0.5 * blue
    assert np.abs(rgba[white][:, :3] - expected).max() <= 1.0
    np.testing.assert_array_equal(rgba[tissue.data[k] == 0], plain[tissue.data[k] == 0])


def test_labels_rebuild_from_the_wheel(tissue: LabelsLayer, tmp_path: Path) -> None:
    """The committed labels are what build_demo_study.py makes from the nilearn wheel."""
    env = os.environ.get("MEDWS_NILEARN_WHEEL")
    wheels = [Path(env)] if env else sorted(Path("/tmp/nilearn_wheel").glob("nilearn-*.whl"))
    if not wheels or not wheels[-1].is_file():
        pytest.skip(
            "nilearn wheel not available (set MEDWS_NILEARN_WHEEL or use /tmp/nilearn_wheel)"
        )
    script = Path(__file__).resolve().parents[2] / "resources" / "demo" / "build_demo_study.py"
    spec = importlib.util.spec_from_file_location("build_demo_study", script)
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    template = build.load_template(wheels[-1], tmp_path)
    grey, white = (
        build.read_member(wheels[-1], m, tmp_path) for m in (build.GM_MEMBER, build.WM_MEMBER)
    )
    rebuilt = Volume.from_sitk(build.tissue_labels(template, grey, white))
    np.testing.assert_array_equal(rebuilt.array, tissue.data)
    np.testing.assert_allclose(rebuilt.origin, tissue.volume.origin)

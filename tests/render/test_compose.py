"""2D compositing: exact values on a hand-computed example, visibility, thresholds, speed."""

from __future__ import annotations

import numpy as np
import pytest

from workstation.core.volume import Volume
from workstation.render.colormaps import COLORMAPS, colormap, label_palette
from workstation.render.compose import Compositor, compose
from workstation.render.layers import HeatmapLayer, ImageLayer, LabelsLayer
from workstation.render.windowing import Window

RED, BLUE = (255, 0, 0, 255), (0, 0, 255, 255)


def _layers(shape: tuple[int, int] = (2, 2)) -> tuple[ImageLayer, LabelsLayer, HeatmapLayer]:
    grid = np.zeros((1, *shape))
    image = ImageLayer(Volume(grid.astype(np.int16)), window=(500.0, 1000.0), name="image")
    labels = LabelsLayer(Volume(grid.astype(np.uint8)), colors={1: RED, 2: BLUE}, opacity=0.5)
    heat = HeatmapLayer(Volume(grid.astype(np.float32)), colormap="hot", range=(0.0, 1.0))
    return image, labels, heat


def test_image_plus_labels_by_hand() -> None:
    image, labels, _ = _layers()
    # Window 0..1000: -100 is below it (black), 2000 above it (white).
    grey = np.array([[-100, 2000], [-100, 2000]], dtype=np.int16)
    label = np.array([[0, 1], [2, 0]], dtype=np.uint8)
    out = compose([(image, grey), (labels, label)], base_window=None)
    assert out.dtype == np.uint8 and out.shape == (2, 2, 4)
    # Over an opaque base at opacity 0.5: c = 0.5 * label + 0.5 * image, rounded half up.
    # black + label 0 (transparent) -> black; white + red -> (255, 127.5, 127.5);
    # black + blue -> (0, 0, 127.5); white + label 0 -> white.
    expected = np.array(
        [[[0, 0, 0, 255], [255, 128, 128, 255]], [[0, 0, 128, 255], [255, 255, 255, 255]]],
        dtype=np.uint8,
    )
    np.testing.assert_array_equal(out, expected)


def test_hidden_and_transparent_layers_are_ignored() -> None:
    image, labels, heat = _layers()
    grey = np.array([[0, 250], [500, 1000]], dtype=np.int16)
    label = np.array([[1, 2], [1, 2]], dtype=np.uint8)
    values = np.ones((2, 2), np.float32)
    alone = compose([(image, grey)])
    labels.visible = False
    heat.opacity = 0.0
    np.testing.assert_array_equal(compose([(image, grey), (labels, label), (heat, values)]), alone)
    image.visible = False
    assert not compose([(image, grey), (labels, label)]).any()


def test_base_window_overrides_the_first_image() -> None:
    image, _, _ = _layers()
    grey = np.array([[0, 100], [200, 300]], dtype=np.int16)
    narrow = compose([(image, grey)], base_window=Window(150.0, 100.0))
    np.testing.assert_array_equal(narrow[..., 0], [[0, 0], [255, 255]])
    assert image.window == Window(500.0, 1000.0)


def test_heatmap_threshold_and_nan() -> None:
    image, _, heat = _layers()
    grey = np.full((2, 2), 2000, dtype=np.int16)  # white
    values = np.array([[0.2, 0.6], [1.0, np.nan]], dtype=np.float32)
    heat.threshold = 0.5
    out = compose([(image, grey), (heat, values)])
    hot = colormap("hot")
    np.testing.assert_array_equal(out[0, 0], [255, 255, 255, 255])  # below threshold
    np.testing.assert_array_equal(out[1, 1], [255, 255, 255, 255])  # NaN
    np.testing.assert_array_equal(out[0, 1], hot[round(0.6 * 255)])
    np.testing.assert_array_equal(out[1, 0], hot[255])
    heat.threshold = None
    assert (compose([(image, grey), (heat, values)])[0, 0] == hot[round(0.2 * 255)]).all()


def test_translucent_result_is_premultiplied() -> None:
    _, labels, _ = _layers()
    out = compose([(labels, np.array([[1, 0], [0, 0]], np.uint8))])
    np.testing.assert_array_equal(out[0, 0], [128, 0, 0, 128])
    assert not out[1, 1].any()


def test_wide_label_values() -> None:
    labels = LabelsLayer(Volume(np.zeros((1, 1, 3), np.int32)), colors={70000: RED})
    out = compose([(labels, np.array([[0, 3, 70000]], np.int32))])
    assert out[0, 0, 3] == 0
    np.testing.assert_array_equal(out[0, 1], label_palette()[3])
    np.testing.assert_array_equal(out[0, 2], RED)


def test_mismatched_slices_are_refused() -> None:
    image, labels, _ = _layers()
    with pytest.raises(ValueError, match="shape"):
        compose([(image, np.zeros((2, 2))), (labels, np.zeros((2, 3), np.uint8))])


def test_colormaps_are_well_formed() -> None:
    for name in COLORMAPS:
        table = colormap(name)
        assert table.shape == (256, 4) and table.dtype == np.uint8 and (table[:, 3] == 255).all()
    np.testing.assert_array_equal(colormap("gray_r")[:, 0], 255 - colormap("gray")[:, 0])
    np.testing.assert_array_equal(colormap("viridis")[[0, 255], :3], [[68, 1, 84], [253, 231, 37]])
    palette = label_palette()
    assert palette[0, 3] == 0 and (palette[1:, 3] == 255).all()
    assert len({tuple(c) for c in palette[1:]}) == 255  # all distinct


def test_colormaps_match_matplotlib_when_available() -> None:
    cm = pytest.importorskip("matplotlib").colormaps
    for name in ("gray", "gray_r", "hot", "inferno", "viridis", "coolwarm"):
        ref = np.rint(cm[name](np.linspace(0.0, 1.0, 256)) * 255)
        assert np.abs(colormap(name).astype(int) - ref).max() <= 2, name


def test_compositor_reuses_buffers_and_matches_compose_at_512() -> None:
    image, labels, heat = _layers((512, 512))
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 1000, (512, 512), dtype=np.int16)
    label = rng.integers(0, 4, (512, 512), dtype=np.uint8)
    values = rng.random((512, 512), dtype=np.float32)
    heat.threshold = 0.3
    pairs = [(image, grey), (labels, label), (heat, values)]
    compositor = Compositor()  # what a 2D view holds: buffers reused between frames
    np.testing.assert_array_equal(compositor(pairs), compose(pairs))
    first = compositor(pairs).copy()
    np.testing.assert_array_equal(compositor(pairs), first)  # reused buffers give the same frame

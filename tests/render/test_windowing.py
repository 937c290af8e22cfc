"""Windows: the DICOM linear VOI function at its edges, the LUT path, presets, auto windows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from workstation.core.volume import Volume
from workstation.render.windowing import (
    CT_PRESETS,
    Window,
    apply_window,
    auto_window,
    is_inverted,
    presets_for,
)


def dicom_linear(x: float, c: float, w: float) -> int:
    """PS3.3 C.11.2.1.2.1 with ymin 0, ymax 255, rounded half up (written from the standard)."""
    if x <= c - 0.5 - (w - 1) / 2:
        return 0
    if x > c - 0.5 + (w - 1) / 2:
        return 255
    return math.floor(((x - (c - 0.5)) / (w - 1) + 0.5) * 255 + 0.5)


def window_one(x: float, window: Window, dtype: object = np.float64) -> int:
    return int(apply_window(np.array([x], dtype=dtype), window)[0])


# -- the DICOM formula -------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.int16, np.float64])
def test_brain_window_edges_exact(dtype: type) -> None:
    # c=40, w=80: black up to and including c - 0.5 - 39.5 = 0, white above c - 0.5 + 39.5 = 79.
    expected = {-1024: 0, -1: 0, 0: 0, 1: 3, 39: 126, 40: 129, 78: 252, 79: 255, 80: 255, 3000: 255}
    window = Window(40, 80)
    assert window.bounds == (0.0, 79.0)
    for x, y in expected.items():
        assert window_one(x, window, dtype) == y == dicom_linear(x, 40, 80), x


@pytest.mark.parametrize(("c", "w"), [(40, 80), (-600, 1500), (400, 1800), (80, 200), (0, 2)])
def test_linear_matches_standard_around_both_thresholds(c: float, w: float) -> None:
    low, high = c - 0.5 - (w - 1) / 2, c - 0.5 + (w - 1) / 2
    xs = [low - 1, low, low + 1e-9, low + 0.5, low + 1, c - 0.5, c, high - 1, high, high + 1e-9]
    xs += [high + 1]
    got = apply_window(np.array(xs, dtype=np.float64), Window(c, w))
    assert got.tolist() == [dicom_linear(x, c, w) for x in xs]
    assert got[1] == 0 and got[9] == 255  # x == lower -> ymin; just above upper -> ymax
    assert got[8] == 255  # x == upper reaches ymax exactly


def test_width_one_is_a_step_at_c_minus_half() -> None:
    x = np.array([38, 39, 39.5, 39.50001, 40, 41])
    assert apply_window(x, Window(40, 1)).tolist() == [0, 0, 0, 255, 255, 255]
    ints = np.array([38, 39, 40, 41], dtype=np.int16)
    assert apply_window(ints, Window(40, 1)).tolist() == [0, 0, 255, 255]


def test_linear_exact_for_float_data() -> None:
    # C.11.2.1.3.2: black up to c - w/2, white above c + w/2, no half-unit offsets.
    x = np.array([-0.1, 0.0, 0.25, 0.5, 1.0, 1.0001], dtype=np.float64)
    got = apply_window(x, Window(0.5, 1.0, "LINEAR_EXACT"))
    assert got.tolist() == [0, 0, 64, 128, 255, 255]


def test_window_validation() -> None:
    with pytest.raises(ValueError, match="width >= 1"):
        Window(40, 0.5)
    with pytest.raises(ValueError, match="width > 0"):
        Window(0.5, 0.0, "LINEAR_EXACT")
    with pytest.raises(ValueError, match="unsupported"):
        Window(0, 10, "SIGMOID")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="finite"):
        Window(float("nan"), 10)


# -- lookup table vs float math ----------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.uint8, np.int8])
@pytest.mark.parametrize("invert", [False, True])
def test_lut_path_equals_float_path(dtype: type, invert: bool) -> None:
    rng = np.random.default_rng(7)
    info = np.iinfo(dtype)
    data = rng.integers(info.min, int(info.max) + 1, size=(64, 80)).astype(dtype)
    for _ in range(20):
        c = float(rng.uniform(info.min, info.max))
        w = float(rng.uniform(1, (int(info.max) - int(info.min)) / 2))
        window = Window(c, w, "LINEAR" if rng.random() < 0.7 else "LINEAR_EXACT")
        lut = apply_window(data, window, invert=invert)
        ref = apply_window(data.astype(np.float64), window, invert=invert)
        np.testing.assert_array_equal(lut, ref)


def test_lut_path_handles_views_byte_order_and_out() -> None:
    rng = np.random.default_rng(1)
    data = rng.integers(-1024, 3000, size=(20, 30, 40)).astype(np.int16)
    window = Window(40, 400)
    view = data[::-1, 5, ::-2]  # strided, negative steps
    np.testing.assert_array_equal(
        apply_window(view, window), apply_window(view.astype(np.float64), window)
    )
    swapped = data.astype(">i2")
    np.testing.assert_array_equal(apply_window(swapped, window), apply_window(data, window))
    out = np.empty(view.shape, dtype=np.uint8)
    assert apply_window(view, window, out) is out
    with pytest.raises(ValueError, match="out must be uint8"):
        apply_window(view, window, np.empty((2, 2), dtype=np.uint8))


def test_invert_is_monochrome1() -> None:
    x = np.arange(-100, 200, dtype=np.int16)
    window = Window(40, 80)
    np.testing.assert_array_equal(
        apply_window(x, window, invert=True), 255 - apply_window(x, window)
    )
    assert is_inverted(Volume(np.zeros((1, 2, 2)), metadata={"photometric": "MONOCHROME1"}))
    assert not is_inverted(Volume(np.zeros((1, 2, 2)), metadata={"photometric": "MONOCHROME2"}))


def test_float32_and_nan() -> None:
    x = np.array([np.nan, -1000.0, 40.0, np.inf, -np.inf], dtype=np.float32)
    assert apply_window(x, Window(40, 80)).tolist() == [0, 0, 129, 255, 0]


# -- presets and auto windows ------------------------------------------------------------------
def test_ct_presets_values() -> None:
    presets = dict(CT_PRESETS)
    assert presets["brain"] == Window(40, 80)
    assert presets["subdural"] == Window(80, 200)
    assert presets["stroke"] == Window(40, 40)
    assert presets["bone"] == Window(400, 1800)
    assert presets["soft tissue"] == Window(50, 400)
    assert presets["lung"] == Window(-600, 1500)


def test_presets_for_ct_and_mr() -> None:
    array = np.random.default_rng(0).integers(-1024, 2000, size=(8, 16, 16)).astype(np.int16)
    ct = Volume(array, metadata={"modality": "CT", "window": (40.0, 400.0)})
    names = [name for name, _ in presets_for(ct)]
    assert names[0] == "DICOM" and presets_for(ct)[0][1] == Window(40, 400)
    assert {"brain", "subdural", "stroke", "bone", "soft tissue", "lung"} <= set(names)
    assert names[-1] == "auto"
    mr = Volume(array.astype(np.uint16), metadata={"modality": "MR", "window": None})
    assert [name for name, _ in presets_for(mr)] == ["auto"]
    broken = Volume(array, metadata={"modality": "MR", "window": (40.0, 0.0)})
    assert [name for name, _ in presets_for(broken)] == ["auto"]


def test_auto_window_ignores_background() -> None:
    rng = np.random.default_rng(3)
    array = np.zeros((40, 64, 64), dtype=np.uint16)  # 70 % background
    tissue = rng.integers(100, 1101, size=array.shape).astype(np.uint16)
    mask = rng.random(array.shape) < 0.3
    array[mask] = tissue[mask]
    window = auto_window(array)
    low, high = window.bounds
    assert window.function == "LINEAR"
    assert 100 <= low <= 120 and 1080 <= high <= 1100  # 1st and 99th percentile of the tissue
    grey = apply_window(np.array([low, high], dtype=np.float64), window)
    assert grey.tolist() == [0, 255]
    with_background = np.percentile(array, 1)
    assert with_background == 0  # what including the background would have given


def test_auto_window_float_and_subsampling() -> None:
    rng = np.random.default_rng(4)
    array = np.full((200, 100, 100), -5.0, dtype=np.float32)
    array[:, 20:80, 20:80] = rng.uniform(0.0, 1.0, size=(200, 60, 60))
    window = auto_window(array, max_samples=50_000)
    assert window.function == "LINEAR_EXACT"
    low, high = window.bounds
    assert 0.0 <= low < 0.03 and 0.97 < high <= 1.0
    assert auto_window(np.full((2, 2, 2), 7, dtype=np.int16)).bounds[1] >= 7

"""Preprocessing: input spec, normalisation, and the round trip back to the original grid."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("SimpleITK")

from scipy.spatial.transform import Rotation

from workstation.core.volume import Volume
from workstation.inference.device import InferenceError
from workstation.inference.preprocess import (
    InputSpec,
    Normalisation,
    normalise,
    preprocess,
    spacing_in_orientation,
    to_original,
)

BLOB_LPS = np.array([6.0, -4.0, 9.0])


def oblique_volume(blob_lps: np.ndarray = BLOB_LPS) -> Volume:
    """Anisotropic, oblique volume with a Gaussian blob (σ 4 mm) at ``blob_lps``."""
    direction = Rotation.from_euler("xyz", [20.0, 10.0, 5.0], degrees=True).as_matrix()
    shape = (20, 36, 32)  # k, j, i
    spacing = (1.1, 0.9, 2.5)
    centre_index = (np.array(shape[::-1]) - 1) / 2
    origin = -(direction * np.asarray(spacing)) @ centre_index  # grid centred on LPS 0
    geometry = Volume(np.zeros(shape, np.float32), spacing, tuple(origin), direction)
    k, j, i = np.indices(shape)
    lps = geometry.index_to_lps(np.stack([i, j, k], axis=-1))
    d2 = ((lps - blob_lps) ** 2).sum(-1)
    array = (100.0 + 1000.0 * np.exp(-d2 / (2 * 4.0**2))).astype(np.float32)
    return geometry.with_array(array, metadata={"modality": "MR"})


def peak_lps(volume: Volume) -> np.ndarray:
    k, j, i = np.unravel_index(np.argmax(volume.array), volume.shape)
    return volume.index_to_lps([i, j, k])


def test_spec_from_manifest() -> None:
    spec = InputSpec.from_manifest(
        {
            "modality": "MR",
            "orientation": "ras",
            "spacing": [2, 2, 2],
            "normalisation": {"method": "zscore", "mask": "nonzero"},
            "divisor": 8,
        }
    )
    assert spec.orientation == "RAS" and spec.spacing == (2.0, 2.0, 2.0) and spec.divisor == 8
    assert spec.normalisation == Normalisation("zscore", "nonzero")
    pct = InputSpec.from_manifest({"normalisation": {"method": "percentile", "low": 1, "high": 99}})
    assert (pct.normalisation.method, pct.normalisation.low, pct.normalisation.high) == (
        "percentile",
        1.0,
        99.0,
    )
    assert InputSpec.from_manifest(spec.to_dict()) == spec


@pytest.mark.parametrize(
    "bad",
    [
        {"orientation": "RAA"},
        {"spacing": [1, 0, 1]},
        {"divisor": 0},
        {"normalisation": {"method": "magic"}},
        {"normalisation": {"method": "percentile", "low": 99, "high": 1}},
    ],
)
def test_bad_spec_is_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        InputSpec.from_manifest(bad)


def test_zscore_inside_nonzero_mask() -> None:
    data = np.zeros((4, 5, 6), np.float32)
    data[1:3, 1:4, 1:5] = np.random.default_rng(0).normal(50, 10, size=(2, 3, 4))
    out = normalise(data, Normalisation("zscore", "nonzero"))
    inside = data != 0
    assert abs(out[inside].mean()) < 1e-5 and abs(out[inside].std() - 1) < 1e-4
    assert np.all(out[~inside] == 0)


def test_percentile_and_clip_scale_to_unit_range() -> None:
    data = np.random.default_rng(0).normal(0, 100, size=(8, 8, 8)).astype(np.float32)
    out = normalise(data, Normalisation("percentile", low=5, high=95))
    assert out.min() == 0.0 and out.max() == pytest.approx(1.0)
    clipped = normalise(
        np.array([[[-2000.0, 0.0, 3000.0]]]), Normalisation("clip", low=-1000, high=1000)
    )
    np.testing.assert_allclose(clipped.ravel(), [0.0, 0.5, 1.0])


def test_identity_spec_round_trip_is_exact() -> None:
    volume = Volume(
        np.random.default_rng(0).normal(size=(6, 7, 9)).astype(np.float32),
        spacing=(0.5, 0.7, 2.0),
        origin=(3.0, -1.0, 4.0),
    )
    spec = InputSpec(orientation="LPS", normalisation=Normalisation("none"), divisor=4)
    prepared = preprocess(volume, spec)
    assert prepared.array.shape == (8, 8, 12)
    np.testing.assert_allclose(to_original(prepared.array, prepared), volume.array, atol=1e-6)


def test_oblique_round_trip_maps_the_blob_back_to_the_same_place() -> None:
    volume = oblique_volume()
    spec = InputSpec(
        modality="MR",
        orientation="RAS",
        spacing=(1.5, 1.5, 1.5),
        normalisation=Normalisation("percentile", low=0, high=100),
        divisor=8,
    )
    prepared = preprocess(volume, spec)
    assert all(n % 8 == 0 for n in prepared.array.shape)
    assert prepared.grid.spacing == (1.5, 1.5, 1.5)
    # RAS: the first axis points to the patient's right (−L), the last to superior.
    assert prepared.grid.direction[0, 0] < 0 and prepared.grid.direction[2, 2] > 0
    np.testing.assert_allclose(prepared.array[prepared.crop], prepared.grid.array)
    assert np.linalg.norm(peak_lps(prepared.grid) - BLOB_LPS) < 1.5

    # Probabilities (linear) come back on exactly the original grid, peak in the same place.
    back = to_original(prepared.array, prepared)
    assert back.shape == volume.shape and back.dtype == np.float32
    restored = volume.with_array(back)
    assert np.linalg.norm(peak_lps(restored) - peak_lps(volume)) < 1.5
    expected = normalise(volume.array, spec.normalisation)
    assert np.corrcoef(back.ravel(), expected.ravel())[0, 1] > 0.98

    # Labels (nearest neighbour) keep their dtype and overlap the original mask.
    labels = (prepared.array > 0.5).astype(np.uint8)
    mask = to_original(labels, prepared, labels=True)
    truth = expected > 0.5
    assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    dice = 2 * np.logical_and(mask, truth).sum() / (mask.sum() + truth.sum())
    assert dice > 0.85


def test_channels_first_predictions_map_back_per_channel() -> None:
    volume = oblique_volume()
    prepared = preprocess(volume, InputSpec(spacing=(2.0, 2.0, 2.0), divisor=4))
    probs = np.stack([1 - prepared.array / 10, prepared.array / 10]).astype(np.float32)
    back = to_original(probs, prepared)
    assert back.shape == (2, *volume.shape)
    np.testing.assert_allclose(back.sum(0), 1.0, atol=1e-5)


def test_prediction_of_the_wrong_shape_is_refused() -> None:
    prepared = preprocess(oblique_volume(), InputSpec(divisor=4))
    with pytest.raises(InferenceError, match="model grid"):
        to_original(np.zeros((3, 3, 3), np.float32), prepared)


def test_spacing_in_orientation_follows_the_axes() -> None:
    # i runs superior-inferior, j left-right, k anterior-posterior.
    direction = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [-1.0, 0.0, 0.0]])
    volume = Volume(np.zeros((2, 2, 2)), spacing=(3.0, 1.0, 2.0), direction=direction)
    assert spacing_in_orientation(volume, "RAS") == (1.0, 2.0, 3.0)
    assert spacing_in_orientation(volume, "SAR") == (3.0, 2.0, 1.0)


def test_the_model_bundles_input_section_is_understood() -> None:
    """The demonstration bundles name spacing_mm / size_multiple / intensity_normalisation and
    describe their z-score by its reference function: background scaled, not zeroed."""
    import json
    from pathlib import Path

    manifest = Path(__file__).resolve().parents[2] / "resources/models/demo-lesion-seg"
    section = json.loads((manifest / "manifest.json").read_text(encoding="utf-8"))["input"]
    spec = InputSpec.from_manifest(section)
    assert spec.spacing == (2.0, 2.0, 2.0) and spec.divisor == 8 and spec.orientation == "LPS"
    assert spec.normalisation == Normalisation("zscore", "nonzero", outside="scaled")


def test_a_scaled_background_matches_the_training_normalisation() -> None:
    from workstation.inference.synthetic import zscore_in_brain

    rng = np.random.default_rng(3)
    data = np.where(rng.random((6, 7, 8)) < 0.5, 0.0, rng.uniform(10, 20, (6, 7, 8)))
    ours = normalise(data, Normalisation("zscore", "nonzero", outside="scaled"))
    assert np.allclose(ours, zscore_in_brain(data), atol=1e-5)
    assert (ours[data == 0] < 0).all()  # zeroed would leave the brain mean there
    with pytest.raises(ValueError, match="outside"):
        Normalisation("zscore", outside="mean")

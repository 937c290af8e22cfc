"""Pre-flight QC: out-of-distribution warnings, never exceptions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from workstation.core.volume import Volume
from workstation.inference.preprocess import InputSpec
from workstation.inference.qc import TrainingStats, obliquity_degrees, preflight_qc

SPEC = InputSpec(modality="MR", orientation="RAS", spacing=(2.0, 2.0, 2.0))
STATS = TrainingStats.from_manifest(
    {
        "spacing_range": [0.8, 2.5],
        "intensity_percentiles": {"1": 0.0, "50": 100.0, "99": 1000.0},
    }
)


def mr_volume(**changes) -> Volume:
    rng = np.random.default_rng(0)
    array = np.concatenate(
        [np.zeros(300), rng.uniform(20, 980, size=408), np.full(12, 1000.0)]
    ).reshape(6, 6, -1)
    rng.shuffle(array.ravel())
    fields = {"array": array, "spacing": (1.0, 1.0, 1.2), "metadata": {"modality": "MR"}}
    fields.update(changes)
    return Volume(**fields)


def test_in_distribution_volume_has_no_warnings() -> None:
    assert preflight_qc(mr_volume(), SPEC, STATS) == []


def test_stats_from_manifest() -> None:
    assert STATS.spacing_min == (0.8, 0.8, 0.8) and STATS.spacing_max == (2.5, 2.5, 2.5)
    assert STATS.intensity_percentiles == {1.0: 0.0, 50.0: 100.0, 99.0: 1000.0}
    per_axis = TrainingStats.from_manifest({"spacing_range": [[1, 1, 2], [2, 2, 6]]})
    assert per_axis.spacing_max == (2.0, 2.0, 6.0)
    assert TrainingStats.from_manifest(None) == TrainingStats()


def test_wrong_or_missing_modality_is_flagged() -> None:
    (warning,) = preflight_qc(mr_volume(metadata={"modality": "CT"}), SPEC, STATS)
    assert "modality CT" in warning and "MR" in warning
    (warning,) = preflight_qc(mr_volume(metadata={}), SPEC, STATS)
    assert "unknown" in warning


def test_spacing_outside_the_training_range_is_flagged() -> None:
    warnings = preflight_qc(mr_volume(spacing=(1.0, 1.0, 5.0)), SPEC, STATS)
    assert len(warnings) == 1
    assert "5 mm along S" in warnings[0] and "0.8–2.5" in warnings[0]


def test_intensity_shift_is_flagged_with_the_percentile() -> None:
    warnings = preflight_qc(mr_volume(array=mr_volume().array * 4 + 500), SPEC, STATS)
    assert warnings and all("percentile" in w for w in warnings)
    assert any("99th percentile" in w for w in warnings)


def test_oblique_volume_is_flagged() -> None:
    tilt = Rotation.from_euler("x", 20, degrees=True).as_matrix()
    volume = mr_volume(direction=tilt)
    assert obliquity_degrees(volume) == pytest.approx(20.0)
    (warning,) = preflight_qc(volume, SPEC, STATS)
    assert "oblique by 20.0°" in warning


def test_without_stats_only_modality_and_obliquity_are_checked() -> None:
    assert preflight_qc(mr_volume(spacing=(9.0, 9.0, 9.0)), SPEC) == []


def test_normalised_intensity_qc_compares_the_histogram_shape() -> None:
    from workstation.inference.qc import normalised_intensity_qc

    rng = np.random.default_rng(0)
    values = rng.standard_normal((20, 20, 20)).astype(np.float32)
    inside = np.ones(values.shape, dtype=bool)
    reference = {5.0: -1.645, 50.0: 0.0, 95.0: 1.645}
    assert normalised_intensity_qc(values, inside, reference) == []
    skewed = np.exp(values)  # a very different shape
    skewed = (skewed - skewed.mean()) / skewed.std()
    warnings = normalised_intensity_qc(skewed, inside, reference)
    assert warnings and all(w.startswith("out of distribution") for w in warnings)
    assert normalised_intensity_qc(values, ~inside, reference)  # nothing to compare

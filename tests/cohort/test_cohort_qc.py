"""Cohort QC: input/output features with known answers, thumbnails and the outlier flags."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from workstation.cohort.outliers import flag_outliers, score_feature
from workstation.cohort.qc import input_features, output_features, thumbnail_png
from workstation.core.volume import Volume

DEMO = Path(__file__).resolve().parents[2] / "resources" / "demo" / "brain_mr"


def _phantom(shape=(24, 80, 80), sigma=10.0, seed=0, background=0.0) -> tuple[Volume, np.ndarray]:
    """A sphere with a linear ramp (800 + 4 x) plus white noise of std ``sigma``."""
    rng = np.random.default_rng(seed)
    k, j, i = np.indices(shape)
    centre = np.asarray(shape) / 2
    inside = ((k - centre[0]) / (0.45 * shape[0])) ** 2 + ((j - centre[1]) / 30) ** 2 + (
        (i - centre[2]) / 30
    ) ** 2 <= 1
    array = np.where(inside, 800.0 + 4.0 * (i - centre[2]), background)
    array = array + np.where(inside, rng.normal(0, sigma, shape), 0.0)
    volume = Volume(array.astype(np.float32), spacing=(1.0, 1.0, 2.0), metadata={"modality": "MR"})
    return volume, inside


def test_input_features_known_answers() -> None:
    volume, inside = _phantom()
    features = input_features(volume)
    assert all(key.startswith("in_") for key in features)
    assert features["in_modality"] == "MR"
    assert (features["in_dim_i"], features["in_dim_j"], features["in_dim_k"]) == (80, 80, 24)
    assert features["in_spacing_k"] == 2.0 and features["in_voxel_mm3"] == 2.0
    assert features["in_obliquity_deg"] == 0.0
    assert features["in_foreground_fraction"] == pytest.approx(inside.mean(), rel=1e-4)
    assert features["in_zero_fraction"] == pytest.approx(1 - inside.mean(), rel=1e-4)
    assert features["in_p50"] == pytest.approx(800, abs=5)
    assert features["in_p1"] < features["in_p5"] < features["in_p50"] < features["in_p95"]
    assert features["in_p95"] < features["in_p99"]
    assert abs(features["in_skewness"]) < 0.2  # a ramp over a sphere is symmetric
    assert features["in_noise_std"] == pytest.approx(10.0, rel=0.1)
    assert features["in_snr"] == pytest.approx(80.0, rel=0.1)
    assert features["in_background_ratio"] == 0.0
    assert features["in_missing_slices"] == 0 and features["in_warnings"] == 0


def test_noise_and_motion_proxies_respond() -> None:
    quiet = input_features(_phantom(sigma=5.0)[0])
    noisy = input_features(_phantom(sigma=40.0)[0])
    assert noisy["in_noise_std"] == pytest.approx(40.0, rel=0.1)
    assert noisy["in_snr"] < quiet["in_snr"] / 5

    volume, inside = _phantom()
    ghost = volume.array + 0.3 * np.roll(volume.array, 40, axis=1) * ~inside
    jitter = volume.array * np.where(np.arange(24) % 2, 1.15, 1.0)[:, None, None]
    clean = input_features(volume)
    ghosted = input_features(volume.with_array(ghost.astype(np.float32)))
    jittered = input_features(volume.with_array(jitter.astype(np.float32)))
    assert ghosted["in_background_ratio"] > 0.05 > clean["in_background_ratio"]
    assert jittered["in_slice_jitter"] > 0.05 > clean["in_slice_jitter"]


def test_obliquity_of_a_rotated_direction() -> None:
    angle = np.radians(20.0)
    c, s = np.cos(angle), np.sin(angle)
    rotation = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    volume = _phantom()[0]
    rotated = Volume(volume.array, spacing=volume.spacing, direction=rotation)
    features = input_features(rotated)
    assert features["in_obliquity_deg"] == pytest.approx(20.0, abs=1e-3)
    assert features["in_modality"] == ""


def test_missing_slices_are_counted(tmp_path: Path) -> None:
    from workstation.dicom import load_series
    from workstation.dicom.synthetic import write_series

    volume = _phantom(shape=(20, 32, 32))[0]
    stored = np.clip(volume.array, 0, None).astype(np.uint16)
    paths = write_series(tmp_path / "series", stored, spacing=(1.0, 1.0, 2.0))
    for index in (4, 9, 14):  # three separate gaps of one slice each
        paths[index].unlink()
    loaded = load_series(tmp_path / "series")
    features = input_features(loaded)
    assert features["in_missing_slices"] == 3
    assert features["in_dim_k"] == 17
    assert features["in_warnings"] >= 1

    warned = Volume(
        volume.array,
        warnings=(
            "about 2 slice(s) missing (gaps at 1–5 mm); ...",
            "uneven slice spacing (1–1.2 mm); ...",
        ),
    )
    features = input_features(warned)
    assert features["in_missing_slices"] == 2 and features["in_uneven_spacing"] == 1


def test_empty_volume_gives_missing_values_not_errors() -> None:
    features = input_features(Volume(np.zeros((4, 8, 8), np.int16)))
    assert features["in_p50"] is None and features["in_snr"] is None
    assert features["in_zero_fraction"] == 1.0 and features["in_foreground_fraction"] == 0.0


def test_output_features() -> None:
    from workstation.workflow.analyze import Analysis, Finding

    assert output_features(None) == {}
    volume, inside = _phantom(shape=(8, 40, 40))
    probability = np.where(inside, 0.25, 0.0).astype(np.float32)
    findings = (
        Finding(1, "lesion 1", 0.9, (0.0, 0.0, 0.0), volume_ml=1.5, voxels=10),
        Finding(2, "lesion 2", 0.7, (1.0, 0.0, 0.0), volume_ml=0.5, voxels=4),
    )
    analysis = Analysis(
        source=volume,
        model={"name": "demo"},
        findings=findings,
        probability=volume.with_array(probability),
        explanation_info={
            "faithfulness": {"deletion_gain": 0.2, "insertion_gain": 0.3, "pointing_game": True}
        },
        warnings=("out of distribution: something",),
    )
    features = output_features(analysis)
    assert all(key.startswith("out_") for key in features)
    assert features["out_n_findings"] == 2
    assert features["out_total_volume_ml"] == pytest.approx(2.0)
    assert features["out_max_confidence"] == pytest.approx(0.9)
    assert features["out_mean_probability_brain"] == pytest.approx(0.25)
    assert features["out_qc_warnings"] == 1
    assert features["out_deletion_gain"] == 0.2 and features["out_pointing_game"] == 1
    empty = output_features(
        SimpleNamespace(
            findings=(),
            rejected=(),
            lesion_probability=0.1,
            probability=None,
            source=volume,
            explanation_info=None,
            warnings=(),
        )
    )
    assert empty["out_n_findings"] == 0 and empty["out_total_volume_ml"] == 0.0
    assert empty["out_lesion_probability"] == 0.1 and empty["out_mean_probability_brain"] is None


def test_thumbnail_orientation_and_aspect() -> None:
    array = np.zeros((10, 50, 100), np.float32)
    array[5, :5, :5] = 1000.0  # anterior (j=0), patient's right (i=0)
    array[5, 20:30, 40:60] = 500.0
    image = Image.open(io.BytesIO(thumbnail_png(Volume(array, spacing=(1.0, 1.0, 1.0)))))
    assert image.format == "PNG" and image.size == (128, 64)
    pixels = np.asarray(image)
    assert pixels[:2, :2].mean() > 200 and pixels[-2:, -2:].mean() < 10
    square = Image.open(io.BytesIO(thumbnail_png(Volume(array, spacing=(1.0, 2.0, 1.0)), 64)))
    assert square.size == (64, 64)
    flipped = Volume(array, direction=np.diag([-1.0, 1.0, 1.0]))  # i runs to patient's right
    pixels = np.asarray(Image.open(io.BytesIO(thumbnail_png(flipped))))
    assert pixels[:2, -2:].mean() > 200


def test_demo_brain_features() -> None:
    from workstation.dicom import load_series

    volume = load_series(DEMO)
    features = input_features(volume)
    assert features["in_modality"] == "MR"
    assert (features["in_dim_i"], features["in_dim_j"], features["in_dim_k"]) == volume.size
    assert 0.01 < features["in_foreground_fraction"] < 0.9
    assert features["in_snr"] is not None and 2 < features["in_snr"] < 10_000
    assert features["in_p1"] < features["in_p50"] < features["in_p99"]
    assert features["in_missing_slices"] == 0
    png = thumbnail_png(volume)
    assert max(Image.open(io.BytesIO(png)).size) == 128


# -- outliers --------------------------------------------------------------------------------

PLANTED = {
    "s007": "in_p99",
    "s013": "in_modality",
    "s021": "in_spacing_k",
    "s030": "out_total_volume_ml",
}
FAILED = {"s040": "could not read <script>alert(1)</script>", "s041": "timeout"}


def write_summary(path: Path, n: int = 50, seed: int = 1) -> Path:
    """A cohort summary with planted outliers (:data:`PLANTED`) and failures (:data:`FAILED`)."""
    rng = np.random.default_rng(seed)
    columns = [
        "study_key",
        "source",
        "status",
        "error",
        "attempts",
        "seconds",
        "worker",
        "result_id",
        "model",
        "explain",
        "in_modality",
        "in_dim_i",
        "in_spacing_k",
        "in_p99",
        "in_snr",
        "out_n_findings",
        "out_total_volume_ml",
        "out_empty",
    ]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        for index in range(n):
            key = f"s{index:03d}"
            row = {
                "study_key": key,
                "source": f"/data/{key}",
                "status": "ok",
                "error": "",
                "attempts": 1,
                "seconds": round(float(rng.uniform(2, 4)), 2),
                "worker": "w1",
                "result_id": f"r{index}",
                "model": "demo",
                "explain": "gradcam",
            }
            if key in FAILED:
                row.update(status="failed", error=FAILED[key], attempts=3)
                writer.writerow(row)
                continue
            findings = int(index % 5 == 0) + int(index % 7 == 0)
            row.update(
                in_modality="MR",
                in_dim_i=197,
                in_spacing_k=1.0,
                in_p99=round(float(rng.normal(800, 20)), 1),
                in_snr=round(float(rng.normal(30, 2)), 2),
                out_n_findings=findings,
                out_total_volume_ml=round(float(rng.uniform(0.5, 3.0)) * findings, 3),
                out_empty="",
            )
            planted = PLANTED.get(key)
            if planted == "in_p99":
                row["in_p99"] = 2000.0
            elif planted == "in_modality":
                row["in_modality"] = "CT"
            elif planted == "in_spacing_k":
                row["in_spacing_k"] = 5.0
            elif planted == "out_total_volume_ml":
                row["out_total_volume_ml"] = 250.0
            writer.writerow(row)
    return path


def test_planted_outliers_flagged_and_nothing_else(tmp_path: Path) -> None:
    flags = flag_outliers(write_summary(tmp_path / "summary.csv"))
    assert set(flags) == set(PLANTED) | set(FAILED)
    for key, feature in PLANTED.items():
        assert len(flags[key]) == 1 and flags[key][0].startswith(feature), flags[key]
    assert flags["s007"][0].startswith("in_p99 z=+") and "median 8" in flags["s007"][0]
    assert flags["s013"] == ["in_modality=CT differs from the majority MR (47 of 48)"]
    assert flags["s021"] == ["in_spacing_k=5 (rare: 47 of 48 studies have 1)"]  # MAD = 0
    assert "among the other values" in flags["s030"][0]  # zero-inflated: MAD = 0
    assert flags["s040"] == [f"failed: {FAILED['s040']}"] and flags["s041"] == ["failed: timeout"]
    assert list(flags) == sorted(flags)  # CSV order


def test_threshold_and_mad_zero_handling(tmp_path: Path) -> None:
    summary = write_summary(tmp_path / "summary.csv")
    # categorical mismatches and rare values do not depend on the threshold
    assert set(flag_outliers(summary, threshold=1e6)) == set(FAILED) | {"s013", "s021"}
    assert set(score_feature("x", np.array([1.0, 2, 3, 4, 100]), 3.5)) == {4}
    assert score_feature("x", np.ones(10), 3.5) == {}  # constant: skipped
    assert score_feature("x", np.array([1.0, 2, 100]), 3.5) == {}  # too few values
    # zero-inflated: the non-zero values are scored among themselves
    values = np.array([0.0] * 30 + [1.0, 2, 1.5, 2.5, 3, 1.2, 6, 80])
    assert set(score_feature("x", values, 3.5)) == {37}
    # a rare value of an otherwise constant feature; a common second value is not flagged
    assert set(score_feature("x", np.array([1.0] * 19 + [5.0]), 3.5)) == {19}
    assert score_feature("x", np.array([1.0] * 12 + [5.0] * 8), 3.5) == {}


def test_empty_summary(tmp_path: Path) -> None:
    path = tmp_path / "summary.csv"
    path.write_text("study_key,status,error,in_p99\n", encoding="utf-8")
    assert flag_outliers(path) == {}
    rows = [f"s{i},ok,,{800 + i}" for i in range(10)] + ["s10,ok,,inf", "s11,ok,,", "s12,ok,,9000"]
    path.write_text("study_key,status,error,in_p99\n" + "\n".join(rows) + "\n", encoding="utf-8")
    assert list(flag_outliers(path)) == ["s12"]  # inf and empty cells are missing values


def test_a_nearly_constant_feature_does_not_flag_small_differences() -> None:
    """A model giving 0.779 ± 0.0005 for most studies: 0.81 is not an anomaly, 0.95 is."""
    rng = np.random.default_rng(0)
    values = np.r_[0.7787 + rng.normal(0, 0.0005, 40), 0.81, 0.95]
    flagged = score_feature("out_lesion_probability", values, 3.5)
    assert sorted(flagged) == [41]

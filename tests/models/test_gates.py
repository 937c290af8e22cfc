"""Validation gates on the shipped demo models and the synthetic reference validation set.

Real models (:func:`load_model`), real template (the demo study). Each model is evaluated once
per module. Tolerance for reproducing the manifests' held-out metrics: ±0.1 (the set is small:
48 cases, 24 distinct draws, each in two complementary strata cells).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from workstation.config import demo_study_path
from workstation.dicom import load_series
from workstation.inference.catalogue import LoadedModel, load_model
from workstation.inference.synthetic import TemplateBrain, prepare_template
from workstation.models.gates import (
    CanaryMonitor,
    Evaluation,
    accuracy_gate,
    drift_gate,
    evaluate,
    fairness_gate,
    latency_gate,
    psi,
    run_gates,
)
from workstation.models.validation_set import (
    NPZ_NAME,
    STRATA,
    ValidationSet,
    ValidationSetError,
    make_validation_set,
)

TOLERANCE = 0.1


@pytest.fixture(scope="module")
def template() -> TemplateBrain:
    series = demo_study_path()
    labels = sitk.GetArrayFromImage(
        sitk.ReadImage(str(series.parent / "brain_tissue_labels.nii.gz"))
    )
    return prepare_template(load_series(series), labels)


@pytest.fixture(scope="module")
def validation(template: TemplateBrain) -> ValidationSet:
    start = time.perf_counter()
    vs = make_validation_set(template, n_per_stratum=6, seed=20260901)
    print(f"\nvalidation set: {len(vs)} cases in {time.perf_counter() - start:.2f} s")
    return vs


@pytest.fixture(scope="module")
def seg() -> LoadedModel:
    return load_model("demo-lesion-seg")


@pytest.fixture(scope="module")
def cls() -> LoadedModel:
    return load_model("demo-lesion-cls")


@pytest.fixture(scope="module")
def seg_eval(seg: LoadedModel, validation: ValidationSet) -> Evaluation:
    return evaluate(seg, seg.info.task, validation, repeats_for_latency=1)


@pytest.fixture(scope="module")
def cls_eval(cls: LoadedModel, validation: ValidationSet) -> Evaluation:
    return evaluate(cls, cls.info.task, validation, repeats_for_latency=5)


def _subset(vs: ValidationSet, index: np.ndarray) -> ValidationSet:
    strata = {name: tuple(labels[i] for i in index) for name, labels in vs.strata.items()}
    return dataclasses.replace(
        vs, images=vs.images[index], masks=vs.masks[index], present=vs.present[index], strata=strata
    )


def test_validation_set_is_deterministic_stratified_and_round_trips(
    template: TemplateBrain, validation: ValidationSet, tmp_path
) -> None:
    assert len(validation) == 48 and validation.present.sum() == 24
    assert validation.images.dtype == np.float16 and validation.images.shape[1:] == (32, 32, 32)
    for name, values in STRATA.items():
        counts = {v: validation.strata[name].count(v) for v in values}
        assert counts == dict.fromkeys(values, 24)
    small = make_validation_set(template, n_per_stratum=1, seed=7)
    again = make_validation_set(template, n_per_stratum=1, seed=7)
    assert np.array_equal(small.images, again.images) and np.array_equal(small.masks, again.masks)
    assert not np.array_equal(small.images, make_validation_set(template, n_per_stratum=1).images)
    npz, manifest = validation.save(tmp_path / "vs")
    size_mb = npz.stat().st_size / 1e6
    print(f"\nvalidation set on disk: {size_mb:.2f} MB")
    assert size_mb < 5
    loaded = ValidationSet.load(tmp_path / "vs")
    assert np.array_equal(loaded.images, validation.images)
    assert np.array_equal(loaded.masks, validation.masks)
    assert loaded.strata == validation.strata and loaded.seed == validation.seed
    assert json.loads(manifest.read_text())["n_lesion_present"] == 24
    with np.load(npz) as data:
        arrays = dict(data)
    arrays["images"][0, 0, 0, 0] += 1
    np.savez_compressed(tmp_path / "vs" / NPZ_NAME, **arrays)
    with pytest.raises(ValidationSetError):
        ValidationSet.load(tmp_path / "vs")


def test_demo_models_reproduce_their_manifest_metrics(
    seg: LoadedModel, cls: LoadedModel, seg_eval: Evaluation, cls_eval: Evaluation
) -> None:
    for model, ev, key in ((seg, seg_eval, "dice_mean"), (cls, cls_eval, "auc")):
        expected = model.info.metrics["held_out"][key]
        print(
            f"\n{model.name}: {ev.metric} {ev.overall:.3f} (manifest {expected}), "
            f"per stratum {json.dumps(ev.per_stratum)}, p95 {ev.p95_latency_s * 1e3:.0f} ms"
        )
        assert ev.metric == key
        assert abs(ev.overall - expected) <= TOLERANCE
        assert fairness_gate(ev).passed  # the demo models are fair on the synthetic strata


def test_same_model_passes_every_gate_and_decides_fast(
    seg_eval: Evaluation, cls_eval: Evaluation
) -> None:
    reference = np.random.default_rng(1).normal(size=2000)
    recent = np.random.default_rng(2).normal(size=300)
    for ev in (seg_eval, cls_eval):
        report = run_gates(ev, ev, drift=(recent, reference))
        assert report.passed, report.to_json()
        assert [r.name for r in report.results] == ["accuracy", "fairness", "latency", "drift"]
        assert report.results[0].value == 0.0 and report.results[2].value == 1.0
        body = json.loads(report.to_json())
        assert body["passed"] and body["failed"] == []
        print(f"\nrun_gates decided in {report.decided_in_s * 1e6:.0f} µs")
        assert report.decided_in_s < 1.0


def test_perturbed_weights_fail_the_accuracy_gate(
    cls: LoadedModel, cls_eval: Evaluation, validation: ValidationSet
) -> None:
    worse = copy.deepcopy(cls.module)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in worse.parameters():
            scale = p.std() if p.numel() > 1 else p.abs()
            p.add_(torch.randn(p.shape, generator=generator) * 0.5 * scale)
    candidate = evaluate(worse, "classification", validation, repeats_for_latency=1)
    start = time.perf_counter()
    report = run_gates(candidate, cls_eval)
    elapsed = time.perf_counter() - start
    gate = accuracy_gate(candidate, cls_eval)
    print(f"\nperturbed classifier: {gate.detail}; blocked in {elapsed * 1e6:.0f} µs")
    assert not gate.passed and gate.value < -0.02
    assert not report.passed and "accuracy" in report.failed
    assert elapsed < 1.0


class _Slow(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module, seconds: float) -> None:
        super().__init__()
        self.inner, self.seconds = inner, seconds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.seconds)
        return self.inner(x)


def test_slow_candidate_fails_the_latency_gate(cls: LoadedModel, validation: ValidationSet) -> None:
    small = _subset(validation, np.arange(0, 16, 2))  # scanner A: draws 0-3 lesion, 4-7 none
    active = evaluate(cls, "classification", small, repeats_for_latency=1)
    slow = _Slow(cls.module, max(0.005, 2 * active.p95_latency_s))  # ratio >= 2 by design
    candidate = evaluate(slow, "classification", small, repeats_for_latency=1)
    gate = latency_gate(candidate, active)
    print(f"\nslow candidate: {gate.detail}")
    assert not gate.passed and gate.value > 1.5
    assert accuracy_gate(candidate, active).passed  # same outputs, only slower


def _evaluation(per_scanner: dict[str, float]) -> Evaluation:
    return Evaluation(
        task="segmentation",
        metric="dice_mean",
        overall=float(np.mean(list(per_scanner.values()))),
        per_stratum={"scanner": per_scanner, "sex": {"F": 0.6, "M": 0.62}},
        latencies_s=(0.01, 0.012),
        n_cases=16,
    )


def test_fairness_gate_flags_a_known_gap(seg_eval: Evaluation, cls_eval: Evaluation) -> None:
    unfair = fairness_gate(_evaluation({"A": 0.8, "B": 0.5}))
    assert not unfair.passed and unfair.value == pytest.approx(0.3)
    assert "scanner" in unfair.detail and unfair.extra["sex"] == pytest.approx(0.02)
    fair = fairness_gate(_evaluation({"A": 0.7, "B": 0.6}))
    assert fair.passed and fair.value == pytest.approx(0.1)
    assert not run_gates(
        _evaluation({"A": 0.8, "B": 0.5}), _evaluation({"A": 0.8, "B": 0.5})
    ).passed
    for ev in (seg_eval, cls_eval):
        print(f"\n{ev.metric} fairness: {fairness_gate(ev).detail}")


def test_drift_gate_psi_and_ks() -> None:
    rng = np.random.default_rng(42)
    reference = rng.normal(0.0, 1.0, 5000)
    same = drift_gate(rng.normal(0.0, 1.0, 500), reference)
    print(f"\nsame distribution: {same.detail}")
    assert same.passed and same.value < 0.1 and same.extra["ks_pvalue"] > 0.01
    shifted = drift_gate(rng.normal(0.5, 1.0, 500), reference)
    print(f"shifted by 0.5 sd: {shifted.detail}")
    assert not shifted.passed and shifted.value > 0.2 and shifted.extra["ks_pvalue"] < 0.01
    wider = drift_gate(rng.normal(0.0, 1.6, 500), reference)
    assert not wider.passed
    assert psi(reference, reference) == pytest.approx(0.0, abs=1e-9)
    assert not drift_gate([], reference).passed


def _monitor() -> CanaryMonitor:
    return CanaryMonitor(
        window=20, max_disagreement=0.2, max_latency_ratio=1.5, max_error_rate=0.1, min_samples=10
    )


def test_canary_continues_when_fine() -> None:
    monitor = _monitor()
    rng = np.random.default_rng(0)
    for i in range(200):
        d = monitor.record(i % 10 != 0, 0.1 + 0.01 * rng.random(), 0.1, error=False)
        assert d.action == "continue", d


def test_canary_rolls_back_on_disagreement_latency_and_errors() -> None:
    monitor = _monitor()
    decisions = [monitor.record(False, 0.1, 0.1, False) for _ in range(10)]
    assert all(d.action == "continue" for d in decisions[:9])  # never before min_samples
    assert decisions[9].rollback and "disagreement" in decisions[9].reason
    assert monitor.record(True, 0.1, 0.1, False).rollback  # a rollback is final

    monitor = _monitor()
    for _ in range(10):
        monitor.record(True, 0.1, 0.1, False)
    decisions = [monitor.record(True, 0.5, 0.1, False) for _ in range(20)]
    first = next(i for i, d in enumerate(decisions) if d.rollback)
    # the window's median latency crosses 1.5 x the active's once half the window is slow
    assert first == 9 and "latency" in decisions[first].reason

    monitor = _monitor()
    for _ in range(15):
        monitor.record(True, 0.1, 0.1, False)
    start = time.perf_counter()
    first_error = monitor.record(True, float("nan"), 0.1, True)  # 1/16 errors
    second_error = monitor.record(True, float("nan"), 0.1, True)  # 2/17 > 0.1
    elapsed = time.perf_counter() - start
    assert not first_error.rollback
    assert second_error.rollback and second_error.reason.startswith("error rate")
    print(f"\ncanary rollback decided in {elapsed * 1e6:.0f} µs (2 records)")

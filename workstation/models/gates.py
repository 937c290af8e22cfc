"""Validation gates before a model update is promoted, and a canary monitor that rolls back.

:func:`evaluate` runs a model on a bundle's reference :class:`ValidationSet` on this machine:
the task's metric (mean Dice over lesion-present cases for segmentation, ROC AUC for
classification), overall and per stratum value, and per-case forward latencies. The gates:

* :func:`accuracy_gate` — the candidate's metric is not worse than the active version's by more
  than ``margin``;
* :func:`fairness_gate` — the largest gap of the metric across the values of any stratum is at
  most ``max_gap``;
* :func:`latency_gate` — candidate p95 latency / active p95 latency is at most ``max_ratio``;
* :func:`drift_gate` — recent input statistics vs the training reference: Population Stability
  Index (10 quantile bins of the reference) at most ``max_psi`` and two-sample KS p-value at
  least ``alpha``.

:func:`run_gates` combines them into a :class:`GateReport` (any failure blocks promotion).
:class:`CanaryMonitor` watches a canary (candidate run beside the active model) and decides
"rollback" as soon as its window's disagreement, latency ratio or error rate crosses a threshold.

Qt-free; torch is imported inside :func:`evaluate`.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from scipy.stats import ks_2samp

from workstation.models.validation_set import ValidationSet

if TYPE_CHECKING:
    import torch

    from workstation.inference.catalogue import LoadedModel

__all__ = [
    "CanaryMonitor",
    "Decision",
    "Evaluation",
    "GateReport",
    "GateResult",
    "accuracy_gate",
    "auc",
    "dice",
    "drift_gate",
    "evaluate",
    "fairness_gate",
    "latency_gate",
    "psi",
    "run_gates",
]

METRICS = {"segmentation": "dice_mean", "classification": "auc"}


@dataclass(frozen=True)
class Evaluation:
    """A model's results on a validation set, on this machine."""

    task: str
    metric: str  # "dice_mean" | "auc"
    overall: float
    per_stratum: Mapping[str, Mapping[str, float]]  # stratum -> value -> metric
    latencies_s: tuple[float, ...]
    n_cases: int

    @property
    def p95_latency_s(self) -> float:
        return float(np.percentile(self.latencies_s, 95)) if self.latencies_s else math.nan

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"p95_latency_s": self.p95_latency_s}


@dataclass(frozen=True)
class GateResult:
    """One gate's verdict: ``value`` compared with ``threshold``, explained in ``detail``."""

    name: str
    passed: bool
    value: float
    threshold: float
    detail: str
    extra: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class GateReport:
    """All gates; promotion is allowed only when every one passed."""

    results: tuple[GateResult, ...]
    decided_in_s: float = 0.0

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failed(self) -> list[str]:
        return [r.name for r in self.results if not r.passed]

    def to_json(self) -> str:
        body = {
            "passed": self.passed,
            "failed": self.failed,
            "decided_in_s": self.decided_in_s,
            "gates": [asdict(r) | {"extra": dict(r.extra)} for r in self.results],
        }
        return json.dumps(body, indent=2, allow_nan=True)


def dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Dice of two binary masks (1.0 when both are empty)."""
    p, t = prediction.astype(bool), truth.astype(bool)
    total = int(p.sum() + t.sum())
    return 1.0 if total == 0 else 2.0 * int((p & t).sum()) / total


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC = P(positive score > negative score), ties half; NaN without both classes."""
    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool)
    pos, neg = scores[labels], scores[~labels]
    if pos.size == 0 or neg.size == 0:
        return math.nan
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + ties / 2)


def _metric(task: str, outputs: np.ndarray, validation: ValidationSet, sel: np.ndarray) -> float:
    if task == "segmentation":
        keep = sel & validation.present  # Dice is defined on lesion-present cases
        if not keep.any():
            return math.nan
        idx = np.flatnonzero(keep)
        return float(np.mean([dice(outputs[i], validation.masks[i]) for i in idx]))
    return auc(outputs[sel], validation.present[sel])


def evaluate(
    model: LoadedModel | torch.nn.Module,
    task: str,
    validation: ValidationSet,
    *,
    repeats_for_latency: int = 5,
) -> Evaluation:
    """Run ``model`` on every case of ``validation`` (one case per forward, CPU or its device).

    The metric comes from one pass over the cases (segmentation: the lesion-present ones, where
    Dice is defined); latency samples are the per-case forward times of that pass plus
    ``repeats_for_latency - 1`` further timed forwards of the first case, all after one warm-up
    forward. Call on an otherwise idle machine: the latency gate compares p95s.
    """
    import torch

    if task not in METRICS:
        raise ValueError(f"unknown task {task!r}; expected one of {sorted(METRICS)}")
    module = model if isinstance(model, torch.nn.Module) else model.module
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    was_training = module.training
    module.eval()
    latencies: list[float] = []
    outputs: list[np.ndarray] = []

    def forward(index: int) -> torch.Tensor:
        x = torch.from_numpy(validation.image(index))[None, None].to(device)
        start = time.perf_counter()
        y = module(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        latencies.append(time.perf_counter() - start)
        return y

    try:
        with torch.no_grad():
            forward(0)
            latencies.clear()  # warm-up
            for i in range(len(validation)):
                if task == "segmentation" and not validation.present[i]:
                    outputs.append(np.zeros(validation.masks.shape[1:], dtype=np.uint8))
                    continue  # not scored: Dice is defined on lesion-present cases
                y = forward(i).float().cpu()
                if task == "segmentation":
                    outputs.append(y.argmax(1)[0].numpy().astype(np.uint8))
                else:
                    outputs.append(torch.sigmoid(y).reshape(-1)[:1].numpy())
            for _ in range(max(repeats_for_latency - 1, 0)):
                forward(0)
    finally:
        module.train(was_training)
    stacked = np.stack(outputs) if task == "segmentation" else np.concatenate(outputs)
    everything = np.ones(len(validation), dtype=bool)
    per_stratum = {
        name: {
            value: _metric(task, stacked, validation, np.asarray(labels) == value)
            for value in sorted(set(labels))
        }
        for name, labels in validation.strata.items()
    }
    return Evaluation(
        task=task,
        metric=METRICS[task],
        overall=_metric(task, stacked, validation, everything),
        per_stratum=per_stratum,
        latencies_s=tuple(latencies),
        n_cases=len(validation),
    )


def accuracy_gate(candidate: Evaluation, active: Evaluation, *, margin: float = 0.02) -> GateResult:
    """Pass when ``candidate.overall >= active.overall - margin`` (value: the difference)."""
    if candidate.metric != active.metric:
        raise ValueError(f"cannot compare {candidate.metric} with {active.metric}")
    delta = candidate.overall - active.overall
    passed = bool(np.isfinite(delta) and delta >= -margin)
    detail = (
        f"{candidate.metric} {candidate.overall:.4f} vs active {active.overall:.4f} "
        f"(delta {delta:+.4f}, allowed -{margin})"
    )
    return GateResult("accuracy", passed, float(delta), -margin, detail)


def fairness_gate(candidate: Evaluation, *, max_gap: float = 0.15) -> GateResult:
    """Pass when, for every stratum, max - min of the metric over its values is <= ``max_gap``."""
    gaps: dict[str, float] = {}
    for name, values in candidate.per_stratum.items():
        finite = [v for v in values.values() if np.isfinite(v)]
        gaps[name] = max(finite) - min(finite) if len(finite) >= 2 else math.nan
    known = {k: v for k, v in gaps.items() if np.isfinite(v)}
    if not known:
        return GateResult("fairness", False, math.nan, max_gap, "no stratum has two scored values")
    worst = max(known, key=known.__getitem__)
    gap = known[worst]
    values = dict(candidate.per_stratum[worst])
    detail = f"largest {candidate.metric} gap {gap:.4f} across {worst} {values}"
    return GateResult("fairness", bool(gap <= max_gap), float(gap), max_gap, detail, gaps)


def latency_gate(
    candidate: Evaluation, active: Evaluation, *, max_ratio: float = 1.5
) -> GateResult:
    """Pass when candidate p95 / active p95 latency is at most ``max_ratio``."""
    ratio = candidate.p95_latency_s / active.p95_latency_s
    detail = (
        f"p95 {candidate.p95_latency_s * 1e3:.1f} ms vs active "
        f"{active.p95_latency_s * 1e3:.1f} ms (x{ratio:.2f}, allowed x{max_ratio})"
    )
    return GateResult(
        "latency", bool(np.isfinite(ratio) and ratio <= max_ratio), float(ratio), max_ratio, detail
    )


def psi(recent: np.ndarray, reference: np.ndarray, *, bins: int = 10, eps: float = 1e-4) -> float:
    """Population Stability Index of ``recent`` against ``bins`` quantile bins of ``reference``."""
    reference = np.asarray(reference, dtype=float).ravel()
    recent = np.asarray(recent, dtype=float).ravel()
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    expected = np.bincount(
        np.searchsorted(edges, reference, side="right"), minlength=edges.size + 1
    )
    actual = np.bincount(np.searchsorted(edges, recent, side="right"), minlength=edges.size + 1)
    p = np.clip(expected / expected.sum(), eps, None)
    q = np.clip(actual / actual.sum(), eps, None)
    return float(np.sum((q - p) * np.log(q / p)))


def drift_gate(
    recent_stats: Sequence[float] | np.ndarray,
    training_reference: np.ndarray,
    *,
    max_psi: float = 0.2,
    alpha: float = 0.01,
) -> GateResult:
    """Pass when PSI <= ``max_psi`` and the two-sample KS test does not reject at ``alpha``."""
    recent = np.asarray(recent_stats, dtype=float).ravel()
    reference = np.asarray(training_reference, dtype=float).ravel()
    if recent.size == 0 or reference.size == 0:
        return GateResult("drift", False, math.nan, max_psi, "no samples to compare")
    index = psi(recent, reference)
    ks = ks_2samp(recent, reference)
    passed = bool(index <= max_psi and ks.pvalue >= alpha)
    detail = (
        f"PSI {index:.4f} (max {max_psi}), KS D {ks.statistic:.4f} p {ks.pvalue:.3g} "
        f"(alpha {alpha}), n recent {recent.size}, n reference {reference.size}"
    )
    extra = {"psi": index, "ks_statistic": float(ks.statistic), "ks_pvalue": float(ks.pvalue)}
    return GateResult("drift", passed, index, max_psi, detail, extra)


def run_gates(
    candidate_eval: Evaluation,
    active_eval: Evaluation,
    *,
    drift: GateResult | tuple[Sequence[float] | np.ndarray, np.ndarray] | None = None,
    margin: float = 0.02,
    max_gap: float = 0.15,
    max_ratio: float = 1.5,
) -> GateReport:
    """Accuracy, fairness and latency gates (and drift: a result or ``(recent, reference)``)."""
    start = time.perf_counter()
    results = [
        accuracy_gate(candidate_eval, active_eval, margin=margin),
        fairness_gate(candidate_eval, max_gap=max_gap),
        latency_gate(candidate_eval, active_eval, max_ratio=max_ratio),
    ]
    if isinstance(drift, GateResult):
        results.append(drift)
    elif drift is not None:
        results.append(drift_gate(*drift))
    return GateReport(tuple(results), decided_in_s=time.perf_counter() - start)


@dataclass(frozen=True)
class Decision:
    """A canary verdict: ``"continue"`` or ``"rollback"`` with the reason."""

    action: Literal["continue", "rollback"]
    reason: str = ""
    n: int = 0  # samples in the window

    @property
    def rollback(self) -> bool:
        return self.action == "rollback"


@dataclass
class CanaryMonitor:
    """Sliding-window watch of a canary; rolls back when a rate or ratio crosses its threshold.

    Over the last ``window`` records (and only once ``min_samples`` are in): the fraction where
    candidate and active disagreed > ``max_disagreement``, the candidate's median latency over the
    active's median > ``max_latency_ratio``, or the error fraction > ``max_error_rate`` → rollback.
    A rollback is final: later records return the same decision.
    """

    window: int
    max_disagreement: float
    max_latency_ratio: float
    max_error_rate: float
    min_samples: int = 5
    _records: deque[tuple[bool, float, float, bool]] = field(init=False, repr=False)
    _decision: Decision | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        if self.window < 1 or self.min_samples < 1:
            raise ValueError("window and min_samples must be >= 1")
        self.min_samples = min(self.min_samples, self.window)
        self._records = deque(maxlen=self.window)

    def record(
        self, agree: bool, latency_s: float, active_latency_s: float, error: bool
    ) -> Decision:
        """Add one canary observation and decide."""
        if self._decision is not None:
            return self._decision
        self._records.append((bool(agree), float(latency_s), float(active_latency_s), bool(error)))
        n = len(self._records)
        if n < self.min_samples:
            return Decision("continue", f"{n}/{self.min_samples} samples", n)
        agree_, lat, active, err = zip(*self._records, strict=True)
        disagreement = 1.0 - float(np.mean(agree_))
        error_rate = float(np.mean(err))
        ok = [(c, a) for c, a in zip(lat, active, strict=True) if np.isfinite(c) and np.isfinite(a)]
        ratio = math.nan
        if ok:
            denominator = float(np.median([a for _, a in ok]))
            ratio = (
                float(np.median([c for c, _ in ok])) / denominator if denominator > 0 else math.inf
            )
        reasons = []
        if disagreement > self.max_disagreement:
            reasons.append(f"disagreement {disagreement:.2f} > {self.max_disagreement}")
        if ratio > self.max_latency_ratio:  # NaN (no latencies) never triggers
            reasons.append(f"latency ratio {ratio:.2f} > {self.max_latency_ratio}")
        if error_rate > self.max_error_rate:
            reasons.append(f"error rate {error_rate:.2f} > {self.max_error_rate}")
        if reasons:
            self._decision = Decision("rollback", "; ".join(reasons) + f" over {n} samples", n)
            return self._decision
        return Decision("continue", "within thresholds", n)

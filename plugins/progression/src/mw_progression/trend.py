"""Rates of change per region, and a "what-if" treatment simulation built on them.

``fit_trend``: weighted linear least squares ``v(t) = a + b t`` with weights ``1 / sigma²``. With
two timepoints the slope's uncertainty is the measurement error propagated; with three or more
the covariance is scaled by the reduced chi-square when that exceeds 1 (residual scatter beyond
the stated errors) and the 95 % interval uses Student's t with n − 2 degrees of freedom.
Percentages are relative to the fitted baseline value ``a`` (its own uncertainty ignored).

``simulate``: **a simulation, not a prediction.** From ``start`` on, the fitted rate is multiplied
by ``1 − effect`` (``effect`` = assumed fraction by which the change is slowed, 0…1). Bands
propagate the fit's covariance only; the assumed effect is taken as exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

__all__ = ["SIMULATION_LABEL", "Simulation", "TrendFit", "fit_trend", "simulate"]

MIN_PERCENT_BASE_ML = 0.5  # below this, a rate in % of the baseline is not shown

SIMULATION_LABEL = "SIMULATION: assumed effect, not a prediction"


@dataclass(frozen=True)
class TrendFit:
    """A fitted linear trend of one region."""

    region: str
    times: tuple[float, ...]
    values: tuple[float, ...]
    sigmas: tuple[float, ...]
    intercept: float
    rate: float  # mL / year
    covariance: tuple[tuple[float, float], tuple[float, float]]
    critical: float  # multiplier for the 95 % interval
    dof: int

    @property
    def rate_se(self) -> float:
        """Standard error of the rate (mL/yr)."""
        return float(np.sqrt(self.covariance[1][1]))

    @property
    def ci95(self) -> tuple[float, float]:
        """95 % interval of the rate (mL/yr)."""
        half = self.critical * self.rate_se
        return (self.rate - half, self.rate + half)

    @property
    def _percent_base(self) -> float:
        """The fitted baseline, or NaN when it is too small for a percentage to mean anything
        (below :data:`MIN_PERCENT_BASE_ML`, e.g. a lesion that appears after the baseline)."""
        return self.intercept if self.intercept >= MIN_PERCENT_BASE_ML else float("nan")

    @property
    def rate_percent(self) -> float:
        """Rate in % of the fitted baseline value per year (NaN: baseline too small)."""
        return 100.0 * self.rate / self._percent_base

    @property
    def ci95_percent(self) -> tuple[float, float]:
        """95 % interval in %/yr (NaN: baseline too small)."""
        lo, hi = self.ci95
        return (100.0 * lo / self._percent_base, 100.0 * hi / self._percent_base)

    def predict(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fitted value and its standard error at times ``t``."""
        t = np.asarray(t, dtype=float)
        cov = np.asarray(self.covariance)
        var = cov[0, 0] + 2 * t * cov[0, 1] + t**2 * cov[1, 1]
        return self.intercept + self.rate * t, np.sqrt(np.maximum(var, 0.0))

    def to_json(self) -> dict[str, Any]:
        """JSON-able summary."""
        return {
            "region": self.region,
            "rate_ml_per_year": self.rate,
            "ci95_ml_per_year": list(self.ci95),
            "rate_percent_per_year": self.rate_percent,
            "ci95_percent_per_year": list(self.ci95_percent),
            "baseline_fit_ml": self.intercept,
            "timepoints": len(self.times),
        }


def fit_trend(
    times: Sequence[float], values: Sequence[float], sigmas: Sequence[float], region: str = ""
) -> TrendFit:
    """Weighted least-squares line through ``(times, values ± sigmas)`` (at least 2 points)."""
    t = np.asarray(times, dtype=float)
    y = np.asarray(values, dtype=float)
    s = np.asarray(sigmas, dtype=float)
    if t.size < 2 or t.size != y.size or t.size != s.size:
        raise ValueError("need at least two timepoints, each with a value and an uncertainty")
    if np.ptp(t) <= 0:
        raise ValueError("the timepoints must differ")
    if np.any(s <= 0):
        raise ValueError("uncertainties must be positive")
    x = np.column_stack([np.ones_like(t), t])
    w = 1.0 / s**2
    cov = np.linalg.inv(x.T @ (x * w[:, None]))
    a, b = cov @ (x.T @ (w * y))
    dof = t.size - 2
    critical = float(stats.norm.ppf(0.975))
    if dof > 0:
        chi2 = float(np.sum(w * (y - (a + b * t)) ** 2)) / dof
        if chi2 > 1.0:
            cov = cov * chi2
            critical = float(stats.t.ppf(0.975, dof))
    return TrendFit(
        region,
        tuple(t.tolist()),
        tuple(y.tolist()),
        tuple(s.tolist()),
        float(a),
        float(b),
        ((float(cov[0, 0]), float(cov[0, 1])), (float(cov[1, 0]), float(cov[1, 1]))),
        critical,
        dof,
    )


@dataclass(frozen=True)
class Simulation:
    """Natural course vs simulated treatment for one region (a simulation, not a prediction)."""

    region: str
    effect: float
    start: float
    times: np.ndarray
    natural: np.ndarray
    natural_band: tuple[np.ndarray, np.ndarray]
    treated: np.ndarray
    treated_band: tuple[np.ndarray, np.ndarray]
    label: str = field(default=SIMULATION_LABEL)

    def to_json(self) -> dict[str, Any]:
        """JSON-able form (lists), labelled as a simulation."""

        def r(a: np.ndarray) -> list[float]:
            return [round(float(v), 4) for v in a]

        return {
            "label": self.label,
            "region": self.region,
            "assumed_effect": self.effect,
            "start_years": self.start,
            "years": r(self.times),
            "natural_ml": r(self.natural),
            "natural_ci95_ml": [r(self.natural_band[0]), r(self.natural_band[1])],
            "treated_ml": r(self.treated),
            "treated_ci95_ml": [r(self.treated_band[0]), r(self.treated_band[1])],
        }


def simulate(
    fit: TrendFit,
    effect: float,
    horizon_years: float,
    *,
    start: float | None = None,
    points: int = 61,
) -> Simulation:
    """Project ``fit`` ``horizon_years`` past its last timepoint, untreated and with the rate
    slowed by ``effect`` (0: natural course, 1: change halted) from ``start`` (default: the last
    timepoint). Bands are 95 % intervals from the fit's covariance."""
    if not 0.0 <= effect <= 1.0:
        raise ValueError(f"effect must be within 0..1, got {effect}")
    if horizon_years < 0:
        raise ValueError("horizon_years must not be negative")
    last = max(fit.times)
    start = last if start is None else float(start)
    t = np.linspace(min(fit.times), last + horizon_years, points)
    natural, natural_se = fit.predict(t)
    # treated(t) = a + b * tau(t), tau = t before start, start + (1 - effect)(t - start) after
    tau = np.where(t <= start, t, start + (1.0 - effect) * (t - start))
    treated, treated_se = fit.predict(tau)
    k = fit.critical
    return Simulation(
        fit.region,
        float(effect),
        start,
        t,
        natural,
        (natural - k * natural_se, natural + k * natural_se),
        treated,
        (treated - k * treated_se, treated + k * treated_se),
    )

"""The whole analysis on loaded volumes (Qt-free; shared by the pipeline and the panel)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mw_progression.change import change_map, log_jacobian
from mw_progression.regions import REGIONS, RegionVolumes, intensity_scale, measure
from mw_progression.registration import Registration, register
from mw_progression.trend import SIMULATION_LABEL, Simulation, TrendFit, fit_trend, simulate
from workstation.core.tasks import CancelToken, ProgressFn, check_cancel, throttled
from workstation.core.volume import Volume

__all__ = [
    "DISCLAIMER",
    "Analysis",
    "analyse",
    "measurement_sigma",
    "resimulate",
    "years_between",
]

DISCLAIMER = (
    "Demonstration, not for clinical use. Volumes come from a simple intensity-based method; "
    f"projections are a {SIMULATION_LABEL.lower()}: an assumed treatment effect applied to a "
    "linear trend, not a forecast for any patient."
)


def measurement_sigma(region: str, volume_ml: float) -> float:
    """Assumed (not measured) 1-sigma measurement error of a regional volume, in mL."""
    if region == "parenchyma":
        return max(0.002 * volume_ml, 0.5)
    if region == "ventricles":
        return max(0.02 * volume_ml, 0.1)
    return 0.05 * volume_ml + 0.05


def years_between(dates: Sequence[str]) -> list[float] | None:
    """Years from the first ``YYYYMMDD`` date (None when any date is missing or invalid)."""
    try:
        parsed = [dt.datetime.strptime(d, "%Y%m%d").date() for d in dates]
    except (TypeError, ValueError):
        return None
    return [(d - parsed[0]).days / 365.25 for d in parsed]


@dataclass
class Analysis:
    """Everything computed for one patient's series (first = baseline)."""

    times: list[float]
    volumes: list[RegionVolumes]
    registrations: list[Registration]
    scales: list[float]
    fits: list[TrendFit]
    change: Volume | None
    log_jacobian: Volume | None = None
    simulations: list[Simulation] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The JSON summary (no images)."""
        return {
            "disclaimer": DISCLAIMER,
            "timepoints": [
                {"years": t, "intensity_scale": s, **v.to_json()}
                for t, s, v in zip(self.times, self.scales, self.volumes, strict=True)
            ],
            "rates": {f.region: f.to_json() for f in self.fits},
            "registration": [r.to_json() for r in self.registrations],
            "simulation": {
                "label": SIMULATION_LABEL,
                "regions": {s.region: s.to_json() for s in self.simulations},
            },
        }


def analyse(
    volumes: Sequence[Volume],
    times: Sequence[float],
    *,
    bspline: bool = False,
    effect: float = 0.5,
    horizon: float = 5.0,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> Analysis:
    """Register, measure, fit and simulate; ``volumes[0]`` is the baseline."""
    if len(volumes) < 2 or len(volumes) != len(times):
        raise ValueError("need a baseline and at least one follow-up, each with a time")
    report = throttled(progress)
    steps = 2 * len(volumes) + 1
    baseline = volumes[0]
    report(0, steps, "measuring baseline")
    measured = [measure(baseline)]
    anchors = measured[0].class_means
    registrations: list[Registration] = []
    scales = [1.0]
    for n, followup in enumerate(volumes[1:], start=1):
        check_cancel(cancel)
        report(2 * n - 1, steps, f"registering timepoint {n + 1} of {len(volumes)}")
        registrations.append(register(baseline, followup, bspline=bspline, cancel=cancel))
        check_cancel(cancel)
        report(2 * n, steps, f"measuring timepoint {n + 1}")
        scale = intensity_scale(baseline, registrations[-1].resampled, anchors)
        scales.append(scale)
        measured.append(measure(followup, tuple(a * scale for a in anchors)))
    check_cancel(cancel)
    fits = [
        fit_trend(
            times,
            [v.get(region) for v in measured],
            [measurement_sigma(region, v.get(region)) for v in measured],
            region,
        )
        for region in REGIONS
    ]
    last = registrations[-1]
    analysis = Analysis(
        list(times),
        measured,
        registrations,
        scales,
        fits,
        change_map(baseline, last.resampled, scales[-1]),
        log_jacobian(last.transform, baseline) if bspline else None,
    )
    resimulate(analysis, effect, horizon)
    report(steps, steps, "done")
    return analysis


def resimulate(analysis: Analysis, effect: float, horizon: float) -> list[Simulation]:
    """Recompute the simulations (cheap: no images) and store them in ``analysis``."""
    analysis.simulations = [simulate(f, effect, horizon) for f in analysis.fits]
    return analysis.simulations

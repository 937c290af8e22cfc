"""The trend figure: measured volumes, fitted trend, simulated natural vs treated courses."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from mw_progression.trend import SIMULATION_LABEL, Simulation, TrendFit

__all__ = ["trend_figure"]

TITLES = {"parenchyma": "Parenchyma", "ventricles": "Ventricles", "lesion": "Lesion"}


def trend_figure(
    fits: Sequence[TrendFit], simulations: Sequence[Simulation], figure: Figure | None = None
) -> Figure:
    """Draw one panel per region onto ``figure`` (a new Agg-safe ``Figure`` when None)."""
    figure = figure or Figure(figsize=(4.0 * max(len(fits), 1), 4.2), layout="constrained")
    figure.clear()
    by_region = {s.region: s for s in simulations}
    axes = figure.subplots(1, max(len(fits), 1), squeeze=False)[0]
    for ax, fit in zip(axes, fits, strict=False):
        sim = by_region.get(fit.region)
        if sim is not None:
            ax.axvspan(sim.start, sim.times[-1], color="0.93", zorder=0)
            ax.fill_between(sim.times, *sim.natural_band, color="tab:red", alpha=0.12)
            ax.plot(sim.times, sim.natural, "--", color="tab:red", label="natural course (sim.)")
            ax.fill_between(sim.times, *sim.treated_band, color="tab:green", alpha=0.15)
            ax.plot(
                sim.times,
                sim.treated,
                "--",
                color="tab:green",
                label=f"treated, {100 * sim.effect:.0f} % effect (sim.)",
            )
            ax.text(
                0.02,
                0.02,
                "SIMULATION",
                transform=ax.transAxes,
                fontsize=9,
                color="0.35",
                weight="bold",
            )
        t0, t1 = min(fit.times), max(fit.times)
        tt = np.linspace(t0, t1, 20)
        mean, se = fit.predict(tt)
        ax.fill_between(tt, mean - fit.critical * se, mean + fit.critical * se, alpha=0.25)
        ax.plot(tt, mean, color="tab:blue", label="fitted trend (95 % band)")
        ax.errorbar(
            fit.times, fit.values, yerr=fit.sigmas, fmt="o", color="k", capsize=3, label="measured"
        )
        lo, hi = fit.ci95_percent
        unit = "%/yr"
        if not np.isfinite(fit.rate_percent):  # baseline ≈ 0: say it in mL/yr
            (lo, hi), unit = fit.ci95, "mL/yr"
        rate = fit.rate_percent if unit == "%/yr" else fit.rate
        ax.set_title(
            f"{TITLES.get(fit.region, fit.region)}: {rate:+.2f} {unit}\n"
            f"(95 % CI {lo:+.2f} … {hi:+.2f})",
            fontsize=10,
        )
        ax.set_xlabel("years from baseline")
        ax.set_ylabel("volume (mL)")
        ax.grid(alpha=0.3)
    if fits:
        axes[0].legend(fontsize=7, loc="best")
    figure.suptitle(
        f"Measured volumes and trend; projections: {SIMULATION_LABEL} "
        "(demonstration, not for clinical use)",
        fontsize=9,
    )
    return figure

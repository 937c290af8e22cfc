"""Trend fits and CIs on constructed numbers; simulation semantics."""

from __future__ import annotations

import numpy as np
import pytest


def test_two_points_propagate_the_measurement_error():
    from mw_progression.trend import fit_trend

    fit = fit_trend([0.0, 2.0], [100.0, 96.0], [1.0, 1.0], "parenchyma")
    assert fit.rate == pytest.approx(-2.0)
    assert fit.intercept == pytest.approx(100.0)
    assert fit.rate_se == pytest.approx(np.sqrt(2.0) / 2.0)  # sqrt(1 + 1) / 2 years
    lo, hi = fit.ci95
    assert lo == pytest.approx(-2.0 - 1.959964 * np.sqrt(0.5), rel=1e-5)
    assert hi == pytest.approx(-2.0 + 1.959964 * np.sqrt(0.5), rel=1e-5)
    assert fit.rate_percent == pytest.approx(-2.0)


def test_three_points_include_the_residual_error():
    from mw_progression.trend import fit_trend

    times, values = [0.0, 1.0, 2.0], [10.0, 12.0, 13.0]
    tight = fit_trend(times, values, [0.01, 0.01, 0.01])
    slope, intercept = np.polyfit(times, values, 1)
    assert tight.rate == pytest.approx(slope)
    assert tight.intercept == pytest.approx(intercept)
    residual = np.asarray(values) - (intercept + slope * np.asarray(times))
    se = np.sqrt(np.sum(residual**2) / 1 / 2.0)  # s² / Sxx, Sxx = 2
    assert tight.rate_se == pytest.approx(se, rel=1e-6)
    assert tight.critical == pytest.approx(12.7062, rel=1e-4)  # Student t, 1 dof
    loose = fit_trend(times, values, [2.0, 2.0, 2.0])  # residuals within the errors
    assert loose.rate_se == pytest.approx(2.0 / np.sqrt(2.0))
    assert loose.critical == pytest.approx(1.959964, rel=1e-5)


def test_bad_inputs_are_refused():
    from mw_progression.trend import fit_trend, simulate

    with pytest.raises(ValueError):
        fit_trend([0.0], [1.0], [1.0])
    with pytest.raises(ValueError):
        fit_trend([1.0, 1.0], [1.0, 2.0], [1.0, 1.0])
    fit = fit_trend([0.0, 1.0], [1.0, 2.0], [0.1, 0.1])
    with pytest.raises(ValueError):
        simulate(fit, 1.5, 5.0)


def test_simulation_semantics():
    from mw_progression.trend import SIMULATION_LABEL, fit_trend, simulate

    fit = fit_trend([0.0, 1.0, 2.0], [1000.0, 985.0, 970.5], [2.0, 2.0, 2.0], "parenchyma")
    none = simulate(fit, 0.0, 5.0)
    np.testing.assert_allclose(none.treated, none.natural)
    np.testing.assert_allclose(none.treated_band, none.natural_band)
    halted = simulate(fit, 1.0, 5.0)
    after = halted.times >= halted.start
    np.testing.assert_allclose(halted.treated[after], halted.treated[after][0])
    before = halted.times <= halted.start
    np.testing.assert_allclose(halted.treated[before], halted.natural[before])
    half = simulate(fit, 0.5, 5.0, start=1.0)
    end_change = half.treated[-1] - fit.predict(np.array([1.0]))[0][0]
    assert end_change == pytest.approx(0.5 * fit.rate * (half.times[-1] - 1.0))
    assert half.times[-1] == pytest.approx(7.0)
    for sim in (none, halted, half):
        assert sim.label == SIMULATION_LABEL
        assert sim.to_json()["label"].startswith("SIMULATION")
        assert np.all(sim.treated_band[0] <= sim.treated)
        assert np.all(sim.treated <= sim.treated_band[1])

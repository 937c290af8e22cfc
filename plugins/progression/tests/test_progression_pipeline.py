"""The pipeline on the demo follow-ups recovers the synthetic change (truth.json).

Tolerances (also in the plugin README), against the realised truth rates (least-squares slopes
of the truth volumes; nominal −1.5 %/yr atrophy, +40 %/yr lesion growth):

- parenchymal atrophy: within ±0.3 percentage points/yr of the true %/yr, and within ±20 % of
  the true mL/yr;
- lesion growth: within ±5 percentage points/yr (of baseline volume) and ±15 % of the true mL/yr.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workstation.core.errors import Cancelled
from workstation.core.tasks import CancelToken

DEMO = Path(__file__).resolve().parents[3] / "resources" / "demo"
SERIES = {
    "baseline": DEMO / "brain_mr_lesion",
    "month12": DEMO / "followups" / "month12",
    "month24": DEMO / "followups" / "month24",
}

ATROPHY_PP, ATROPHY_REL = 0.3, 0.20
LESION_PP, LESION_REL = 5.0, 0.15


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from mw_progression.pipeline import ProgressionPipeline

    out = tmp_path_factory.mktemp("progression")
    reports = []
    summary = ProgressionPipeline().run(
        list(SERIES.values()),
        out,
        {"effect": "0.5", "horizon": "5"},
        progress=lambda done, total, message="": reports.append((done, total, message)),
    )
    return summary, out, reports


@pytest.mark.slow
def test_pipeline_recovers_the_synthetic_atrophy_and_lesion_growth(run):
    summary, _, _ = run
    truth = json.loads((DEMO / "followups" / "truth.json").read_text())["realised_rates"]
    parenchyma, lesion = summary["rates"]["parenchyma"], summary["rates"]["lesion"]
    true_p, true_l = truth["parenchyma"], truth["lesion"]
    assert abs(parenchyma["rate_percent_per_year"] - true_p["percent_per_year"]) < ATROPHY_PP
    assert parenchyma["rate_ml_per_year"] == pytest.approx(true_p["ml_per_year"], rel=ATROPHY_REL)
    assert abs(lesion["rate_percent_per_year"] - true_l["percent_per_year"]) < LESION_PP
    assert lesion["rate_ml_per_year"] == pytest.approx(true_l["ml_per_year"], rel=LESION_REL)
    lo, hi = parenchyma["ci95_ml_per_year"]
    assert lo < parenchyma["rate_ml_per_year"] < hi < 0  # atrophy detected
    assert summary["rates"]["ventricles"]["rate_ml_per_year"] > 0  # ventricles enlarge


@pytest.mark.slow
def test_pipeline_outputs(run):
    _, out, reports = run
    assert {p.name for p in out.iterdir()} >= {
        "progression.json",
        "change_map.nii.gz",
        "trend.png",
    }
    written = json.loads((out / "progression.json").read_text())
    assert "not for clinical use" in written["disclaimer"]
    assert written["simulation"]["label"].startswith("SIMULATION")
    for region in written["simulation"]["regions"].values():
        assert region["label"].startswith("SIMULATION")
    assert [round(t["years"], 2) for t in written["timepoints"]] == [0.0, 1.0, 2.0]
    assert written["study_dates"] == ["20260101", "20270101", "20280101"]
    assert len(written["registration"]) == 2
    assert reports[-1][0] == reports[-1][1]
    import SimpleITK as sitk

    change = sitk.ReadImage(str(out / "change_map.nii.gz"))
    assert change.GetSize() == (197, 233, 189)


def test_parameters_are_checked():
    from mw_progression.pipeline import parse_parameters

    assert parse_parameters({}) == {
        "bspline": False,
        "effect": 0.5,
        "horizon": 5.0,
        "times": None,
    }
    assert parse_parameters({"times": "0,1,2.5", "bspline": "1"})["times"] == [0.0, 1.0, 2.5]
    for bad in ({"effect": "2"}, {"horizon": "-1"}, {"bspline": "maybe"}, {"colour": "red"}):
        with pytest.raises(ValueError):
            parse_parameters(bad)


def test_cancel_stops_the_pipeline(tmp_path):
    from mw_progression.pipeline import ProgressionPipeline

    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        ProgressionPipeline().run(list(SERIES.values()), tmp_path, {}, cancel=token)
    assert not (tmp_path / "progression.json").exists()


def test_pipeline_satisfies_the_protocol():
    from mw_progression.pipeline import ProgressionPipeline

    from workstation.plugins.api import Pipeline

    assert isinstance(ProgressionPipeline(), Pipeline)

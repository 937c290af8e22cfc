"""The Progression panel against a small fake host (a test double of PanelContext)."""

from __future__ import annotations

from pathlib import Path

import pytest

from workstation.core.tasks import CancelToken
from workstation.plugins.api import Panel, SeriesInfo


class FakeContext:
    """A PanelContext that runs tasks synchronously and records overlays."""

    def __init__(self, volumes: dict, current=None) -> None:
        self.volumes = volumes
        self.current = current
        self.overlays: list[tuple] = []
        self.messages: list[str] = []
        self.loaded: list[str] = []

    @property
    def plugin_name(self) -> str:
        return "progression"

    def current_volume(self):
        return self.current

    def cursor_lps(self):
        return None

    def series(self):
        infos = [
            SeriesInfo(
                key=name,
                patient_key="p1digest",
                study_uid=f"study-{name}",
                series_uid=f"series-{name}",
                study_date=date,
                description=name,
                modality="MR",
                images=volume.shape[0],
            )
            for name, (volume, date) in self.volumes.items()
        ]
        other = SeriesInfo("x", "p2digest", "s", "other", "20200101", "other", "MR", 3)
        return [*reversed(infos), other]  # unsorted, plus another patient

    def load_series(self, key, *, progress=None, cancel=None):
        self.loaded.append(key)
        return self.volumes[key][0]

    def show_overlay(
        self, name, volume, *, kind="heatmap", colormap="coolwarm", opacity=0.5, label_names=None
    ):
        self.overlays.append((name, volume, kind, colormap, opacity))

    def run_task(self, function, *, on_done, on_failed=None, title=""):
        token = CancelToken()
        try:
            result = function(progress=lambda *a: None, cancel=token)
        except Exception as error:  # noqa: BLE001 - the host reports any failure
            if on_failed is not None:
                on_failed(str(error))
        else:
            on_done(result)
        return token.cancel

    def status(self, text):
        self.messages.append(text)

    def data_dir(self):
        return Path(".")


@pytest.fixture
def widget(qtbot, small_demo):
    from mw_progression.panel import ProgressionPanel

    panel = ProgressionPanel()
    assert isinstance(panel, Panel) and panel.title == "Progression"
    context = FakeContext(small_demo)
    w = panel.create(context)
    qtbot.addWidget(w)
    return w, context


def test_panel_lists_checks_runs_and_resimulates(widget):
    from mw_progression.panel import DISCLAIMER_TEXT
    from mw_progression.trend import SIMULATION_LABEL

    w, context = widget
    assert w.tree.topLevelItemCount() == 2
    assert [s.key for s in w.checked()] == ["baseline", "month12", "month24"]  # by date
    assert "not a prediction" in DISCLAIMER_TEXT and "not for clinical use" in DISCLAIMER_TEXT
    assert w.disclaimer.text() == DISCLAIMER_TEXT
    w.run_button.click()
    assert context.loaded == ["baseline", "month12", "month24"]
    assert w.analysis is not None, w.message.text()
    assert w.volumes_table.rowCount() == 3 and w.rates_table.rowCount() == 3
    ((name, volume, kind, colormap, opacity),) = context.overlays
    assert (name, kind, colormap, opacity) == ("Change since baseline", "heatmap", "coolwarm", 0.5)
    assert volume.shape == small_demo_shape(context)
    assert w.analysis.fits[0].rate < 0  # parenchyma shrinks
    assert w.figure.axes
    before = w.analysis.simulations[0].treated[-1]
    w.effect.setValue(100)  # instant re-simulation, no reload
    assert context.loaded == ["baseline", "month12", "month24"]
    halted = w.analysis.simulations[0]
    assert halted.effect == 1.0 and halted.treated[-1] != before
    assert halted.label == SIMULATION_LABEL
    assert w.run_button.isEnabled() and not w.cancel_button.isEnabled()


def small_demo_shape(context):
    return context.volumes["baseline"][0].shape


def test_panel_refuses_a_single_series(widget):
    from PySide6.QtCore import Qt  # noqa: TID251 - the panel under test is Qt

    w, context = widget
    top = w.tree.topLevelItem(0)
    for c in range(1, top.childCount()):
        top.child(c).setCheckState(0, Qt.CheckState.Unchecked)
    w.run_button.click()
    assert context.loaded == []
    assert "at least two" in w.message.text()


def test_one_series_per_timepoint_and_no_guessed_times(qtbot, small_demo):
    """Two series of one study date: the one on screen is the default; checking both refuses."""
    from mw_progression.panel import ProgressionPanel
    from PySide6.QtCore import Qt  # noqa: TID251 - the panel under test is Qt

    volumes = dict(small_demo)
    baseline, date = volumes["baseline"]
    volumes["baseline-other"] = (baseline, date)
    shown = baseline.with_array(baseline.array, metadata={"series_uid": "series-baseline"})
    context = FakeContext(volumes, current=shown)
    w = ProgressionPanel().create(context)
    qtbot.addWidget(w)
    assert [s.key for s in w.checked()] == ["baseline", "month12", "month24"]
    top = w.tree.topLevelItem(0)
    for c in range(top.childCount()):
        top.child(c).setCheckState(0, Qt.CheckState.Checked)
    w.run_button.click()
    assert context.loaded == [] and "share a study date" in w.message.text()


def test_a_rate_in_percent_needs_a_baseline():
    from mw_progression.trend import fit_trend

    fit = fit_trend([0.0, 1.0, 2.0], [0.0, 2.0, 4.0], [0.05, 0.05, 0.05], "lesion")
    assert fit.rate > 1.9
    assert fit.rate_percent != fit.rate_percent  # NaN: no percentage of nothing

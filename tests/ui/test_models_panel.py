"""The Models panel: the shipped demo bundle, a private home and a real key store (no mocks)."""

from __future__ import annotations

import pytest
from pytestqt.qtbot import QtBot

from workstation.cli import main
from workstation.inference.catalogue import shipped_models_dir
from workstation.ui.models_panel import NOTE, STAGE_COLOURS, ModelsPanel, next_stage

DEMO = shipped_models_dir() / "demo-lesion-seg-0.1.0.mwb"
WAIT_MS = 20_000


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch) -> None:
    """A key store in the private home, unlocked by ``$WORKSTATION_PASSPHRASE``."""
    monkeypatch.setenv("WORKSTATION_PASSPHRASE", "a long test passphrase")
    monkeypatch.delenv("WORKSTATION_STORE_URL", raising=False)
    assert main(["keys", "init", "--kek", "passphrase"]) == 0


def _panel(qtbot: QtBot) -> ModelsPanel:
    panel = ModelsPanel()
    qtbot.addWidget(panel)
    qtbot.waitUntil(lambda: not panel.busy, timeout=WAIT_MS)
    return panel


def _change(panel: ModelsPanel, qtbot: QtBot, start: object) -> tuple[bool, str]:
    """Run a change and wait for its outcome and the listing after it."""
    with qtbot.waitSignal(panel.changed, timeout=WAIT_MS) as outcome:
        start()  # type: ignore[operator]
    qtbot.waitUntil(lambda: not panel.busy, timeout=WAIT_MS)
    ok, message = outcome.args  # type: ignore[misc]
    return ok, message


def _stages(panel: ModelsPanel) -> list[tuple[str, str, str]]:
    return [(r["name"], r["version"], r["stage"]) for r in panel.rows]


def test_next_stage_follows_the_lifecycle() -> None:
    assert [next_stage(s) for s in ("installed", "shadow", "canary", "active")] == [
        "shadow",
        "canary",
        "active",
        None,
    ]
    assert next_stage("blocked") == next_stage("rolled-back") == "shadow"


def test_install_promote_history_and_rollback(home: None, qtbot: QtBot) -> None:
    panel = _panel(qtbot)
    assert NOTE in panel.note.text()
    assert panel.rows == [] and "no model versions" in panel.status.text()
    assert not panel.promote_button.isEnabled() and not panel.rollback_button.isEnabled()

    ok, message = _change(panel, qtbot, lambda: panel.install(DEMO))
    assert ok, message
    assert _stages(panel) == [("demo-lesion-seg", "0.1.0", "installed")]
    assert panel.status.text() == "demo-lesion-seg 0.1.0: installed"
    assert panel.selected_key() == ("demo-lesion-seg", "0.1.0")
    assert panel.table.item(0, 2).text() == "installed"
    assert panel.promote_button.text() == "Promote to shadow"
    (first,) = panel.history_rows()
    assert first[1] == "— → installed" and "demo-lesion-seg-0.1.0.mwb" in first[2]

    # Without gates, shadow is the next step: allowed without force, as in the CLI.
    panel.reason.setText("shadow it first")
    ok, message = _change(panel, qtbot, panel.promote)
    assert ok, message
    assert _stages(panel) == [("demo-lesion-seg", "0.1.0", "shadow")]
    assert panel.rows[0]["gates"] is None
    stage = panel.table.item(0, 2)
    assert stage.text() == "shadow"
    assert stage.foreground().color().name() == STAGE_COLOURS["shadow"]
    history = panel.history_rows()
    assert [h[1] for h in history] == ["— → installed", "installed → shadow"]
    assert history[1][2] == "shadow it first" and history[1][3].startswith("ui:")
    assert panel.promote_button.text() == "Promote to canary" and panel.share.isEnabled()

    # Nothing in canary or active: the rollback is refused, clearly, and nothing changes.
    ok, message = _change(panel, qtbot, panel.rollback)
    assert not ok
    assert "no canary or active version to roll back" in panel.status.text()
    assert panel.status.text().startswith("refused:")
    assert _stages(panel) == [("demo-lesion-seg", "0.1.0", "shadow")]

    panel.share.setValue(25)
    ok, message = _change(panel, qtbot, panel.promote)
    assert ok, message
    assert _stages(panel) == [("demo-lesion-seg", "0.1.0", "canary")]
    assert panel.rows[0]["canary_share"] == pytest.approx(0.25)
    assert panel.table.item(0, 2).text() == "canary (25%)"

    ok, message = _change(panel, qtbot, panel.rollback)
    assert ok and message.startswith("rolled back demo-lesion-seg 0.1.0")
    assert _stages(panel) == [("demo-lesion-seg", "0.1.0", "rolled-back")]
    assert panel.history_rows()[-1][1:3] == ("canary → rolled-back", "rolled back by hand")

    from workstation.workflow.analysis_store import open_default_store

    store = open_default_store()
    try:
        actions = [e["action"] for e in store.audit.export() if e["object_type"] == "model"]
    finally:
        store.close()
    assert actions == ["model.install", "model.promote", "model.promote", "model.rollback"]


def test_changes_are_refused_without_the_audit_trail(
    home: None, qtbot: QtBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    panel = _panel(qtbot)
    ok, _ = _change(panel, qtbot, lambda: panel.install(DEMO))
    assert ok
    monkeypatch.delenv("WORKSTATION_PASSPHRASE")
    ok, message = _change(panel, qtbot, panel.promote)
    assert not ok and message.startswith("not recorded:")
    assert "$WORKSTATION_PASSPHRASE" in panel.status.text()
    assert _stages(panel) == [("demo-lesion-seg", "0.1.0", "installed")]
    assert len(panel.history_rows()) == 1
    ok, message = _change(panel, qtbot, panel.rollback)
    assert not ok and message.startswith("not recorded:")
    ok, message = _change(panel, qtbot, lambda: panel.install(DEMO))
    assert not ok and message.startswith("not recorded:")
    assert _stages(panel) == [("demo-lesion-seg", "0.1.0", "installed")]


def test_the_analyze_menu_opens_the_models_dialog(window: object, qtbot: QtBot) -> None:
    bar = window.menuBar()  # type: ignore[attr-defined]
    (analyze,) = [a.menu() for a in bar.actions() if a.text() == "&Analyze"]
    (action,) = [a for a in analyze.actions() if a.text() == "&Models…"]
    action.trigger()
    dialog = window.actions_.models_dialog  # type: ignore[attr-defined]
    assert dialog is not None and dialog.isVisible()
    qtbot.waitUntil(lambda: not dialog.panel.busy, timeout=WAIT_MS)
    assert "no model versions" in dialog.panel.status.text()
    action.trigger()  # the same dialog again, listed again
    assert window.actions_.models_dialog is dialog  # type: ignore[attr-defined]
    qtbot.waitUntil(lambda: not dialog.panel.busy, timeout=WAIT_MS)

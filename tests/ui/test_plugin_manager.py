"""The plugin manager: every plugin's state; install and remove, audited, refused verbatim, and
the window's Plugins menu and docks follow at once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import plugin_fixtures
import pytest
import shiboken6
from plugin_fixtures import (
    BROKEN_KEY,
    BROKEN_NAME,
    MEASURE,
    MEASURE_NAME,
    ROI_KEY,
    Bundles,
    install,
)
from PySide6.QtGui import QColor
from pytestqt.qtbot import QtBot

from workstation.cli import main
from workstation.plugins.installed import user_root
from workstation.ui.plugin_manager import COLUMNS, NOT_RECORDED, RED
from workstation.workflow.analysis_store import open_default_store

# The shared fixtures (a module, not a conftest: only these tests use them).
bundles = plugin_fixtures.bundles
make_window = plugin_fixtures.make_window
_clean_imports = plugin_fixtures._clean_imports


WAIT_MS = 30_000


@pytest.fixture
def key_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """An audit trail that opens without a prompt (``workstation keys init``)."""
    monkeypatch.setenv("WORKSTATION_PASSPHRASE", "a long test passphrase")
    monkeypatch.delenv("WORKSTATION_STORE_URL", raising=False)
    assert main(["keys", "init", "--kek", "passphrase"]) == 0


def _audit_events() -> list[dict[str, Any]]:
    store = open_default_store(actor="test")
    try:
        return [e for e in store.audit.export() if str(e.get("action", "")).startswith("plugin.")]
    finally:
        store.close()


def _cell(dialog: Any, name: str, column: str) -> Any:
    return dialog.table.item(dialog.row_of(name), COLUMNS.index(column))


def _wait_idle(dialog: Any, qtbot: QtBot) -> None:
    """The change and the window's rediscovery after it are done."""
    host = dialog.host
    qtbot.waitUntil(lambda: not dialog.runner.busy and not host._discoverer.busy, timeout=WAIT_MS)


def _manager(window: Any, qtbot: QtBot) -> Any:
    """The manager, once the Analyze panel's model search (which unlocks the key store too)
    is done: two Argon2id derivations at once deadlock in OpenSSL (see the report)."""
    qtbot.waitUntil(lambda: not window.analyze_panel.models_runner.busy, timeout=WAIT_MS)
    return window.plugins.open_manager()


def test_install_then_remove_updates_the_menu_and_docks_and_is_audited(
    bundles: Bundles, make_window: Callable[..., Any], qtbot: QtBot, key_store: None
) -> None:
    window = make_window()
    assert ROI_KEY not in window.plugins.panel_actions
    dialog = _manager(window, qtbot)
    assert dialog.isVisible() and dialog.table.rowCount() == 0

    dialog.install(bundles.measure)
    _wait_idle(dialog, qtbot)
    assert dialog.status.text().startswith(f"installed {MEASURE_NAME} 0.1.0"), dialog.status.text()
    assert _cell(dialog, MEASURE_NAME, "State").text() == "ready"
    assert _cell(dialog, MEASURE_NAME, "Source").text() == "user"
    assert _cell(dialog, MEASURE_NAME, "Trusted by").text() == "trust root"
    assert "panel roi" in _cell(dialog, MEASURE_NAME, "Contributions").text()
    assert ROI_KEY in window.plugins.panel_actions  # usable at once
    dock = window.plugins.open_panel(ROI_KEY)
    assert dock is not None and dock.isVisible()
    dialog.refresh()
    assert _cell(dialog, MEASURE_NAME, "State").text() == "loaded"

    dialog.table.selectRow(dialog.row_of(MEASURE_NAME))
    asked: list[str] = []
    dialog.confirm = lambda question: asked.append(question) or True
    dialog.remove_button.click()
    _wait_idle(dialog, qtbot)
    assert asked and MEASURE_NAME in asked[0]
    assert dialog.status.text() == f"removed {MEASURE_NAME} 0.1.0"
    assert dialog.row_of(MEASURE_NAME) == -1
    assert ROI_KEY not in window.plugins.panel_actions
    assert ROI_KEY not in window.plugins.docks
    assert not shiboken6.isValid(dock) or not dock.isVisible()  # closed, then deleted
    assert not (user_root() / MEASURE_NAME).exists()

    events = _audit_events()
    assert [e["action"] for e in events] == ["plugin.install", "plugin.remove"]
    install_event = events[0]
    assert install_event["object_type"] == "plugin" and install_event["object_id"] == MEASURE_NAME
    details = install_event["details"]
    assert details["version"] == "0.1.0" and details["trusted_by"] == "trust root"
    assert details["signers"] == bundles.publisher.key("plugin").key_id


def test_an_untrusted_bundle_is_refused_verbatim_and_audited(
    bundles: Bundles, make_window: Callable[..., Any], qtbot: QtBot, key_store: None
) -> None:
    window = make_window()
    dialog = _manager(window, qtbot)
    dialog.install(bundles.stranger)
    _wait_idle(dialog, qtbot)
    assert "untrusted.mwp is refused" in dialog.status.text()
    assert "c62828" in dialog.status.styleSheet()
    assert not (user_root() / MEASURE_NAME).exists()
    assert [e["action"] for e in _audit_events()] == ["plugin.refuse"]


def test_changes_are_refused_without_an_audit_trail(
    bundles: Bundles, make_window: Callable[..., Any], qtbot: QtBot, monkeypatch: Any
) -> None:
    monkeypatch.delenv("WORKSTATION_PASSPHRASE", raising=False)
    window = make_window()
    dialog = _manager(window, qtbot)
    dialog.install(bundles.measure)
    _wait_idle(dialog, qtbot)
    assert NOT_RECORDED in dialog.status.text()
    assert not (user_root() / MEASURE_NAME).exists()


def test_the_table_shows_failed_and_developer_plugins(
    bundles: Bundles, make_window: Callable[..., Any], qtbot: QtBot
) -> None:
    from workstation.plugins.developer import DeveloperMode

    install(bundles, bundles.broken)
    mode = DeveloperMode.load()
    mode.enabled = True
    mode.add(MEASURE)
    mode.save()
    window = make_window()
    window.plugins.open_panel(BROKEN_KEY)
    window.plugins.message_box.close()
    dialog = _manager(window, qtbot)
    assert _cell(dialog, BROKEN_NAME, "State").text() == "failed"
    assert "always fails" in _cell(dialog, BROKEN_NAME, "Name").toolTip()
    unsigned = _cell(dialog, MEASURE_NAME, "Trusted by")
    assert unsigned.text() == "unsigned (developer mode)"
    assert unsigned.foreground().color() == QColor(RED)
    assert _cell(dialog, MEASURE_NAME, "Source").text() == "developer"
    dialog.table.selectRow(dialog.row_of(BROKEN_NAME))
    assert "always fails" in dialog.details.text()
    assert dialog.remove_button.isEnabled()
    dialog.table.selectRow(dialog.row_of(MEASURE_NAME))
    assert not dialog.remove_button.isEnabled()  # developer folders: not removed from here

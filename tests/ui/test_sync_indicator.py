"""The status bar's sync indicator syncs on a worker and says where things stand."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytestqt.qtbot import QtBot


def test_not_enrolled_says_off(qtbot: QtBot) -> None:
    from workstation.ui.sync_indicator import SyncIndicator

    indicator = SyncIndicator()
    qtbot.addWidget(indicator)
    indicator.sync_now()
    qtbot.waitUntil(lambda: indicator.state != "unknown", timeout=10_000)
    assert indicator.state == "off" and "not enrolled" in indicator.text()
    indicator.shutdown()


def test_the_main_window_shows_it(window: object, qtbot: QtBot) -> None:
    indicator = window.sync_indicator  # type: ignore[attr-defined]
    qtbot.waitUntil(lambda: indicator.state != "unknown", timeout=15_000)
    assert indicator.text().startswith("Sync:")

"""Screenshot: the progression plugin on the demo follow-ups (``progression_demo.png``).

With mw-progression installed (README, "Plugins"), under Xvfb::

    QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1000x24" \\
        python resources/screenshots/progression_shot.py resources/screenshots/progression_demo.png

Opens ``resources/demo``, shows the lesion series, opens the Progression panel and runs it.
"""

import sys
from pathlib import Path

from PySide6.QtCore import QTimer  # noqa: TID251 - a GUI script
from PySide6.QtWidgets import QApplication, QWidget  # noqa: TID251

from workstation.ui.main_window import MainWindow
from workstation.ui.screenshot import grab_window

out = sys.argv[1]
app = QApplication(sys.argv[:1])
window = MainWindow(layout="1x3")
window.resize(1600, 1000)
window.show()
state = {"loaded": False, "panel": False}


def save():
    grab_window(window).save(out, "PNG")
    print("saved", out)
    app.exit(0)


def inserted(_i, layer):
    if getattr(layer, "name", "").startswith("Change since baseline"):
        QTimer.singleShot(1500, save)


def maybe_run():
    if not (state["loaded"] and state["panel"]):
        return
    dock = window.plugins.docks["mw-progression/progression"]
    widget = dock.widget()
    run = getattr(widget, "run", None) or widget.findChild(QWidget, "ProgressionWidget").run
    print("running", flush=True)
    widget.populate()
    run()


def loaded(_v):
    print("loaded", _v.metadata.get("series_uid"), flush=True)
    if state.get("switched"):
        state["loaded"] = True
        maybe_run()
        return
    state["switched"] = True
    catalog = window.browser.catalog
    for patient in catalog.patients:
        for study in patient.studies:
            for series in study.series:
                if "lesion" in (series.description or ""):
                    print("switch to", series.description, flush=True)
                    window.load(series)
                    return


def plugins_changed():
    if state["panel"]:
        return
    print("plugins", [(r.name, r.state, r.error) for r in window.plugins.registry], flush=True)
    window.plugins.open_panel("mw-progression/progression")
    state["panel"] = "mw-progression/progression" in window.plugins.docks
    maybe_run()


window.loaded.connect(loaded)
window.plugins.plugins_changed.connect(plugins_changed)
window.study_view.events.inserted.connect(inserted)
QTimer.singleShot(0, lambda: window.open(str(Path(__file__).resolve().parents[1] / "demo")))
QTimer.singleShot(
    200_000,
    lambda: (
        print(
            "timeout", window.plugins.docks["mw-progression/progression"].widget().message.text()
        ),
        app.exit(1),
    ),
)
sys.exit(app.exec())

"""Viewer responsiveness: launch to first paint, and slice-change render time.

1. **Launch to first paint**, in a fresh ``sys.executable -c`` process each time, with
   ``QT_QPA_PLATFORM=offscreen``. The child's very first statement takes ``time.perf_counter()``;
   it then creates the ``QApplication``, installs an application event filter that, when the
   :class:`~workstation.ui.main_window.MainWindow` instance is polished (before it is shown),
   installs a paint filter on that instance (and on its slice views), and calls the real
   :func:`workstation.ui.app.run_gui` on the benchmark CT folder (``run_gui`` reuses an existing
   ``QApplication``). At the window's first ``QEvent.Paint`` the child records the time and the
   heavy modules in ``sys.modules``, then leaves the event loop (the series load that
   ``run_gui`` starts after ``show()`` is running by then, as in real use; it is abandoned).
   Reported: child time from its first statement (``first_paint_s``), and the parent's
   wall time from just before spawning to the paint (``first_paint_spawn_s``, includes the
   interpreter start) and around the whole ``subprocess.run`` (includes exit).
   Reference: the same child showing a bare ``QMainWindow`` (only PySide6 imported).
   Goal: < 1.5 s. torch, pyvista, vtk and SimpleITK must not be imported by then.
2. **Slice change** on the standard CT (300 × 512², ``--quick``: 60 × 256²) loaded with
   ``load_series``: a :class:`~workstation.ui.slice_view.SliceView` (axial) of a
   :class:`~workstation.render.StudyView` holding an ``ImageLayer`` (as ``MainWindow`` builds
   it), shown at 700 × 700. One frame = ``scroll_slices(±1)`` + ``repaint()`` (synchronous
   paint inside the timing); pending events are processed untimed between frames. The
   three-view layout (axial, coronal, sagittal sharing the cursor, 1200 × 520, as ``1x3``)
   is timed the same way and reported beside it.
   Reference: a plain ``QLabel`` (scaled contents, 700 × 700) per frame: numpy window of the
   next int16 slice (float32 formula) → ``QImage`` Grayscale8 → ``QPixmap`` →
   ``setPixmap`` → ``repaint()``. Goal: ≥ 60 fps (< 16.7 ms per slice change).
   A short cProfile of the slice change gives the top costs (``profile_top``).
"""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before anything imports Qt

import cProfile
import gc
import io
import json
import pstats
import statistics
import subprocess
import sys
import time
from typing import Any

import _common as c  # puts the repository root first on sys.path
import numpy as np

NAME = "viewer"
GOAL_FIRST_PAINT_S = 1.5
GOAL_FPS = 60.0
HEAVY = ("torch", "pyvista", "vtk", "vtkmodules", "SimpleITK")
OTHER_WATCHED = ("scipy", "pydicom", "matplotlib", "numpy", "workstation.dicom")

# -- launch children ---------------------------------------------------------------------------
_CHILD_PRELUDE = """\
import time; _t0 = time.perf_counter(); _w0 = time.time()
import os, sys, json
os.environ["QT_QPA_PLATFORM"] = "offscreen"
sys.path.insert(0, {repo!r})
WATCH = {watch!r}
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QMainWindow
app = QApplication(sys.argv[:1])
state = {{"paint": None, "views": []}}

def report():
    mods = sorted(m for m in WATCH if m in sys.modules)
    return {{"paint_s": state["paint"][0] - _t0, "paint_wall": state["paint"][1],
             "views_painted_s": max(state["views"], default=state["paint"][0]) - _t0,
             "modules": mods}}

class PaintFilter(QObject):
    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Paint:
            now = time.perf_counter()
            if obj is self.target and state["paint"] is None:
                state["paint"] = (now, time.time())
                QTimer.singleShot(0, lambda: app.exit(0))
            elif obj is not self.target:
                state["views"].append(now)
                obj.removeEventFilter(self)
        return False
"""

_CHILD_OURS = (
    _CHILD_PRELUDE
    + """\
from workstation.ui.app import run_gui
from workstation.ui.main_window import MainWindow
paint_filter = PaintFilter()

class Watcher(QObject):  # finds the MainWindow instance run_gui constructs
    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Polish and isinstance(obj, MainWindow):
            paint_filter.target = obj
            obj.installEventFilter(paint_filter)
            for view in obj.views:
                view.installEventFilter(paint_filter)
            app.removeEventFilter(self)
        return False

watcher = Watcher()
app.installEventFilter(watcher)
run_gui({path!r})
print(json.dumps(report()), flush=True)
os._exit(0)  # the series load run_gui started is still running: abandon it
"""
)

_CHILD_REFERENCE = (
    _CHILD_PRELUDE
    + """\
window = QMainWindow()
window.setWindowTitle("bare")
window.resize(1200, 520)
paint_filter = PaintFilter()
paint_filter.target = window
window.installEventFilter(paint_filter)
window.show()
app.exec()
print(json.dumps(report()), flush=True)
os._exit(0)
"""
)


def launch(code: str) -> dict[str, Any]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    w0 = time.time()
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"launch child failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    data["process_wall_s"] = wall
    data["spawn_to_paint_s"] = data.pop("paint_wall") - w0
    return data


def launch_times(folder: str, repeat: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    watch = tuple(HEAVY + OTHER_WATCHED)
    repo = str(c.REPO_ROOT)
    ours_code = _CHILD_OURS.format(repo=repo, watch=watch, path=folder)
    ref_code = _CHILD_REFERENCE.format(repo=repo, watch=watch)
    launch(ours_code)  # warm-up: OS file cache, .pyc files
    launch(ref_code)
    ours, ref = [], []
    for _ in range(repeat):  # interleaved
        ours.append(launch(ours_code))
        ref.append(launch(ref_code))
    return ours, ref


# -- slice change ------------------------------------------------------------------------------
def frame_times(step: Any, n: int, app: Any) -> list[float]:
    """Time ``step()`` ``n`` times; pending events are processed (untimed) in between."""
    times = []
    gc.collect()
    for _ in range(n):
        app.processEvents()
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    app.processEvents()
    return times


class Bouncer:
    """+1 slice per call, reversing at either end of ``count`` slices."""

    def __init__(self, start: int, count: int) -> None:
        self.index, self.count, self.direction = start, count, 1

    def next_step(self) -> int:
        if not 0 <= self.index + self.direction < self.count:
            self.direction = -self.direction
        self.index += self.direction
        return self.direction


def slice_change(folder: str, frames: int) -> dict[str, Any]:
    # Qt outside workstation.ui: the benchmark needs its own reference widgets.
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QImage, QPixmap
    from PySide6.QtWidgets import QApplication, QHBoxLayout, QLabel, QWidget

    from workstation.dicom import load_series
    from workstation.render import ImageLayer, StudyView, ViewPlane, auto_window, dicom_window
    from workstation.ui.slice_view import SliceView

    app = QApplication.instance() or QApplication(sys.argv[:1])
    c.log(f"{NAME}: loading {folder} ...")
    volume = load_series(folder)
    array = volume.array
    count = int(array.shape[0])
    window = dicom_window(volume) or auto_window(array[count // 2])

    # Ours: one axial SliceView, as MainWindow builds it (StudyView + ImageLayer).
    study = StudyView()
    study.add(ImageLayer(volume, window=window, name="image"))
    view = SliceView(study, ViewPlane.AXIAL)
    view.resize(700, 700)
    view.show()
    app.processEvents()
    view.repaint()
    start, _ = view.slice_index()  # type: ignore[misc]
    bounce = Bouncer(start, count)

    def ours_step() -> None:
        view.scroll_slices(bounce.next_step())
        view.repaint()

    # Three views sharing the cursor (the "1x3" layout): scrolling repaints all of them.
    study3 = StudyView()
    study3.add(ImageLayer(volume, window=window, name="image"))
    box = QWidget()
    row = QHBoxLayout(box)
    row.setContentsMargins(0, 0, 0, 0)
    row.setSpacing(2)
    views3 = [
        SliceView(study3, p) for p in (ViewPlane.AXIAL, ViewPlane.CORONAL, ViewPlane.SAGITTAL)
    ]
    for v in views3:
        row.addWidget(v)
    box.resize(1200, 520)
    box.show()
    app.processEvents()
    box.repaint()
    bounce3 = Bouncer(views3[0].slice_index()[0], count)  # type: ignore[index]

    def three_step() -> None:
        views3[0].scroll_slices(bounce3.next_step())
        box.repaint()

    # Reference: plain QLabel, numpy window per frame, QImage -> QPixmap -> setPixmap.
    low, high = window.bounds
    scale = np.float32(255.0 / (high - low))
    label = QLabel()
    label.setScaledContents(True)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.resize(700, 700)
    label.show()
    app.processEvents()
    ref_bounce = Bouncer(count // 2, count)
    keep: list[Any] = [None]

    def ref_step() -> None:
        k = ref_bounce.index
        ref_bounce.next_step()
        y = (array[k].astype(np.float32) - np.float32(low)) * scale
        grey = np.ascontiguousarray(np.clip(y, 0, 255).astype(np.uint8))
        h, w = grey.shape
        image = QImage(grey.data, w, h, w, QImage.Format.Format_Grayscale8)
        keep[0] = grey
        label.setPixmap(QPixmap.fromImage(image))
        label.repaint()

    warm = max(5, frames // 10)
    for fn in (ours_step, three_step, ref_step):
        frame_times(fn, warm, app)
    results: dict[str, list[float]] = {"ours": [], "three": [], "reference": []}
    chunk = max(10, frames // 5)
    done = 0
    while done < frames:  # interleave chunks so all see the same machine state
        n = min(chunk, frames - done)
        results["ours"] += frame_times(ours_step, n, app)
        results["three"] += frame_times(three_step, n, app)
        results["reference"] += frame_times(ref_step, n, app)
        done += n

    # Profile the slice change (ours, one view).
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(min(frames, 60)):
        ours_step()
        app.processEvents()
    prof.disable()
    stream = io.StringIO()
    stats = pstats.Stats(prof, stream=stream)
    entries = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)  # tottime
    total = sum(v[2] for _, v in entries) or 1.0
    top = []
    for (file, line, func), (_cc, ncalls, tottime, cumtime, _callers) in entries[:8]:
        where = func if file == "~" else f"{os.path.basename(file)}:{line}({func})"
        top.append(
            {
                "function": where,
                "calls": ncalls,
                "tottime_s": tottime,
                "cumtime_s": cumtime,
                "share": tottime / total,
            }
        )

    for w in (view, box, label):
        w.close()
    return {
        "times": results,
        "shape": list(array.shape),
        "dtype": str(array.dtype),
        "window": [window.center, window.width],
        "profile_top": top,
        "profile_frames": min(frames, 60),
    }


def summary(values: list[float]) -> tuple[float, float, float]:
    return statistics.fmean(values), statistics.median(values), max(values)


def main() -> None:
    args = c.parse_args(__doc__.splitlines()[0], repeat=5, quick_repeat=2)
    shape, folder = c.standard_ct(quick=args.quick)
    frames = 40 if args.quick else 200

    c.log(f"{NAME}: launching {args.repeat} x 2 fresh processes to first paint ...")
    ours_l, ref_l = launch_times(folder, args.repeat)
    c.log(f"{NAME}: slice changes ({frames} frames each) ...")
    sc = slice_change(folder, frames)

    def best(rows: list[dict[str, Any]], key: str) -> float:
        return min(r[key] for r in rows)

    def med(rows: list[dict[str, Any]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    modules_at_paint = sorted({m for r in ours_l for m in r["modules"]})
    heavy_at_paint = [m for m in modules_at_paint if m in HEAVY]
    fp, fp_ref = best(ours_l, "paint_s"), best(ref_l, "paint_s")

    print(
        f"{NAME}: {os.cpu_count()} CPUs, QT_QPA_PLATFORM=offscreen, CT {'x'.join(map(str, shape))}"
    )
    c.print_table(
        f"Launch to first paint of the main window (fresh process, best / median of {args.repeat})",
        [
            "",
            "child first stmt -> paint ms",
            "median",
            "spawn -> paint ms",
            "whole process ms",
            "views painted ms",
        ],
        [
            [
                name,
                c.ms(best(rows, "paint_s")),
                c.ms(med(rows, "paint_s")),
                c.ms(best(rows, "spawn_to_paint_s")),
                c.ms(best(rows, "process_wall_s")),
                c.ms(best(rows, "views_painted_s")),
            ]
            for name, rows in (("ours: run_gui(CT folder)", ours_l), ("bare QMainWindow", ref_l))
        ],
    )
    print(f"modules loaded at first paint (ours): {', '.join(modules_at_paint) or '-'}")
    print(f"heavy modules at first paint: {', '.join(heavy_at_paint) or 'none'}")

    t = sc["times"]
    o_mean, o_med, o_max = summary(t["ours"])
    th_mean, th_med, th_max = summary(t["three"])
    r_mean, r_med, r_max = summary(t["reference"])
    c.print_table(
        f"Slice change, scroll 1 slice + synchronous repaint ({frames} frames, "
        f"{sc['shape'][1]}x{sc['shape'][2]} {sc['dtype']})",
        ["", "mean ms", "median ms", "max ms", "fps (mean)", "ratio to QLabel"],
        [
            [
                "ours: SliceView axial 700x700",
                c.ms(o_mean),
                c.ms(o_med),
                c.ms(o_max),
                f"{1 / o_mean:.1f}",
                f"{o_mean / r_mean:.2f}",
            ],
            [
                "ours: 3 views (1x3) 1200x520",
                c.ms(th_mean),
                c.ms(th_med),
                c.ms(th_max),
                f"{1 / th_mean:.1f}",
                f"{th_mean / r_mean:.2f}",
            ],
            [
                "QLabel + numpy window 700x700",
                c.ms(r_mean),
                c.ms(r_med),
                c.ms(r_max),
                f"{1 / r_mean:.1f}",
                "1.00",
            ],
        ],
    )
    c.print_table(
        f"cProfile of {sc['profile_frames']} slice changes (ours, one view), by own time",
        ["function", "calls", "own ms", "cum ms", "share"],
        [
            [
                p["function"][:70],
                p["calls"],
                c.ms(p["tottime_s"]),
                c.ms(p["cumtime_s"]),
                f"{p['share']:.0%}",
            ]
            for p in sc["profile_top"]
        ],
    )

    fps = 1.0 / o_mean
    goal_met = fp < GOAL_FIRST_PAINT_S and fps >= GOAL_FPS and not heavy_at_paint
    c.emit(
        {
            "benchmark": NAME,
            "ours": o_mean,
            "reference": r_mean,
            "reference_name": "QLabel (scaled contents, 700x700): numpy float32 window of the "
            "int16 slice -> QImage Grayscale8 -> QPixmap -> setPixmap -> repaint",
            "ratio": o_mean / r_mean,
            "statistic": "mean",
            "fps": fps,
            "ours_median": o_med,
            "ours_max": o_max,
            "reference_median": r_med,
            "reference_fps": 1.0 / r_mean,
            "three_views": th_mean,
            "three_views_fps": 1.0 / th_mean,
            "three_views_ratio": th_mean / r_mean,
            "first_paint_s": fp,
            "first_paint_median_s": med(ours_l, "paint_s"),
            "first_paint_spawn_s": best(ours_l, "spawn_to_paint_s"),
            "first_paint_process_wall_s": best(ours_l, "process_wall_s"),
            "first_paint_views_s": best(ours_l, "views_painted_s"),
            "first_paint_reference_s": fp_ref,
            "first_paint_reference_spawn_s": best(ref_l, "spawn_to_paint_s"),
            "first_paint_reference_process_wall_s": best(ref_l, "process_wall_s"),
            "first_paint_ratio": fp / fp_ref,
            "heavy_modules_at_first_paint": heavy_at_paint,
            "modules_at_first_paint": modules_at_paint,
            "profile_top": sc["profile_top"][:3],
            "goal": f"first paint < {GOAL_FIRST_PAINT_S} s without {', '.join(HEAVY)}; "
            f">= {GOAL_FPS:.0f} fps per slice change",
            "goal_met": goal_met,
            "shape": sc["shape"],
            "frames": frames,
            "launches": args.repeat,
            "environment": c.environment(),
        }
    )


if __name__ == "__main__":
    main()

"""``workstation cohort run`` (the Dask engine) vs a plain sequential loop over the same studies.

Generated cohorts (:func:`workstation.cohort.synthetic.make_cohort`, no broken studies and no
outliers, so every study does the same work) of small studies: the demo brain at about 3.5 mm,
a few hundred kB of DICOM each, cached under ``benchmarks/.data/cohort_<N>/``.

Scaling runs use the fastest real configuration: model ``demo-lesion-cls``, ``--explain none``,
``--no-store``. Each run happens in a fresh driver subprocess, which:

- calls :func:`~workstation.cohort.runner.run_cohort` (a local cluster of ``workers`` processes,
  one thread each; its start-up, the QC and the HTML report are inside the wall time);
- records its own peak RSS (``VmHWM``, reset after the imports) and, from a thread polling
  ``/proc/<pid>/status`` of its child processes every 0.2 s, the peak RSS (``VmHWM``) of each
  Dask worker process;
- prints its numbers as JSON.

Measured, in one invocation:

1. studies per minute and peak memory of the driver and of a worker at 10, 100 and 500 studies
   (``--full``: also 1000; ``--quick``: 10 and 50) with 2 workers. Goal: memory flat, the
   largest cohort's peak ≤ 1.5× the 10-study peak, for the driver and the workers;
2. 1 vs 2 workers on the same 100 studies (``--quick``: 10);
3. the engine vs a plain sequential loop calling
   :func:`~workstation.cohort.task.process_study` (same :class:`TaskConfig`) over the same
   studies in one fresh process. ``ours`` = the engine with 2 workers, ``reference`` = the loop,
   so ``ratio`` < 1 is the parallel speed-up net of the engine's overhead; the engine's overhead
   is ``engine_1_worker / sequential``. Dask starts workers with ``OMP_NUM_THREADS=1`` (one torch
   thread each); the plain loop uses torch's default (``torch_threads`` in the JSON), and runs
   again with ``OMP_NUM_THREADS=1`` so the overhead is also measured at equal threads;
4. the full configuration once: 10 studies (``--quick``: 4) with ``demo-lesion-seg`` saved into
   the encrypted store (a temporary ``WORKSTATION_HOME``, ``keys init --kek passphrase``).

``--repeat`` is not used: each run is long and is done once.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import _common as c

NAME = "cohort"
FAST_MODEL = "demo-lesion-cls"
FULL_MODEL = "demo-lesion-seg"
_COHORT_VERSION = 1
_POLL_S = 0.2


# -- data --------------------------------------------------------------------------------------
def cohort(n: int) -> Path:
    """``benchmarks/.data/cohort_<n>``: ``n`` normal studies from ``make_cohort``, cached."""
    from workstation.cohort.synthetic import make_cohort

    folder = c.DATA_DIR / f"cohort_{n}"
    marker = folder.with_name(folder.name + ".complete.json")
    params = {"version": _COHORT_VERSION, "kind": "cohort", "studies": n, "seed": 0}
    try:
        if json.loads(marker.read_text()) == params and len(list(folder.glob("study_*"))) == n:
            return folder
    except (OSError, ValueError):
        pass
    c.log(f"generating cohort_{n} ({n} studies) ...")
    t0 = time.perf_counter()
    marker.unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)
    make_cohort(folder, studies=n, broken=0, outliers=0, seed=0)
    marker.write_text(json.dumps(params))
    c.log(f"  done in {time.perf_counter() - t0:.1f} s")
    return folder


# -- memory of this process and of its children ------------------------------------------------
def _status_kib(pid: int | str, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class _ChildPeaks:
    """Polls the ``VmHWM`` of every descendant process (Dask workers) until stopped."""

    def __init__(self) -> None:
        self.peaks: dict[int, int] = {}
        self.kinds: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> _ChildPeaks:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.is_set():
            self.poll(me)
            self._stop.wait(_POLL_S)
        self.poll(me)

    def poll(self, me: Any) -> None:
        import psutil

        try:
            children = me.children(recursive=True)
        except psutil.Error:
            return
        for child in children:
            pid = child.pid
            if pid not in self.kinds:
                try:
                    cmd = " ".join(child.cmdline())
                except psutil.Error:
                    continue
                self.kinds[pid] = "tracker" if "resource_tracker" in cmd else "worker"
            kib = _status_kib(pid, "VmHWM")
            if kib is not None:
                self.peaks[pid] = max(self.peaks.get(pid, 0), kib * 1024)

    def workers(self) -> list[int]:
        return [p for pid, p in self.peaks.items() if self.kinds.get(pid) == "worker"]


def _steady_rate(out: Path) -> float | None:
    """Studies per minute between the first and the last finished row (start-up excluded)."""
    stamps = []
    for path in (out / "results").glob("*.json"):
        try:
            stamps.append(datetime.fromisoformat(json.loads(path.read_text())["finished"]))
        except (OSError, ValueError, KeyError):
            continue
    stamps.sort()
    if len(stamps) < 3:
        return None
    span = (stamps[-1] - stamps[0]).total_seconds()
    return (len(stamps) - 1) / span * 60.0 if span > 0 else None


# -- the measuring subprocess ------------------------------------------------------------------
def _child(spec: dict[str, Any]) -> dict[str, Any]:
    import gc

    import torch

    from workstation.cohort.runner import RunOptions, run_cohort
    from workstation.cohort.sources import iter_source
    from workstation.cohort.task import TaskConfig, process_study

    gc.collect()
    baseline = c._current_rss()
    exact = c._reset_peak_rss()
    out = Path(spec["out"])
    result: dict[str, Any] = {"baseline_rss": baseline, "peak_exact": exact}
    if spec["mode"] == "engine":
        options = RunOptions(
            source=spec["source"],
            model=spec["model"],
            out=out,
            explain=None,
            workers=spec["workers"],
            store=spec["store"],
            actor="benchmark",
        )
        with _ChildPeaks() as peaks:
            t0 = time.perf_counter()
            manifest = run_cohort(options)
            wall = time.perf_counter() - t0
        workers = peaks.workers()
        result.update(
            wall_s=wall,
            ok=manifest["counts"]["ok"],
            failed=manifest["counts"]["failed"],
            study_seconds_median=manifest["study_seconds_median"],
            steady_per_min=_steady_rate(out),
            worker_processes=len(workers),
            worker_peak_rss=max(workers) if workers else None,
        )
    else:  # a plain loop over the same studies, in this process
        config = TaskConfig(model=spec["model"], explain=None, store=spec["store"])
        items = list(iter_source(spec["source"]))
        seconds: list[float] = []
        ok = 0
        t0 = time.perf_counter()
        for item in items:
            row = process_study(item, config)["row"]
            ok += row["status"] == "ok"
            seconds.append(float(row["seconds"]))
        wall = time.perf_counter() - t0
        steady = sum(seconds[1:])
        result.update(
            wall_s=wall,
            ok=ok,
            failed=len(items) - ok,
            study_seconds_median=sorted(seconds)[len(seconds) // 2],
            steady_per_min=(len(seconds) - 1) / steady * 60.0 if steady > 0 else None,
            torch_threads=torch.get_num_threads(),
        )
    result["driver_peak_rss"] = c._maxrss()
    return result


def run_child(spec: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run :func:`_child` in a fresh interpreter; its JSON result."""
    out = Path(tempfile.mkdtemp(prefix="medws-bench-cohort-"))
    spec = {**spec, "out": str(out / "run")}
    try:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", json.dumps(spec)],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, **(env or {})},
        )
        if proc.returncode != 0:
            raise RuntimeError(f"cohort child {spec} failed:\n{proc.stderr[-4000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(out, ignore_errors=True)


def engine(source: Path, n: int, workers: int, **kw: Any) -> dict[str, Any]:
    c.log(f"engine: {n} studies, {workers} worker(s) {kw or ''} ...")
    spec = {"mode": "engine", "source": str(source), "workers": workers}
    spec.update({"model": FAST_MODEL, "store": False})
    spec.update(kw.pop("spec", {}))
    r = run_child(spec, **kw)
    c.log(f"  {r['wall_s']:.1f} s, {r['ok']} ok, {r['failed']} failed: {json.dumps(r)}")
    return r


def sequential(source: Path, n: int, *, one_thread: bool = False) -> dict[str, Any]:
    c.log(f"sequential loop: {n} studies{' (OMP_NUM_THREADS=1)' if one_thread else ''} ...")
    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"} if one_thread else None
    spec = {"mode": "loop", "source": str(source), "model": FAST_MODEL, "store": False}
    r = run_child(spec, env)
    c.log(f"  {r['wall_s']:.1f} s, {r['ok']} ok, {r['failed']} failed: {json.dumps(r)}")
    return r


def full_configuration(source: Path) -> dict[str, Any]:
    """``demo-lesion-seg`` with the encrypted store, in a temporary key store."""
    home = Path(tempfile.mkdtemp(prefix="medws-bench-cohort-home-"))
    env = {"WORKSTATION_HOME": str(home), "WORKSTATION_PASSPHRASE": "benchmark-passphrase-1234"}
    try:
        init = subprocess.run(
            [sys.executable, "-m", "workstation", "keys", "init", "--kek", "passphrase"],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, **env},
            cwd=c.REPO_ROOT,
        )
        if init.returncode != 0:
            raise RuntimeError(f"keys init failed:\n{init.stderr[-2000:]}")
        n = len(list(source.glob("study_*")))
        return engine(source, n, 2, env=env, spec={"model": FULL_MODEL, "store": True})
    finally:
        shutil.rmtree(home, ignore_errors=True)


# -- main --------------------------------------------------------------------------------------
def _per_min(r: dict[str, Any]) -> float:
    return r["ok"] / r["wall_s"] * 60.0


def _fmt(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10 and 50 studies; compare on 10")
    parser.add_argument("--full", action="store_true", help="also 1000 studies")
    parser.add_argument("--repeat", type=int, default=1, help="accepted, not used (one run each)")
    args = parser.parse_args()
    sizes = [10, 50] if args.quick else [10, 100, 500] + ([1000] if args.full else [])
    compare_n = 10 if args.quick else 100
    full_n = 4 if args.quick else 10

    sources = {n: cohort(n) for n in sorted({*sizes, compare_n, full_n})}
    # Comparisons and the full configuration first, the largest cohort last.
    loop = sequential(sources[compare_n], compare_n)
    loop_1 = sequential(sources[compare_n], compare_n, one_thread=True)
    one_worker = engine(sources[compare_n], compare_n, 1)
    full = full_configuration(sources[full_n])
    scaling = {n: engine(sources[n], n, 2) for n in sizes}
    two_workers = scaling.get(compare_n) or engine(sources[compare_n], compare_n, 2)

    small, large = scaling[sizes[0]], scaling[sizes[-1]]
    driver_growth = large["driver_peak_rss"] / small["driver_peak_rss"]
    worker_growth = (
        large["worker_peak_rss"] / small["worker_peak_rss"]
        if large["worker_peak_rss"] and small["worker_peak_rss"]
        else None
    )
    rows = [
        (
            n,
            f"{r['ok']}/{r['failed']}",
            _fmt(r["wall_s"]),
            _fmt(_per_min(r)),
            _fmt(r["steady_per_min"]),
            _fmt(r["study_seconds_median"], 2),
            c.mib(r["driver_peak_rss"]),
            c.mib(r["worker_peak_rss"]),
        )
        for n, r in scaling.items()
    ]
    c.print_table(
        f"1. scaling: 2 workers x 1 thread, {FAST_MODEL}, --explain none, --no-store "
        f"(wall includes cluster start-up, QC and report; steady = first to last row)",
        [
            "studies",
            "ok/failed",
            "wall s",
            "studies/min",
            "steady/min",
            "median s/study",
            "driver peak MiB",
            "worker peak MiB",
        ],
        rows,
    )
    memory_ok = driver_growth <= 1.5 and (worker_growth is None or worker_growth <= 1.5)
    c.print_table(
        f"   memory: {sizes[-1]}-study peak / {sizes[0]}-study peak (goal <= 1.5x)",
        ["process", "growth", "goal"],
        [
            ("driver", f"{driver_growth:.2f}x", c.goal_text(driver_growth <= 1.5)),
            (
                "worker",
                "-" if worker_growth is None else f"{worker_growth:.2f}x",
                c.goal_text(None if worker_growth is None else worker_growth <= 1.5),
            ),
        ],
    )

    def line(name: str, r: dict[str, Any]) -> tuple[Any, ...]:
        return (
            name,
            _fmt(r["wall_s"]),
            _fmt(_per_min(r)),
            _fmt(r["steady_per_min"]),
            f"{loop['wall_s'] / r['wall_s']:.2f}x",
        )

    c.print_table(
        f"2./3. the same {compare_n} studies ({FAST_MODEL}, --explain none, --no-store)",
        ["run", "wall s", "studies/min", "steady/min", "speed-up vs loop"],
        [
            line(f"sequential loop of process_study (torch {loop['torch_threads']} threads)", loop),
            line(
                f"sequential loop, OMP_NUM_THREADS=1 (torch {loop_1['torch_threads']} thread)",
                loop_1,
            ),
            line("engine, 1 worker x 1 thread", one_worker),
            line("engine, 2 workers x 1 thread", two_workers),
        ],
    )
    overhead = one_worker["wall_s"] / loop["wall_s"]
    overhead_1 = one_worker["wall_s"] / loop_1["wall_s"]
    scale_2 = one_worker["wall_s"] / two_workers["wall_s"]
    speedup = loop["wall_s"] / two_workers["wall_s"]
    speedup_1 = loop_1["wall_s"] / two_workers["wall_s"]
    c.print_table(
        "   ratios",
        ["measure", "value"],
        [
            ("engine 1 worker / sequential loop (default threads)", f"{overhead:.2f}x"),
            ("engine overhead: engine 1 worker / loop, both 1 thread", f"{overhead_1:.2f}x"),
            ("speed-up: loop (default threads) / engine 2 workers", f"{speedup:.2f}x"),
            ("speed-up: loop (1 thread) / engine 2 workers", f"{speedup_1:.2f}x"),
            ("scaling: engine 1 worker / engine 2 workers", f"{scale_2:.2f}x"),
        ],
    )
    c.print_table(
        f"4. full configuration: {full_n} studies, {FULL_MODEL}, --explain none, "
        f"encrypted store, 2 workers",
        ["run", "ok/failed", "wall s", "studies/min", "median s/study", "worker peak MiB"],
        [
            (
                "engine",
                f"{full['ok']}/{full['failed']}",
                _fmt(full["wall_s"]),
                _fmt(_per_min(full)),
                _fmt(full["study_seconds_median"], 2),
                c.mib(full["worker_peak_rss"]),
            )
        ],
    )
    import torch

    c.emit(
        {
            "benchmark": NAME,
            "ours": two_workers["wall_s"],
            "reference": loop["wall_s"],
            "reference_name": f"plain sequential loop of process_study over the same "
            f"{compare_n} studies in one process ({FAST_MODEL}, no explanation, no store; "
            f"torch {loop['torch_threads']} threads)",
            "ratio": two_workers["wall_s"] / loop["wall_s"],
            "goal": "memory flat: largest cohort's peak RSS <= 1.5x the 10-study peak "
            "(driver and workers)",
            "goal_met": memory_ok,
            "studies": compare_n,
            "engine_1_worker_s": one_worker["wall_s"],
            "engine_1_worker_vs_loop": overhead,
            "sequential_1_thread_s": loop_1["wall_s"],
            "engine_overhead_1_worker": overhead_1,
            "speedup_2_workers_vs_loop": speedup,
            "speedup_2_workers_vs_loop_1_thread": speedup_1,
            "scaling_1_to_2_workers": scale_2,
            "torch_threads_loop": loop["torch_threads"],
            "torch_threads_worker": 1,
            "scaling": {
                str(n): {
                    "wall_s": r["wall_s"],
                    "ok": r["ok"],
                    "failed": r["failed"],
                    "studies_per_min": _per_min(r),
                    "steady_studies_per_min": r["steady_per_min"],
                    "study_seconds_median": r["study_seconds_median"],
                    "driver_peak_rss": r["driver_peak_rss"],
                    "worker_peak_rss": r["worker_peak_rss"],
                    "worker_processes": r["worker_processes"],
                }
                for n, r in scaling.items()
            },
            "driver_peak_growth": driver_growth,
            "worker_peak_growth": worker_growth,
            "full_configuration": {
                "studies": full_n,
                "model": FULL_MODEL,
                "store": True,
                "wall_s": full["wall_s"],
                "ok": full["ok"],
                "failed": full["failed"],
                "studies_per_min": _per_min(full),
                "study_seconds_median": full["study_seconds_median"],
                "worker_peak_rss": full["worker_peak_rss"],
            },
            "quick": args.quick,
            "full": args.full,
            "environment": {**c.environment(), "torch": torch.__version__},
        }
    )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(_child(json.loads(sys.argv[2]))), flush=True)
    else:
        main()

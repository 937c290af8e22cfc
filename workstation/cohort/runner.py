"""The cohort driver: stream the source through a Dask cluster with flat memory; resumable.

:func:`run_cohort` starts a :class:`distributed.LocalCluster` (processes, one thread each;
``workers`` or sized to the machine) or connects to a running scheduler, then keeps a bounded
window of studies in flight (twice the cluster's threads): a new one is submitted as each
finishes (:class:`distributed.as_completed`), so neither the source nor the results are ever
held whole. Each row is written as it arrives (:class:`~workstation.cohort.results.CohortFolder`).

Resuming: a study whose row is ``ok`` for the same model and explanation is skipped; a failed
one runs again, its ``attempts`` counted and the earlier outcome kept in ``history``. A worker
that dies takes its tasks with it; Dask runs them on another worker (the task is idempotent,
see :mod:`workstation.cohort.task`); a task that kills workers repeatedly becomes a failed row.

At the end ``summary.csv`` is rewritten from the rows, outliers are flagged into
``qc_flags.json`` (:func:`workstation.cohort.qc.flag_outliers`) and the HTML report written
(:func:`workstation.cohort.report.write_report`).

With a remote scheduler, the workers must see the source paths (a shared file system, or a
DICOMweb source) and their own key store (``$WORKSTATION_HOME``, ``$WORKSTATION_PASSPHRASE``;
``$WORKSTATION_STORE_URL`` for one shared PostgreSQL store). Thumbnails and rows travel back to
the driver, which alone writes the output folder.
"""

from __future__ import annotations

import json
import os
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from workstation.cohort.results import CohortFolder
from workstation.cohort.sources import StudyItem, iter_source
from workstation.cohort.task import TaskConfig, process_study

__all__ = ["RunOptions", "default_workers", "run_cohort"]

_GIB = 1024**3
_WORKER_MEMORY_GIB = 2.0  # torch, a model and a few volumes
_RESIZE_S = 10.0  # how often the window follows the cluster's size


@dataclass
class RunOptions:
    """What ``workstation cohort run`` was asked to do."""

    source: str
    model: str
    out: Path
    explain: str | None = None
    scheduler: str | None = None
    workers: int | None = None
    store: bool = True
    limit: int | None = None
    device: str = "auto"
    window: int | None = None  # studies in flight; default twice the cluster's threads
    page_size: int = 100  # DICOMweb search page
    actor: str = "cohort"
    progress: Callable[[int, int, str], None] | None = None
    log: Callable[[str], None] = field(default=lambda text: None)


def default_workers() -> int:
    """One worker per core, as far as memory allows (about 2 GiB each)."""
    cores = os.cpu_count() or 1
    try:
        import psutil

        memory = psutil.virtual_memory().total / _GIB
    except ImportError:  # pragma: no cover - distributed depends on psutil
        return cores
    return max(1, min(cores, int(memory // _WORKER_MEMORY_GIB)))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _connect(options: RunOptions) -> tuple[Any, Any]:
    from distributed import Client, LocalCluster

    if options.scheduler:
        client = Client(options.scheduler, timeout="30s")
        client.wait_for_workers(1, timeout=120)
        return client, None
    cluster = LocalCluster(
        n_workers=options.workers or default_workers(),
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
    )
    return Client(cluster), cluster


def _done(row: dict[str, Any] | None, options: RunOptions) -> bool:
    return (
        row is not None
        and row.get("status") == "ok"
        and row.get("model") == options.model
        and row.get("explain") == (options.explain or "none")
    )


def _lost(item: StudyItem, options: RunOptions, error: BaseException) -> dict[str, Any]:
    """The row of a task that produced nothing (its workers died, or it was cancelled)."""
    return {
        "study_key": item.key,
        "source": item.source,
        "status": "failed",
        "error": f"{type(error).__name__}: {error}"[:500],
        "stage": "worker",
        "model": options.model,
        "explain": options.explain or "none",
        "finished": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }


def _with_history(row: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    history = list(previous.get("history") or []) if previous else []
    if previous:
        history.append(
            {
                k: previous.get(k)
                for k in ("attempts", "status", "error", "finished", "model", "worker")
            }
        )
    row["attempts"] = int(previous.get("attempts") or 0) + 1 if previous else 1
    row["history"] = history
    return row


class _Run:
    """One run's state: counts, the in-flight window, the manifest."""

    def __init__(self, options: RunOptions, folder: CohortFolder) -> None:
        self.options = options
        self.folder = folder
        self.config = TaskConfig(
            model=options.model,
            explain=options.explain,
            store=options.store,
            device=options.device,
            actor=options.actor,
        )
        self.seen = self.skipped = self.submitted = self.ok = self.failed = 0
        self.seconds: list[float] = []
        self.started = time.perf_counter()
        self.manifest: dict[str, Any] = {
            "schema": 1,
            "model": options.model,
            "explain": options.explain or "none",
            "source": options.source,
            "started": _now(),
            "finished": None,
            "state": "running",
            "store": options.store,
            "limit": options.limit,
        }

    def take(self, items: Any, client: Any, pending: dict[Any, Any], ac: Any, room: int) -> None:
        """Submit studies until ``room`` are in flight, the source ends or the limit is hit."""
        limit = self.options.limit
        while len(pending) < room and (limit is None or self.submitted < limit):
            item = next(items, None)
            if item is None:
                return
            self.seen += 1
            previous = self.folder.read_row(item.key)
            if _done(previous, self.options):
                self.skipped += 1
                continue
            future = client.submit(
                process_study, item, self.config, key=f"study-{item.key}-{uuid.uuid4().hex[:8]}"
            )
            pending[future] = (item, previous)
            ac.add(future)
            self.submitted += 1

    def finish(self, future: Any, pending: dict[Any, Any]) -> None:
        """Write the row (and thumbnail) of a finished task."""
        item, previous = pending.pop(future)
        try:
            result = future.result()
        except Exception as error:  # noqa: BLE001 - KilledWorker, cancelled, scheduler lost
            result = {"row": _lost(item, self.options, error), "thumbnail": None}
        future.release()
        row = _with_history(result["row"], previous)
        if result.get("thumbnail"):
            self.folder.write_thumbnail(item.key, result["thumbnail"])
        self.folder.write_row(row)
        if row["status"] == "ok":
            self.ok += 1
            self.seconds.append(float(row.get("seconds") or 0.0))
        else:
            self.failed += 1

    def total(self) -> int:
        if self.options.limit is not None:
            return self.options.limit
        return max(self.seen - self.skipped, 1)

    def close(self, state: str) -> dict[str, Any]:
        """The final manifest (counts over every row in the folder)."""
        counts = self.folder.counts()
        self.manifest.update(
            finished=_now(),
            state=state,
            seconds=round(time.perf_counter() - self.started, 1),
            counts={**counts, "skipped": self.skipped, "total": sum(counts.values())},
            this_run={
                "seen": self.seen,
                "submitted": self.submitted,
                "ok": self.ok,
                "failed": self.failed,
                "skipped": self.skipped,
            },
            study_seconds_median=(
                round(statistics.median(self.seconds), 2) if self.seconds else None
            ),
        )
        return self.manifest


def _room(client: Any, options: RunOptions) -> int:
    """Studies to keep in flight: ``options.window``, else twice the cluster's threads."""
    return options.window or 2 * max(1, sum(client.nthreads().values()))


def run_cohort(options: RunOptions) -> dict[str, Any]:
    """Run the cohort (see the module docstring); returns the manifest (``cohort.json``).

    ``KeyboardInterrupt`` stops the run cleanly: what finished is written, the rest is
    cancelled, the manifest says ``interrupted``; the exception is raised again.
    """
    from distributed import as_completed

    folder = CohortFolder(options.out)
    folder.create()
    items = iter_source(options.source, page_size=options.page_size)
    run = _Run(options, folder)
    client, cluster = _connect(options)
    pending: dict[Any, Any] = {}
    state = "interrupted"
    try:
        room = _room(client, options)
        run.manifest.update(
            scheduler=client.scheduler.address,
            dashboard=client.dashboard_link,
            workers=len(client.nthreads()),
            window=room,
        )
        options.log(f"Dask dashboard: {client.dashboard_link}")
        folder.write_json(folder.manifest, run.manifest)
        ac = as_completed()
        run.take(items, client, pending, ac, room)
        resized = time.monotonic()
        for future in ac:
            run.finish(future, pending)
            if options.progress is not None:
                options.progress(run.ok + run.failed, run.total(), "studies")
            if time.monotonic() - resized > _RESIZE_S:  # workers come and go
                room, resized = _room(client, options), time.monotonic()
            run.take(items, client, pending, ac, room)
        state = "finished"
    finally:
        for future in list(pending):
            future.cancel()
        client.close()
        if cluster is not None:
            cluster.close()
        manifest = run.close(state)
        folder.write_json(folder.manifest, manifest)
        folder.rewrite_summary()
    _qc_and_report(folder, manifest)
    folder.write_json(folder.manifest, manifest)
    return manifest


def rebuild_report(out: str | Path) -> dict[str, Any]:
    """``workstation cohort report DIR``: the summary table rebuilt from the per-study rows,
    the QC flags recomputed, the HTML report rewritten; returns what to say about it."""
    folder = CohortFolder(out)
    if not folder.results.is_dir():
        raise ValueError(f"{out} holds no cohort results (results/ is missing)")
    rows = folder.rewrite_summary()
    try:
        manifest = json.loads(folder.manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = {}
    _qc_and_report(folder, manifest)
    return {"rows": rows, **manifest}


def _qc_and_report(folder: CohortFolder, manifest: dict[str, Any]) -> None:
    from workstation.cohort import qc, report

    flags = qc.flag_outliers(folder.summary)
    folder.write_json(folder.flags, flags)
    manifest["flagged"] = len(flags)
    manifest["counts"] = {**manifest.get("counts", {}), **folder.counts()}
    manifest["report"] = str(folder.root / "report" / "index.html")
    folder.write_json(folder.manifest, manifest)  # the report shows this run's numbers
    report.write_report(folder.root)

"""``workstation cohort``: run a model over a whole cohort, on this machine or a Dask cluster.

::

    workstation cohort run SOURCE --model NAME --out DIR [--explain METHOD|none]
                           [--scheduler ADDRESS] [--workers N] [--no-store] [--limit N] [--json]
    workstation cohort report DIR [--json]
    workstation cohort demo DIR [--studies N] [--broken K] [--outliers K] [--seed S]

``SOURCE`` is a folder tree (each folder holding one series' DICOM files is a study), a ``.txt``
list of folders, or a DICOMweb search URL (``https://pacs/dicom-web/studies?ModalitiesInStudy=MR``;
a password from ``$WORKSTATION_PACS_PASSWORD``). Without ``--scheduler`` a local Dask cluster
of ``--workers`` processes runs the studies; with it, the cluster at ``ADDRESS``. DIR gets
``results/<key>.json`` per study, ``thumbs/``, ``summary.csv``, ``cohort.json``,
``qc_flags.json`` and ``report/index.html`` (see :mod:`workstation.cohort.runner`). Running the
same command again skips the studies already done and retries the failed ones. Results are
saved encrypted in the result store (the key store must open without a prompt;
``--no-store`` skips it).

``report`` rebuilds ``summary.csv`` from the per-study rows, recomputes the QC flags and
rewrites ``report/index.html`` (the summary table, QC flags with thumbnails, plots, failures).

``demo`` writes a synthetic cohort (the demo brain with lesions, broken studies and planted
outliers; ``DIR/truth.json`` says which) to try it on.

Exit codes: 0 done (studies that failed are rows, not errors), 1 the run could not happen,
2 usage, 130 interrupted (run it again to resume).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add the ``cohort`` command to the top-level subparsers."""
    cohort = commands.add_parser(
        "cohort",
        help="run a model over a cohort of studies (local or Dask cluster), QC and report",
        description="Run a model over every study of a cohort with flat memory, resumably, on "
        "a local or remote Dask cluster; QC features, outlier flags and an HTML report.",
    )
    sub = cohort.add_subparsers(dest="cohort_command", metavar="ACTION")
    run_p = sub.add_parser("run", help="analyse every study of SOURCE into DIR")
    add = run_p.add_argument
    add("source", metavar="SOURCE", help="a folder tree, a .txt list or a DICOMweb search URL")
    add("--model", required=True, help="model name, name@version or a .mwb bundle")
    add(
        "--explain",
        default="none",
        type=_method,
        metavar="METHOD",
        help="none (default: fastest), gradcam, ig or occlusion",
    )
    add("--out", metavar="DIR", required=True, help="output folder (rerun to resume)")
    add("--scheduler", metavar="ADDRESS", help="a Dask scheduler (tcp://host:8786)")
    add(
        "--workers",
        type=_positive,
        metavar="N",
        help="local worker processes (default: sized to the cores and memory)",
    )
    add("--device", default="auto", help="auto (CUDA when present), cuda or cpu")
    add("--no-store", action="store_true", help="do not save into the encrypted result store")
    add("--limit", type=_positive, metavar="N", help="analyse at most N studies this run")
    add("--json", action="store_true", help="print cohort.json when done")
    report = sub.add_parser(
        "report", help="rebuild DIR's summary table, QC flags, plots and HTML report"
    )
    report.add_argument("dir", metavar="DIR", help="a cohort run's output folder")
    report.add_argument("--json", action="store_true", help="print the summary as JSON")
    demo = sub.add_parser("demo", help="write a synthetic cohort with broken studies and outliers")
    demo.add_argument("dir", metavar="DIR", help="where to write it")
    demo.add_argument("--studies", type=_positive, default=24, metavar="N")
    demo.add_argument("--broken", type=_count, default=2, metavar="K")
    demo.add_argument("--outliers", type=_count, default=4, metavar="K")
    demo.add_argument("--seed", type=int, default=0, metavar="S")


def _method(text: str) -> str:
    if text in ("gradcam", "ig", "occlusion", "none") or text.startswith("plugin:"):
        return text
    raise argparse.ArgumentTypeError(f"{text!r}: choose none, gradcam, ig or occlusion")


def _positive(text: str) -> int:
    value = _count(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def run(args: argparse.Namespace) -> int:
    """Run ``workstation cohort``; returns the exit code."""
    command = getattr(args, "cohort_command", None)
    if command == "demo":
        return _demo(args)
    if command == "run":
        return _run(args)
    if command == "report":
        return _report(args)
    sys.stderr.write("workstation cohort: choose an action: run, report or demo\n")
    return EXIT_USAGE


def _demo(args: argparse.Namespace) -> int:
    from workstation.cohort.synthetic import make_cohort

    if args.broken + args.outliers > args.studies:
        sys.stderr.write("workstation cohort demo: error: --broken + --outliers > --studies\n")
        return EXIT_USAGE
    truth = make_cohort(
        args.dir,
        studies=args.studies,
        broken=args.broken,
        outliers=args.outliers,
        seed=args.seed,
    )
    sys.stdout.write(
        f"{len(truth['studies'])} studies in {args.dir} ({len(truth['broken'])} broken, "
        f"{len(truth['outliers'])} outliers; see truth.json)\n"
    )
    return EXIT_OK


def _report(args: argparse.Namespace) -> int:
    from workstation.cohort.runner import rebuild_report

    try:
        done = rebuild_report(args.dir)
    except (OSError, ValueError) as error:
        sys.stderr.write(f"workstation cohort report: error: {error}\n")
        return EXIT_FAILURE
    if args.json:
        json.dump(done, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    counts = done["counts"]
    sys.stdout.write(
        f"{done['rows']} studies: {counts.get('ok', 0)} ok, {counts.get('failed', 0)} failed, "
        f"{done['flagged']} flagged by QC\nTable: {Path(args.dir) / 'summary.csv'}\n"
        f"Report: {done['report']}\n"
    )
    return EXIT_OK


def _user() -> str:
    import getpass

    return getpass.getuser()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _on_sigterm(handler: Any) -> Any:
    """Install a SIGTERM handler (main thread only); the one it replaces."""
    try:
        return signal.signal(signal.SIGTERM, handler)
    except (ValueError, TypeError):  # not the main thread, or no earlier Python handler
        return None


def _run(args: argparse.Namespace) -> int:
    from workstation.cli_format import ProgressBar
    from workstation.cohort.runner import RunOptions, run_cohort
    from workstation.core.errors import WorkstationError

    local = not args.source.startswith(("http://", "https://"))
    if local and not Path(args.source).exists():
        sys.stderr.write(f"workstation cohort run: error: {args.source} does not exist\n")
        return EXIT_USAGE
    if not args.no_store:  # unlock first, once: a wrong passphrase fails before any work
        from workstation.workflow.analysis_store import open_default_store

        try:
            open_default_store(actor=f"cli:{_user()}").close()
        except WorkstationError as e:
            sys.stderr.write(f"workstation cohort run: error: {e} (or use --no-store)\n")
            return EXIT_FAILURE
    options = RunOptions(
        source=args.source,
        model=args.model,
        out=Path(args.out),
        explain=None if args.explain == "none" else args.explain,
        scheduler=args.scheduler,
        workers=args.workers,
        store=not args.no_store,
        limit=args.limit,
        device=args.device,
        actor=f"cohort:{_user()}",
        progress=ProgressBar(),
        log=lambda text: sys.stderr.write(text + "\n"),
    )
    previous = _on_sigterm(_interrupt)
    try:
        manifest = run_cohort(options)
    except KeyboardInterrupt:
        sys.stderr.write("workstation cohort run: interrupted; run it again to resume\n")
        return EXIT_INTERRUPTED
    except (OSError, ValueError, RuntimeError, TimeoutError, WorkstationError) as e:
        sys.stderr.write(f"workstation cohort run: error: {e}\n")
        return EXIT_FAILURE
    finally:
        _on_sigterm(previous)
    if args.json:
        json.dump(manifest, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        counts = manifest["counts"]
        sys.stdout.write(
            f"{counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} skipped this run, "
            f"{manifest['flagged']} flagged; median {manifest['study_seconds_median']} s per study"
            f"\nReport: {manifest['report']}\n"
        )
    return EXIT_OK

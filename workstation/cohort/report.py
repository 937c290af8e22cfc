"""The cohort HTML report: ``out_dir/report/index.html`` with its PNG plots and thumbnails.

:func:`write_report` reads what a cohort run wrote (``cohort.json``, ``summary.csv``,
``qc_flags.json`` when present, ``thumbs/<study_key>.png``) and writes a page that needs nothing
outside ``report/``: the run summary, counts, the flagged studies with their reasons and
thumbnails (copied into ``report/thumbs/``), the failures with their errors, and matplotlib
plots (``Figure`` + Agg, no pyplot state). Everything taken from the data is HTML-escaped.
"""

from __future__ import annotations

import csv
import html
import json
import math
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from workstation.cohort.outliers import flag_outliers

__all__ = ["write_report"]

_PLOT_COLUMNS = (
    "study_key",
    "status",
    "error",
    "attempts",
    "seconds",
    "group",
    "in_modality",
    "in_spacing_i",
    "in_spacing_k",
    "in_snr",
    "in_p99",
    "out_n_findings",
    "out_total_volume_ml",
)
_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;
text-align:left;vertical-align:top}th{background:#f0f0f0}img.thumb{max-width:128px}
.plots img{max-width:48%;margin:4px;border:1px solid #ddd}.bad{color:#a00}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _float(text: str | None) -> float | None:
    try:
        value = float(text or "")
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _read_rows(summary: Path) -> list[dict[str, str]]:
    """The columns the report shows, for every row (not the whole CSV)."""
    with summary.open(newline="", encoding="utf-8") as handle:
        return [
            {c: row[c] for c in _PLOT_COLUMNS if row.get(c) is not None}
            for row in csv.DictReader(handle)
        ]


def _flags(out_dir: Path, summary: Path) -> dict[str, list[str]]:
    path = out_dir / "qc_flags.json"
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, Mapping) and isinstance(data.get("flags"), Mapping):
            data = data["flags"]
        return {str(k): [str(r) for r in v] for k, v in dict(data).items()}
    return flag_outliers(summary)


def _group_of(rows: list[dict[str, str]]) -> tuple[str, Callable[[dict[str, str]], str]]:
    """A column to group finding volumes by: ``group``, modality, or a spacing bucket."""
    for column in ("group", "in_modality"):
        if len({r.get(column) or "" for r in rows} - {""}) > 1:
            return column, lambda r, c=column: r.get(c) or "?"

    def bucket(row: dict[str, str]) -> str:
        value = _float(row.get("in_spacing_k"))
        return "?" if value is None else f"{round(value * 2) / 2:g} mm"

    return "slice spacing (0.5 mm buckets)", bucket


def _save(figure: Any, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=90)


def _plots(rows: list[dict[str, str]], flagged: set[str], folder: Path) -> list[tuple[str, str]]:
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    ok = [r for r in rows if r.get("status") == "ok"]
    plots: list[tuple[str, str]] = []

    def new(name: str, title: str) -> tuple[Any, Any]:
        figure = Figure(figsize=(6, 4))
        axes = figure.add_subplot()
        axes.set_title(title)
        plots.append((name, title))
        return figure, axes

    def empty(axes: Any) -> None:
        axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes)

    counts = [int(v) for r in ok if (v := _float(r.get("out_n_findings"))) is not None]
    figure, axes = new("findings_count.png", "Number of findings per study")
    if counts:
        axes.hist(counts, bins=range(0, max(counts) + 2), align="left", rwidth=0.8)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlabel("findings")
        axes.set_ylabel("studies")
    else:
        empty(axes)
    _save(figure, folder / plots[-1][0])

    volumes = [v for r in ok if (v := _float(r.get("out_total_volume_ml"))) is not None]
    figure, axes = new("finding_volume.png", "Total finding volume per study")
    if volumes:
        axes.hist(volumes, bins=min(30, max(5, len(volumes) // 3)))
        axes.set_xlabel("mL")
        axes.set_ylabel("studies")
    else:
        empty(axes)
    _save(figure, folder / plots[-1][0])

    label, group = _group_of(ok)
    groups: dict[str, list[float]] = {}
    for r in ok:
        if (v := _float(r.get("out_total_volume_ml"))) is not None:
            groups.setdefault(group(r), []).append(v)
    figure, axes = new("volume_by_group.png", f"Finding volume by {label}")
    if groups:
        names = sorted(groups)
        axes.boxplot([groups[n] for n in names])
        axes.set_xticks(range(1, len(names) + 1), [f"{n} (n={len(groups[n])})" for n in names])
        axes.set_ylabel("mL")
    else:
        empty(axes)
    _save(figure, folder / plots[-1][0])

    figure, axes = new("qc_scatter.png", "QC: SNR against 99th percentile")
    points = [
        (x, y, r.get("study_key") in flagged)
        for r in ok
        if (x := _float(r.get("in_p99"))) is not None and (y := _float(r.get("in_snr"))) is not None
    ]
    groups = ((False, "tab:blue", "not flagged"), (True, "tab:red", "flagged"))
    if not _scatter_groups(
        axes, points, groups, 18, "in_p99 (foreground 99th percentile)", "in_snr"
    ):
        empty(axes)
    _save(figure, folder / plots[-1][0])

    figure, axes = new("seconds.png", "Seconds per study")
    timed = [
        (i, v, r.get("status") == "ok")
        for i, r in enumerate(rows)
        if (v := _float(r.get("seconds"))) is not None
    ]
    groups = ((True, "tab:blue", "ok"), (False, "tab:red", "failed"))
    if not _scatter_groups(axes, timed, groups, 12, "study (summary order)", "s"):
        empty(axes)
    _save(figure, folder / plots[-1][0])
    return plots


def _scatter_groups(
    axes: Any,
    points: list[tuple[float, float, bool]],
    groups: tuple[tuple[bool, str, str], ...],
    size: int,
    xlabel: str,
    ylabel: str,
) -> bool:
    """Scatter ``(x, y, member)`` points, one colour and legend entry per ``(member, colour,
    label)`` group; False (nothing drawn) when there are no points."""
    if not points:
        return False
    for member, colour, label in groups:
        chosen = [(x, y) for x, y, m in points if m is member]
        if chosen:
            axes.scatter(*zip(*chosen, strict=True), c=colour, s=size, label=label)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.legend()
    return True


def _table(header: list[str], body: list[list[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    lines = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in body)
    return f"<table><tr>{head}</tr>{lines}</table>"


def _thumb(out_dir: Path, folder: Path, key: str) -> str:
    source = out_dir / "thumbs" / f"{key}.png"
    if "/" in key or "\\" in key or key in ("", ".", "..") or not source.is_file():
        return ""
    (folder / "thumbs").mkdir(exist_ok=True)
    shutil.copyfile(source, folder / "thumbs" / f"{key}.png")
    return f'<img class="thumb" src="thumbs/{_e(quote(key))}.png" alt="{_e(key)}">'


def write_report(out_dir: Path) -> Path:
    """Write ``out_dir/report/index.html`` (and its PNGs) for a cohort run; return its path."""
    out_dir = Path(out_dir)
    summary = out_dir / "summary.csv"
    folder = out_dir / "report"
    folder.mkdir(parents=True, exist_ok=True)
    meta_path = out_dir / "cohort.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    rows = _read_rows(summary) if summary.is_file() else []
    flags = _flags(out_dir, summary) if summary.is_file() else {}
    by_key = {r.get("study_key", ""): r for r in rows}
    failed = [r for r in rows if r.get("status") != "ok"]
    outliers = {k: v for k, v in flags.items() if by_key.get(k, {}).get("status") == "ok"}
    plots = _plots(rows, set(outliers), folder)

    run = [
        [_e(k), _e(json.dumps(v) if isinstance(v, (dict, list)) else v)] for k, v in meta.items()
    ]
    counts = [
        ["studies", str(len(rows))],
        ["ok", str(len(rows) - len(failed))],
        ["failed", str(len(failed))],
        ["flagged as outliers (ok studies)", str(len(outliers))],
    ]
    flagged_rows = [
        [
            _e(key),
            _thumb(out_dir, folder, key),
            "<ul>" + "".join(f"<li>{_e(reason)}</li>" for reason in reasons) + "</ul>",
        ]
        for key, reasons in outliers.items()
    ]
    failure_rows = [
        [
            _e(r.get("study_key")),
            _e(r.get("attempts")),
            f'<span class="bad">{_e(r.get("error"))}</span>',
        ]
        for r in failed
    ]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Cohort report: {_e(meta.get('model', ''))}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Cohort report: {_e(meta.get('model', ''))}</h1>",
        "<h2>Run</h2>",
        _table(["field", "value"], run) if run else "<p>No cohort.json.</p>",
        "<h2>Counts</h2>",
        _table(["", "studies"], counts),
        "<h2>Flagged studies</h2>",
        "<p>Robust z-scores (median / MAD) of every QC feature over the successful studies; "
        "see <code>workstation.cohort.outliers</code>.</p>",
        _table(["study", "thumbnail", "reasons"], flagged_rows) if flagged_rows else "<p>None.</p>",
        "<h2>Failures</h2>",
        _table(["study", "attempts", "error"], failure_rows) if failure_rows else "<p>None.</p>",
        "<h2>Plots</h2>",
        '<div class="plots">',
        *(f'<img src="{_e(name)}" alt="{_e(title)}" title="{_e(title)}">' for name, title in plots),
        "</div></body></html>",
    ]
    index = folder / "index.html"
    index.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return index

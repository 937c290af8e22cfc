"""Human-readable text for the command line (kept apart from argument handling)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from workstation.dicom.catalog import Catalog


def _date(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 else value or "no date"


def format_catalog(catalog: Catalog) -> str:
    """The catalog as an indented listing, problems last."""
    series = catalog.series
    studies = sum(len(p.studies) for p in catalog.patients)
    lines = [
        f"{catalog.root}: {len(catalog.patients)} patient(s), {studies} study(ies), "
        f"{len(series)} series, {catalog.files_seen} file(s), {len(catalog.problems)} problem(s)"
    ]
    for patient in catalog.patients:
        lines.append(f"\n{patient.name or '(no name)'}  [{patient.patient_id or 'no id'}]")
        for study in patient.studies:
            lines.append(f"  {_date(study.date)}  {study.description or '(no description)'}")
            for s in study.series:
                entry = s.to_json()
                spacing = (
                    "×".join(f"{v:.3g}" for v in entry["spacing"]) + " mm"
                    if entry["spacing"]
                    else "no spacing"
                )
                lines.append(
                    f"    #{s.number if s.number is not None else '-'} {s.modality:<3} "
                    f"{s.description or '(no description)'}: {s.slice_count} slice(s) "
                    f"{entry['columns']}×{entry['rows']}, {spacing}, {entry['orientation']}"
                )
                lines.append(f"       key {s.key}")
                if s.stack.problem:
                    lines.append(f"       not loadable: {s.stack.problem}")
                lines.extend(f"       warning: {w}" for w in s.warnings)
    if catalog.problems:
        lines.append("\nFiles not used:")
        lines.extend(f"  {p.path}: {p.reason}" for p in catalog.problems)
    return "\n".join(lines) + "\n"


class ProgressBar:
    """A one-line progress bar on a terminal (stderr); silent when not a TTY."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = sys.stderr if stream is None else stream  # the current one, not import's
        self.enabled = self.stream.isatty()

    def __call__(self, done: int, total: int, message: str = "") -> None:
        if not self.enabled or total <= 0:
            return
        width = 30
        filled = int(width * done / total)
        bar = "█" * filled + "·" * (width - filled)
        self.stream.write(f"\r{message:<16} {bar} {done}/{total}")
        if done >= total:
            self.stream.write("\r" + " " * (width + 40) + "\r")
        self.stream.flush()

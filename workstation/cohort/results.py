"""A cohort run's output folder: one row file per study (the resume state) and the summaries.

::

    OUT/results/<study_key>.json   the study's row, replaced atomically as it arrives
    OUT/thumbs/<study_key>.png     its thumbnail
    OUT/summary.csv                every row: fixed columns first, then the sorted union
    OUT/cohort.json                the run: model, source, times, counts, the Dask cluster
    OUT/qc_flags.json              outlier flags (:func:`workstation.cohort.qc.flag_outliers`)
    OUT/report/index.html          the report (:func:`workstation.cohort.report.write_report`)

During a run rows are appended to ``summary.csv`` under the header it has (columns a later row
adds are left out until the end); :meth:`CohortFolder.rewrite_summary` then rewrites it from
``results/``, streamed twice (the union of columns, then the rows sorted by key), one row per
study. Non-scalar cells (lists) are written as JSON.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = ["FIXED_COLUMNS", "CohortFolder", "write_atomic"]

FIXED_COLUMNS = (
    "study_key",
    "source",
    "status",
    "error",
    "stage",
    "attempts",
    "seconds",
    "worker",
    "result_id",
    "reused_result",
    "model",
    "model_version",
    "explain",
    "finished",
)
_NOT_IN_CSV = ("history",)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (never half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as f:
            f.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n").encode("utf-8")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return value


def header_for(columns: set[str] | list[str]) -> list[str]:
    """Fixed columns first, then the others sorted."""
    rest = sorted(set(columns) - set(FIXED_COLUMNS) - set(_NOT_IN_CSV))
    return list(FIXED_COLUMNS) + rest


class CohortFolder:
    """The output folder of a cohort run (see the module docstring)."""

    def __init__(self, out: str | os.PathLike[str]) -> None:
        self.root = Path(out)
        self.results = self.root / "results"
        self.thumbs = self.root / "thumbs"
        self.summary = self.root / "summary.csv"
        self.manifest = self.root / "cohort.json"
        self.flags = self.root / "qc_flags.json"
        self._header: list[str] | None = None

    def create(self) -> None:
        """Make the folders."""
        self.results.mkdir(parents=True, exist_ok=True)
        self.thumbs.mkdir(parents=True, exist_ok=True)

    def row_path(self, key: str) -> Path:
        """Where the row of ``key`` lives."""
        return self.results / f"{key}.json"

    def read_row(self, key: str) -> dict[str, Any] | None:
        """The stored row of ``key``, or None (none yet, or unreadable: it runs again)."""
        try:
            return json.loads(self.row_path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def write_row(self, row: Mapping[str, Any]) -> None:
        """Store the row (atomically) and append it to ``summary.csv``."""
        write_atomic(self.row_path(str(row["study_key"])), _json_bytes(dict(row)))
        self._append(row)

    def write_thumbnail(self, key: str, png: bytes) -> None:
        """Store the study's thumbnail."""
        write_atomic(self.thumbs / f"{key}.png", png)

    def write_json(self, path: Path, value: Any) -> None:
        """A JSON file of the folder, atomically."""
        write_atomic(path, _json_bytes(value))

    def _append(self, row: Mapping[str, Any]) -> None:
        if self._header is None:
            try:
                with self.summary.open(newline="", encoding="utf-8") as f:
                    self._header = next(csv.reader(f), None)
            except OSError:
                self._header = None
        new = not self._header
        if new:
            self._header = header_for(list(row))
        with self.summary.open("a", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, self._header, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow({k: _cell(v) for k, v in row.items()})

    def _keys(self) -> list[str]:
        with os.scandir(self.results) as listing:
            names = [e.name for e in listing if e.name.endswith(".json") and e.name[0] != "."]
        return sorted(name[: -len(".json")] for name in names)

    def iter_rows(self) -> Iterator[dict[str, Any]]:
        """Every stored row, sorted by key, one file at a time."""
        if not self.results.is_dir():
            return
        for key in self._keys():
            row = self.read_row(key)
            if row is not None:
                yield row

    def rewrite_summary(self) -> int:
        """Rewrite ``summary.csv`` from ``results/`` (a stable header); returns the row count."""
        columns: set[str] = set()
        for row in self.iter_rows():
            columns.update(row)
        header = header_for(columns)
        handle, temporary = tempfile.mkstemp(prefix=".summary.", dir=self.root)
        count = 0
        try:
            with os.fdopen(handle, "w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, header, extrasaction="ignore")
                writer.writeheader()
                for row in self.iter_rows():
                    writer.writerow({k: _cell(v) for k, v in row.items()})
                    count += 1
            os.replace(temporary, self.summary)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        self._header = header
        return count

    def counts(self) -> dict[str, int]:
        """Rows by status."""
        found: dict[str, int] = {"ok": 0, "failed": 0}
        for row in self.iter_rows():
            status = str(row.get("status"))
            found[status] = found.get(status, 0) + 1
        return found

"""Exports a volume's intensity histogram as CSV: ``workstation export ... --out FILE.hist.csv``."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from workstation.core.volume import Volume

__all__ = ["BINS", "HistogramCsv", "histogram"]

BINS = 64


def histogram(array: np.ndarray, bins: int = BINS) -> tuple[np.ndarray, np.ndarray]:
    """``(counts, edges)`` of the finite values, ``bins`` equal bins from min to max."""
    values = np.asarray(array, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        return np.zeros(bins, dtype=np.int64), np.linspace(0.0, 1.0, bins + 1)
    counts, edges = np.histogram(values, bins=bins)
    return counts, edges


class HistogramCsv:
    """The exporter contribution (entry point ``medical_workstation.exporters``)."""

    title = "Intensity histogram (CSV)"
    suffix = ".hist.csv"

    def export(self, volume: Volume, path: Path) -> None:
        counts, edges = histogram(volume.array)
        with Path(path).open("w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(["bin_low", "bin_high", "count"])
            for low, high, count in zip(edges[:-1], edges[1:], counts, strict=True):
                writer.writerow([f"{low:.10g}", f"{high:.10g}", int(count)])

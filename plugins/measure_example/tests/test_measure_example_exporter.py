"""The histogram exporter writes 64 bins with the right counts."""

from __future__ import annotations

import csv

import numpy as np
from workstation.core.volume import Volume
from workstation.plugins.api import Exporter

from mw_measure_example.exporter import HistogramCsv


def read(path):
    with path.open(newline="", encoding="utf-8") as file:
        return list(csv.reader(file))


def test_counts_per_bin(tmp_path):
    # Values 0..63, each value v appearing v + 1 times: bins of width 63/64 hold one value each.
    values = np.repeat(np.arange(64, dtype=np.int16), np.arange(1, 65))  # 2080 values
    volume = Volume(values.reshape(8, 13, 20))
    exporter = HistogramCsv()
    assert isinstance(exporter, Exporter) and exporter.suffix == ".hist.csv"

    path = tmp_path / "ct.hist.csv"
    exporter.export(volume, path)
    rows = read(path)
    assert rows[0] == ["bin_low", "bin_high", "count"]
    assert len(rows) == 65
    assert [int(r[2]) for r in rows[1:]] == list(range(1, 65))
    assert float(rows[1][0]) == 0.0 and float(rows[-1][1]) == 63.0
    assert sum(int(r[2]) for r in rows[1:]) == volume.array.size


def test_constant_volume(tmp_path):
    path = tmp_path / "flat.hist.csv"
    HistogramCsv().export(Volume(np.full((2, 3, 4), 5.0)), path)
    counts = [int(r[2]) for r in read(path)[1:]]
    assert len(counts) == 64 and sum(counts) == 24 and max(counts) == 24

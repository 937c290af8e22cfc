"""Cohort anomaly detection: which studies look unlike the rest of the cohort?

Method
------
:func:`flag_outliers` reads ``summary.csv`` once, row by row, keeping only the study keys,
statuses, errors and the ``in_*`` / ``out_*`` feature columns. Over the successful (``ok``)
rows, for each feature:

- **numeric** (every non-empty cell parses as a finite number): a robust z-score
  ``z = (x - median) / scale`` with ``scale = 1.4826 · MAD`` (the median absolute deviation,
  scaled to match the standard deviation of a normal distribution). The median and MAD are not
  moved by the outliers themselves, unlike the mean and standard deviation. A study is flagged
  when ``|z| > threshold`` (3.5 by default, Iglewicz & Hoaglin's recommendation), with a reason
  such as ``"in_p99 z=+12.3 (median 812, MAD 40)"``. Features with fewer than
  :data:`MIN_VALUES` values, or all equal, are skipped.
  The scale is at least :data:`MIN_RELATIVE_SCALE` (2 %) of the median's magnitude, so a
  nearly constant feature (a model output that barely varies) does not turn differences of a
  few percent into huge z-scores.
- **MAD = 0**: more than half the studies share one value, a mass point (0 findings, 1 mm
  slices). Scaling by the IQR or the mean deviation then flags ordinary non-zero studies of a
  zero-inflated feature (finding volume), so instead the values *other* than the mass point are
  scored among themselves with the same robust z (a 250 mL lesion among 1–5 mL ones); when
  they are too few for that (< :data:`MIN_VALUES`, or all equal) but rare (at most
  :data:`RARE_FRACTION` of the studies), each is flagged as a rare value
  (``"in_spacing_k=5 (rare: 47 of 48 studies have 1)"``); otherwise the feature is skipped.
- **categorical** (e.g. ``in_modality``): a study whose non-empty value differs from the
  majority value is flagged (``"in_modality=CT differs from the majority MR (48 of 50)"``).

Every failed row is flagged as ``"failed: <error>"``. The result maps study keys to their
reasons, in the CSV's order; unflagged studies are absent.
"""

from __future__ import annotations

import csv
import math
from array import array
from collections import Counter
from pathlib import Path

import numpy as np

__all__ = [
    "MIN_RELATIVE_SCALE",
    "MIN_VALUES",
    "RARE_FRACTION",
    "flag_outliers",
    "robust_scale",
    "score_feature",
]

MIN_VALUES = 5
MIN_RELATIVE_SCALE = 0.02  # the z-score scale is at least 2 % of |median|
RARE_FRACTION = 0.1
_MAD_TO_STD = 1.4826
_FEATURE_PREFIXES = ("in_", "out_")


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else math.nan  # inf: missing, not text


def robust_scale(values: np.ndarray) -> tuple[float, float]:
    """``(median, MAD)`` of ``values``; the z-score scale is ``1.4826 * MAD``."""
    median = float(np.median(values))
    return median, float(np.median(np.abs(values - median)))


def score_feature(name: str, values: np.ndarray, threshold: float) -> dict[int, str]:
    """``{index: reason}`` for the unusual values of one numeric feature (no NaNs)."""
    if values.size < MIN_VALUES:
        return {}
    median, mad = robust_scale(values)
    if mad > 0:
        # A near-constant feature (a model that gives 0.779 for almost every study) would make
        # a 3 % difference look like z = 40: differences below MIN_RELATIVE_SCALE of the typical
        # value are not anomalies.
        scale = max(_MAD_TO_STD * mad, MIN_RELATIVE_SCALE * abs(median))
        z = (values - median) / scale
        detail = f"median {_fmt(median)}, MAD {_fmt(mad)}"
        return {
            int(i): f"{name} z={z[i]:+.1f} ({detail})" for i in np.nonzero(np.abs(z) > threshold)[0]
        }
    # MAD = 0: more than half the studies share one value (a mass point such as 0 findings)
    differ = np.nonzero(values != median)[0]
    if differ.size == 0:
        return {}  # constant: nothing to compare
    others = values[differ]
    other_median, other_mad = robust_scale(others)
    common = f"{values.size - differ.size} of {values.size} studies have {_fmt(median)}"
    if differ.size >= MIN_VALUES and other_mad > 0:
        z = (others - other_median) / (_MAD_TO_STD * other_mad)
        detail = f"among the other values: median {_fmt(other_median)}, MAD {_fmt(other_mad)}"
        return {
            int(differ[i]): f"{name} z={z[i]:+.1f} ({detail}; {common})"
            for i in np.nonzero(np.abs(z) > threshold)[0]
        }
    if differ.size <= RARE_FRACTION * values.size:
        return {int(i): f"{name}={_fmt(float(values[i]))} (rare: {common})" for i in differ}
    return {}


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def flag_outliers(summary_csv: Path, *, threshold: float = 3.5) -> dict[str, list[str]]:
    """Flag unusual and failed studies in a cohort ``summary.csv`` (see the module docstring).

    Returns
    -------
    dict
        ``{study_key: [reason, ...]}`` for flagged studies only.
    """
    keys: list[str] = []
    order: list[str] = []  # every row's key, failed ones included
    reasons: dict[str, list[str]] = {}
    numbers: dict[str, array] = {}  # one float per ok row; NaN where the cell is empty
    texts: dict[str, list[str]] = {}  # columns with a non-numeric cell, as text
    with Path(summary_csv).open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = [c for c in reader.fieldnames or () if c.startswith(_FEATURE_PREFIXES)]
        for row in reader:
            key = row.get("study_key") or f"row {len(order) + 1}"
            order.append(key)
            if (row.get("status") or "").strip().lower() != "ok":
                error = (row.get("error") or "").strip() or "no error recorded"
                reasons.setdefault(key, []).append(f"failed: {error}")
                continue
            keys.append(key)
            for column in columns:
                cell = (row.get(column) or "").strip()
                if column in texts:
                    texts[column].append(cell)
                    continue
                value = _number(cell) if cell and cell.lower() != "nan" else math.nan
                if value is None:  # the first text cell: the column becomes categorical
                    done = numbers.pop(column, array("d"))
                    texts[column] = ["" if math.isnan(v) else repr(v) for v in done] + [cell]
                    continue
                numbers.setdefault(column, array("d")).append(value)

    found: dict[str, list[str]] = {}
    for column, column_values in numbers.items():
        values = np.frombuffer(column_values, dtype=np.float64)
        valid = np.nonzero(~np.isnan(values))[0]
        for index, reason in score_feature(column, values[valid], threshold).items():
            found.setdefault(keys[valid[index]], []).append(reason)
    for column, cells in texts.items():
        counted = Counter(c for c in cells if c)
        if len(counted) < 2:
            continue
        majority, count = counted.most_common(1)[0]
        total = sum(counted.values())
        for index, cell in enumerate(cells):
            if cell and cell != majority:
                found.setdefault(keys[index], []).append(
                    f"{column}={cell} differs from the majority {majority} ({count} of {total})"
                )
    return {
        key: found.get(key, []) + reasons.get(key, [])
        for key in dict.fromkeys(order)
        if key in found or key in reasons
    }

"""Float maps (heatmaps, probabilities) written as DICOM Parametric Map objects (highdicom).

The values are stored as 32-bit Float Pixel Data with an identity Real World Value Mapping
(slope 1, intercept 0) whose LUT label is the map's name and whose unit is a UCUM code.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.coding import Code

from workstation.outputs._dicom_common import (
    AlgorithmInfo,
    OutputError,
    check_array,
    check_source,
    clip_lo,
    new_uid,
    read,
    save,
    source_uids,
)

__all__ = ["read_parametric_map", "write_parametric_map"]


def _content_label(name: str) -> str:
    """``name`` as a Content Label (CS: upper case, digits, space, underscore; <= 16)."""
    text = "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in name.upper())
    return text.strip("_")[:16] or "MAP"


def write_parametric_map(
    source: Sequence[pydicom.Dataset],
    values: np.ndarray,
    algorithm: AlgorithmInfo,
    path: str | Path,
    *,
    name: str,
    units: str = "{attribution}",
    series_number: int = 903,
    series_description: str | None = None,
) -> pydicom.Dataset:
    """Write ``values`` as a float parametric map derived from ``source``.

    Parameters
    ----------
    source
        Source slice headers in the volume's slice order (one series).
    values
        Real array ``(len(source), Rows, Columns)``, stored as float32; must be finite.
    algorithm
        The model that made the map.
    path
        Output file, written atomically.
    name
        What the values are, e.g. ``"heatmap"``: the LUT label (16 characters) and
        explanation, and the Content Label (upper case, e.g. ``"HEATMAP"``).
    units
        UCUM code of the values (``"{attribution}"`` by default, ``"1"`` for a probability).
    series_number, series_description
        Of the new series (the description defaults to ``"AI <name> <model>"``).

    Returns
    -------
    pydicom.Dataset
        The map (a :class:`highdicom.pm.ParametricMap`).

    Raises
    ------
    OutputError
        Empty source, wrong shape, non-numeric or non-finite values, or a write failure.
    """
    values = check_array(values, source, "value")
    if not (np.issubdtype(values.dtype, np.number) or values.dtype == np.bool_):
        raise OutputError(f"The value array must be numeric, not {values.dtype}.")
    values = values.astype(np.float32)
    if not np.all(np.isfinite(values)):
        raise OutputError("The value array holds NaN or infinite values; DICOM cannot map them.")
    if not name.strip():
        raise OutputError("The parametric map needs a name (e.g. 'heatmap').")
    low, high = float(values.min()), float(values.max())
    mapping = hd.pm.RealWorldValueMapping(
        lut_label=clip_lo(name, 16),
        lut_explanation=clip_lo(f"{name} ({algorithm.name} {algorithm.version})"),
        unit=Code(units, "UCUM", units),
        value_range=(low, high),
        slope=1.0,
        intercept=0.0,
    )
    parametric_map = hd.pm.ParametricMap(
        source_images=list(source),
        pixel_array=values,
        series_instance_uid=new_uid(),
        series_number=series_number,
        sop_instance_uid=new_uid(),
        instance_number=1,
        manufacturer=clip_lo(algorithm.manufacturer),
        manufacturer_model_name=clip_lo(algorithm.name),
        software_versions=clip_lo(algorithm.version),
        device_serial_number="none",
        contains_recognizable_visual_features=False,
        real_world_value_mappings=[mapping],
        voi_lut_transformations=[
            hd.VOILUTTransformation(
                window_center=(low + high) / 2.0,
                window_width=max(high - low, 1e-6),
                window_explanation="data range",
            )
        ],
        content_description=algorithm.description(),
        content_label=_content_label(name),
    )
    parametric_map.SeriesDescription = clip_lo(series_description or f"AI {name} {algorithm.name}")
    save(parametric_map, path)
    return parametric_map


def read_parametric_map(path: str | Path, source: Sequence[pydicom.Dataset]) -> np.ndarray:
    """Read a parametric map back onto the grid of ``source``.

    Frames are matched to source slices by their Referenced SOP Instance UID, so the result
    is in ``source`` order whatever the frame order in the file. The first Real World Value
    Mapping is applied (the identity for maps written by :func:`write_parametric_map`).

    Returns
    -------
    numpy.ndarray
        ``float32`` ``(len(source), Rows, Columns)``.

    Raises
    ------
    OutputError
        Unreadable file, not a parametric map, or frames that do not match the source.
    """
    check_source(source)
    dataset = read(path)
    try:
        parametric_map = hd.pm.ParametricMap.from_dataset(dataset, copy=False)
        pixels = parametric_map.get_pixels_by_source_instance(
            source_sop_instance_uids=source_uids(source), dtype=np.float32
        )
    except (AttributeError, ValueError, TypeError, KeyError, IndexError) as exc:
        raise OutputError(
            f"{path} is not a parametric map of the given source slices: {exc}", path=path
        ) from exc
    return np.ascontiguousarray(pixels.reshape(pixels.shape[:3]), dtype=np.float32)

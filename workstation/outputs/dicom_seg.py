"""Label volumes written as DICOM Segmentation objects (highdicom), and read back.

One BINARY segment per :class:`SegmentInfo`, numbered 1, 2, ... in the order given. The
original label value of each segment is kept in the segment's Segment Description (0062,0006)
as ``"label value N"``, so :func:`read_segmentation` restores the caller's label values (a SEG
from elsewhere, without that text, reads back with its segment numbers as labels).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
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

__all__ = ["SegmentInfo", "read_segmentation", "write_segmentation"]

_LABEL_TEXT = "label value {}"
_LABEL_PATTERN = re.compile(r"label value (\d+)")


@dataclass(frozen=True)
class SegmentInfo:
    """One segment: the voxels equal to ``label`` in the label array.

    Attributes
    ----------
    label
        Value in the label array (1..255 in the read-back ``uint8`` array).
    name
        Segment Label (e.g. ``"lesion"``).
    category, property_type
        Segmented property category and type; SNOMED "Morphologically abnormal structure"
        (49755003) / "Lesion" (52988006) by default.
    """

    label: int
    name: str
    category: Code = codes.SCT.MorphologicallyAbnormalStructure
    property_type: Code = codes.SCT.Lesion


def _check_segments(segments: Sequence[SegmentInfo]) -> None:
    if not segments:
        raise OutputError("No segments were described; give at least one SegmentInfo.")
    values = [segment.label for segment in segments]
    if len(set(values)) != len(values):
        raise OutputError(f"Segment label values repeat: {values}; each must be unique.")
    for value in values:
        if not 1 <= int(value) <= 255:
            raise OutputError(f"Segment label value {value} is outside 1..255.")


def write_segmentation(
    source: Sequence[pydicom.Dataset],
    labels: np.ndarray,
    segments: Sequence[SegmentInfo],
    algorithm: AlgorithmInfo,
    path: str | Path,
    *,
    series_number: int = 901,
    series_description: str | None = None,
) -> pydicom.Dataset:
    """Write ``labels`` as a BINARY DICOM SEG derived from ``source``.

    Parameters
    ----------
    source
        Source slice headers in the volume's slice order (one series).
    labels
        Integer array ``(len(source), Rows, Columns)``; voxels equal to a segment's ``label``
        belong to it, other values are ignored.
    segments
        The segments to write; a label value that never occurs gives an empty segment.
    algorithm
        The model (AUTOMATIC segment algorithm, written to every segment).
    path
        Output file, written atomically.
    series_number, series_description
        Of the new series (the description defaults to ``"AI SEG <model>"``).

    Returns
    -------
    pydicom.Dataset
        The segmentation (a :class:`highdicom.seg.Segmentation`).

    Raises
    ------
    OutputError
        Empty source, wrong array shape, bad segment list, or a write failure.
    """
    labels = check_array(labels, source, "label")
    if not np.issubdtype(labels.dtype, np.integer) and labels.dtype != np.bool_:
        raise OutputError(f"The label array must hold integers, not {labels.dtype}.")
    _check_segments(segments)
    # Label map with the segment numbers (1..n) highdicom expects; other values become 0.
    numbered = np.zeros(labels.shape, dtype=np.uint8)  # at most 255 unique label values
    descriptions = []
    for number, segment in enumerate(segments, start=1):
        numbered[labels == segment.label] = number
        description = hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=clip_lo(segment.name),
            segmented_property_category=segment.category,
            segmented_property_type=segment.property_type,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm.identification(),
        )
        description.SegmentDescription = _LABEL_TEXT.format(int(segment.label))
        descriptions.append(description)
    seg = hd.seg.Segmentation(
        source_images=list(source),
        pixel_array=numbered,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=new_uid(),
        series_number=series_number,
        sop_instance_uid=new_uid(),
        instance_number=1,
        manufacturer=clip_lo(algorithm.manufacturer),
        manufacturer_model_name=clip_lo(algorithm.name),
        software_versions=clip_lo(algorithm.version),
        device_serial_number="none",
        content_description=algorithm.description(),
        content_label="AI_SEGMENTATION",
        # highdicom refuses a SEG whose frames are all omitted: keep them when nothing is set.
        omit_empty_frames=bool(numbered.any()),
    )
    seg.SeriesDescription = clip_lo(series_description or f"AI SEG {algorithm.name}")
    save(seg, path)
    return seg


def _label_of(item: pydicom.Dataset) -> int:
    """The original label value of a Segment Sequence item (its number if not recorded)."""
    match = _LABEL_PATTERN.fullmatch(str(item.get("SegmentDescription", "")).strip())
    return int(match.group(1)) if match else int(item.SegmentNumber)


def read_segmentation(
    path: str | Path, source: Sequence[pydicom.Dataset]
) -> tuple[np.ndarray, dict[int, str]]:
    """Read a SEG back onto the grid of ``source``.

    Frames are matched to source slices by their Referenced SOP Instance UID, so the result
    is in ``source`` order whatever the frame order in the file.

    Returns
    -------
    labels : numpy.ndarray
        ``uint8`` ``(len(source), Rows, Columns)``; each segment's original label value (see
        the module docstring), 0 elsewhere. Where segments overlap, the later one wins.
    names : dict of int to str
        Label value to Segment Label.

    Raises
    ------
    OutputError
        Unreadable file, not a SEG, or no frame refers to the given source.
    """
    check_source(source)
    dataset = read(path)
    try:
        seg = hd.seg.Segmentation.from_dataset(dataset, copy=False)
    except (AttributeError, ValueError, TypeError, KeyError) as exc:
        raise OutputError(f"{path} is not a readable DICOM segmentation: {exc}", path=path) from exc
    numbers = [int(item.SegmentNumber) for item in seg.SegmentSequence]
    values = {int(item.SegmentNumber): _label_of(item) for item in seg.SegmentSequence}
    names = {
        values[int(item.SegmentNumber)]: str(item.SegmentLabel) for item in seg.SegmentSequence
    }
    if max(values.values(), default=0) > 255:
        raise OutputError(f"{path} has label values above 255; they do not fit uint8.")
    try:
        # One channel per segment (BINARY frames may overlap): combine them ourselves.
        stack = seg.get_pixels_by_source_instance(
            source_sop_instance_uids=source_uids(source),
            segment_numbers=numbers,
            assert_missing_frames_are_empty=True,
            dtype=np.uint8,
        )
    except (ValueError, KeyError, IndexError) as exc:
        raise OutputError(
            f"The segmentation {path} does not match the given source slices: {exc}", path=path
        ) from exc
    labels = np.zeros(stack.shape[:3], dtype=np.uint8)
    for channel, number in enumerate(numbers):
        labels[stack[..., channel] > 0] = values[number]
    return labels, names

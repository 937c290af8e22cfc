"""Helpers shared by the DICOM writers: algorithm identity, source checks, atomic saving.

The writers take the source slice headers (``pydicom.dcmread(path, stop_before_pixels=True)``)
in the volume's slice order: slice ``k`` of a ``[k, j, i]`` array belongs to ``source[k]``.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes

from workstation.core.errors import WorkstationError
from workstation.core.files import write_atomic

#: Families accepted in :attr:`AlgorithmInfo.family` (CID 7162), by lower-case name.
_FAMILIES = {
    "artificial intelligence": codes.cid7162.ArtificialIntelligence,
    "morphological operations": codes.cid7162.MorphologicalOperations,
    "histogram analysis": codes.cid7162.HistogramAnalysis,
    "manual processing": codes.cid7162.ManualProcessing,
}

_ASCII = str.maketrans({"—": "-", "–": "-", "‘": "'", "’": "'", "“": '"', "”": '"', "…": "..."})


class OutputError(WorkstationError):
    """A result could not be written as (or read back from) a DICOM derived object."""


@dataclass(frozen=True)
class AlgorithmInfo:
    """Identity of the model that produced a result.

    Attributes
    ----------
    name, version
        Written to the algorithm identification, the manufacturer's model name and the
        software versions of every derived object.
    family
        ``"artificial intelligence"`` (default), ``"morphological operations"``,
        ``"histogram analysis"`` or ``"manual processing"`` (DICOM CID 7162).
    manufacturer
        The Manufacturer of the derived objects.
    disclaimer
        Short text put into the content/series descriptions (clipped to the VR length).
    """

    name: str
    version: str
    family: str = "artificial intelligence"
    manufacturer: str = "Medical Workstation"
    disclaimer: str = "demonstration model — not for clinical use"

    def family_code(self) -> pydicom.sr.coding.Code:
        """The CID 7162 code of :attr:`family`."""
        try:
            return _FAMILIES[self.family.strip().lower()]
        except KeyError:
            known = ", ".join(sorted(_FAMILIES))
            raise OutputError(
                f"Unknown algorithm family {self.family!r}; use one of: {known}."
            ) from None

    def identification(self) -> hd.AlgorithmIdentificationSequence:
        """The Segment/Parametric-map algorithm identification sequence."""
        return hd.AlgorithmIdentificationSequence(
            name=self.name, family=self.family_code(), version=self.version
        )

    def sr_identification(self) -> hd.sr.AlgorithmIdentification:
        """The SR (TID 4019) algorithm identification."""
        return hd.sr.AlgorithmIdentification(name=self.name, version=self.version)

    def description(self) -> str:
        """``"disclaimer (name version)"`` clipped to 64 characters (LO)."""
        return clip_lo(f"{self.disclaimer} ({self.name} {self.version})")


def clip_lo(text: str, length: int = 64) -> str:
    """``text`` as ASCII, shortened to ``length`` characters (LO and similar VRs).

    The derived objects inherit the source's Specific Character Set (often ISO_IR 100), so
    dashes and quotes outside ASCII are replaced rather than left to encode as ``?``.
    """
    text = " ".join(text.translate(_ASCII).split())
    text = text.encode("ascii", "replace").decode("ascii")
    return text if len(text) <= length else text[: length - 3] + "..."


def new_uid() -> str:
    """A fresh UID (highdicom's ``2.25`` UUID-derived form)."""
    return str(hd.UID())


def check_source(source: Sequence[pydicom.Dataset]) -> tuple[int, int]:
    """Check that ``source`` is one non-empty, single-frame series on one grid.

    Returns
    -------
    tuple of int
        ``(Rows, Columns)`` shared by every slice.

    Raises
    ------
    OutputError
        Empty list, several series, or slices of different sizes.
    """
    if len(source) == 0:
        raise OutputError("No source slices were given; a derived object needs its source series.")
    first = source[0]
    for keyword in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "Rows", "Columns"):
        if keyword not in first:
            raise OutputError(f"The source slices have no {keyword}; they are not DICOM images.")
    size = (int(first.Rows), int(first.Columns))
    uids = set()
    for index, item in enumerate(source):
        if item.get("SeriesInstanceUID") != first.SeriesInstanceUID:
            raise OutputError(
                f"Source slice {index} belongs to another series; all slices must share one.",
                uid=str(item.get("SeriesInstanceUID", "")),
            )
        if (int(item.Rows), int(item.Columns)) != size:
            raise OutputError(
                f"Source slice {index} is {item.Rows}x{item.Columns}, "
                f"slice 0 is {size[0]}x{size[1]}; all slices must have the same size."
            )
        uids.add(str(item.SOPInstanceUID))
    if len(uids) != len(source):
        raise OutputError("The source list holds the same instance twice.")
    return size


def check_array(array: np.ndarray, source: Sequence[pydicom.Dataset], what: str) -> np.ndarray:
    """Check that ``array`` is ``(len(source), Rows, Columns)``; return it as an ndarray."""
    rows, columns = check_source(source)
    array = np.asarray(array)
    expected = (len(source), rows, columns)
    if array.shape != expected:
        raise OutputError(
            f"The {what} array has shape {array.shape}, but the source series needs "
            f"{expected} (slices, rows, columns)."
        )
    return array


def source_uids(source: Sequence[pydicom.Dataset]) -> list[str]:
    """The SOP Instance UIDs of ``source``, in order."""
    return [str(item.SOPInstanceUID) for item in source]


def save(dataset: pydicom.Dataset, path: str | Path) -> None:
    """Write ``dataset`` as a DICOM file atomically (temporary file, then rename)."""
    buffer = io.BytesIO()
    try:
        pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
    except (ValueError, TypeError, AttributeError) as exc:
        raise OutputError(f"Could not encode the DICOM object: {exc}", path=path) from exc
    try:
        write_atomic(path, buffer.getvalue())
    except OSError as exc:
        raise OutputError(f"Could not write {path}: {exc.strerror or exc}", path=path) from exc


def read(path: str | Path) -> pydicom.Dataset:
    """Read a DICOM file, raising :class:`OutputError` when it cannot be read."""
    try:
        return pydicom.dcmread(path)
    except (OSError, pydicom.errors.InvalidDicomError) as exc:
        raise OutputError(f"Could not read the DICOM file {path}: {exc}", path=path) from exc

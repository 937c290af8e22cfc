"""Errors of the DICOM engine (see :mod:`workstation.core.errors` for the whole tree).

::

    WorkstationError
    └── DicomError
        ├── NotDicomError           the file is not DICOM (no preamble, no DICOM elements)
        │   └── DicomDirectoryError  a DICOMDIR: an index of the tree, skipped by scans
        ├── DicomReadError          DICOM, but the header cannot be read (truncated, corrupt)
        ├── SeriesNotFoundError     no series with that UID under the source
        ├── AmbiguousSeriesError    several series or stacks, and none was chosen
        ├── UnsupportedSeriesError  a series that cannot become one correct volume
        ├── PixelDecodeError        pixel data present but not decodable
        └── ExportError             a volume could not be written (format, folder, disk)
"""

from __future__ import annotations

from workstation.core.errors import WorkstationError


class DicomError(WorkstationError):
    """Base of the DICOM engine's errors."""


class NotDicomError(DicomError):
    """The file is not a DICOM file."""


class DicomDirectoryError(NotDicomError):
    """The file is a DICOMDIR: an index of the image files in its tree, not an image."""


class DicomReadError(DicomError):
    """The file looks like DICOM but its header cannot be read."""


class SeriesNotFoundError(DicomError):
    """No series with the requested UID exists under the source."""


class AmbiguousSeriesError(DicomError):
    """The source holds several series (or stacks) and none was chosen.

    ``choices`` lists the keys that would be accepted.
    """

    def __init__(self, message: str, *, choices: list[str], path: str | None = None) -> None:
        super().__init__(message, path=path)
        self.choices = choices


class UnsupportedSeriesError(DicomError):
    """The series cannot be assembled into one correct volume (the message says why)."""


class PixelDecodeError(DicomError):
    """Pixel data are present but could not be decoded."""


class ExportError(DicomError):
    """The volume could not be written (unknown format, missing folder, write failure)."""

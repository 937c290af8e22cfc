"""The root of every error the workstation raises on purpose.

Hierarchy (each package adds its own branch under the root)::

    WorkstationError
    ├── Cancelled                 the user (or a newer task) cancelled the work
    ├── ConfigError               bad settings or environment (workstation.config)
    ├── GeometryMismatchError     layers on different voxel grids (workstation.render.grid)
    ├── SecurityError             workstation.security (tree in security/errors.py)
    └── DicomError                workstation.dicom
        ├── NotDicomError         the file is not DICOM at all (DicomDirectoryError: a DICOMDIR)
        ├── DicomReadError        DICOM, but unreadable (truncated, corrupt header)
        ├── SeriesNotFoundError   no series with that UID under the source
        ├── AmbiguousSeriesError  several series / stacks and none was chosen
        ├── UnsupportedSeriesError  e.g. Siemens mosaic, positions repeated with no way to split
        ├── PixelDecodeError      pixel data present but cannot be decoded
        └── ExportError           a volume could not be written (workstation.dicom.export)

Errors carry structured context (``path``, ``uid``) so the UI can show them without parsing
the message, and the message says what the user can do about it.
"""

from __future__ import annotations

from pathlib import Path


class WorkstationError(Exception):
    """Base class of every error raised on purpose by the workstation.

    Parameters
    ----------
    message
        Human-readable, actionable text (no PHI).
    path
        The file or folder concerned, if any.
    uid
        The DICOM UID concerned (series or instance), if any.
    """

    def __init__(self, message: str, *, path: str | Path | None = None, uid: str | None = None):
        super().__init__(message)
        self.message = message
        self.path = None if path is None else Path(path)
        self.uid = uid

    def __str__(self) -> str:
        return self.message


class Cancelled(WorkstationError):
    """The operation was cancelled through its :class:`~workstation.core.tasks.CancelToken`."""

    def __init__(self, message: str = "cancelled") -> None:
        super().__init__(message)


class ConfigError(WorkstationError):
    """Settings or environment variables are invalid."""

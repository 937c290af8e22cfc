"""Write a Volume to research formats with correct geometry.

SimpleITK writes NIfTI, NRRD and MetaImage and converts ITK's LPS geometry to each format's own
convention (RAS for NIfTI's qform/sform), so the geometry crosses over in exactly one place:
:meth:`workstation.core.Volume.to_sitk`.
"""

from __future__ import annotations

import os
from pathlib import Path

from workstation.core.errors import WorkstationError
from workstation.core.volume import Volume

EXPORT_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


class ExportError(WorkstationError):
    """The volume could not be written."""


def export_volume(volume: Volume, path: str | os.PathLike[str], *, compress: bool = True) -> Path:
    """Write ``volume`` to ``path``; the format follows the suffix (see ``EXPORT_SUFFIXES``).

    The file is written next to its destination and renamed into place, so a failed export
    never leaves a half-written file under the requested name.
    """
    import SimpleITK as sitk

    path = Path(path)
    name = path.name.lower()
    suffix = next((s for s in EXPORT_SUFFIXES if name.endswith(s)), None)
    if suffix is None:
        raise ExportError(
            f"unknown export format for {path.name}: use one of {', '.join(EXPORT_SUFFIXES)}",
            path=path,
        )
    if not path.parent.exists():
        raise ExportError(f"folder does not exist: {path.parent}", path=path.parent)
    partial = path.with_name(f".{path.name[: -len(suffix)]}.partial{suffix}")
    try:
        sitk.WriteImage(volume.to_sitk(), os.fspath(partial), useCompression=compress)
        os.replace(partial, path)
    except RuntimeError as error:
        partial.unlink(missing_ok=True)
        raise ExportError(f"cannot write {path.name}: {error}", path=path) from error
    return path

"""Write a Volume to research formats with correct geometry.

SimpleITK writes NIfTI, NRRD and MetaImage and converts ITK's LPS geometry to each format's own
convention (RAS for NIfTI's qform/sform), so the geometry crosses over in exactly one place:
:meth:`workstation.core.Volume.to_sitk`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from workstation.core.volume import Volume
from workstation.dicom.errors import ExportError

EXPORT_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


def check_export_path(path: str | os.PathLike[str]) -> str:
    """The export suffix of ``path`` (one of ``EXPORT_SUFFIXES``), checked before any work.

    Raises
    ------
    ExportError
        When the suffix is not a known format or the destination folder does not exist.
    """
    path = Path(path)
    name = path.name.lower()
    suffix = next((s for s in EXPORT_SUFFIXES if name.endswith(s) and name != s), None)
    if suffix is None:
        raise ExportError(
            f"unknown export format for {path.name!r}: use one of {', '.join(EXPORT_SUFFIXES)}",
            path=path,
        )
    if not path.parent.is_dir():
        raise ExportError(f"folder does not exist: {path.parent}", path=path.parent)
    return suffix


def export_volume(volume: Volume, path: str | os.PathLike[str], *, compress: bool = True) -> Path:
    """Write ``volume`` to ``path``; the format follows the suffix (see ``EXPORT_SUFFIXES``).

    The files are written into a hidden temporary folder beside the destination and moved into
    place when complete (a detached header, ``.mhd`` or ``.nhdr``, last), so a failed export
    never leaves a half-written file under the requested name.

    Raises
    ------
    ExportError
        Unknown suffix, missing folder, or the write failed.
    """
    import SimpleITK as sitk

    path = Path(path)
    suffix = check_export_path(path)
    try:
        staging = Path(tempfile.mkdtemp(prefix=".export-", dir=path.parent))
    except OSError as error:
        raise ExportError(f"cannot write in {path.parent}: {error}", path=path.parent) from error
    try:
        # ITK picks the writer by a lower-case suffix ("V.NII.GZ" is refused): stage it so.
        staged = staging / (path.name[: -len(suffix)] + suffix)
        sitk.WriteImage(volume.to_sitk(), os.fspath(staged), useCompression=compress)
        # Detached data files first (they keep the names the header refers to), header last.
        for written in sorted(staging.iterdir(), key=lambda p: p == staged):
            os.replace(written, path if written == staged else path.parent / written.name)
    except (RuntimeError, OSError) as error:
        raise ExportError(f"cannot write {path.name}: {error}", path=path) from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path

"""NIfTI-1 files (``.nii`` / ``.nii.gz``) for research tools, written and read through SimpleITK.

SimpleITK converts our LPS geometry into NIfTI's RAS ``qform``/``sform`` (x and y negated) on
writing and back on reading, so a :class:`~workstation.core.volume.Volume` round-trips with its
array, spacing, origin and direction. The dtype is kept: float32 maps stay float32, uint8 label
maps stay uint8 (a boolean mask is written as uint8).

Files are written to a temporary file in the target folder and renamed into place, so a reader
sees the old file or the new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np

from workstation.core.errors import WorkstationError
from workstation.core.volume import Volume

__all__ = ["NiftiError", "read_nifti", "write_nifti"]

_SUFFIXES = (".nii.gz", ".nii")
_DESCRIP_BYTES = 80  # the NIfTI-1 header's ``descrip`` field, NUL-terminated when shorter
# ITK's NIfTI writer fills ``descrip`` from this metadata key; its reader exposes "descrip".
_WRITE_KEY = "ITK_FileNotes"
_READ_KEY = "descrip"


class NiftiError(WorkstationError):
    """A NIfTI file could not be written or read."""


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return suffix
    raise NiftiError(f"a NIfTI file name must end in .nii or .nii.gz: {path.name}", path=path)


def _clip_description(description: str) -> str:
    """``description`` on one line, cut to at most 79 UTF-8 bytes (room for the NUL)."""
    text = " ".join(description.split())
    encoded = text.encode("utf-8")[: _DESCRIP_BYTES - 1]
    return encoded.decode("utf-8", errors="ignore")


def write_nifti(volume: Volume, path: str | Path, *, description: str | None = None) -> Path:
    """Write ``volume`` as NIfTI-1, atomically.

    Parameters
    ----------
    volume
        The image; its geometry is LPS (converted to RAS in the file by SimpleITK).
    path
        Target file; ``.nii.gz`` is gzip-compressed, ``.nii`` is not.
    description
        Short text for the header's ``descrip`` (cut to 79 bytes), e.g.
        ``"explanation gradcam demo-lesion-seg 0.1.0"``. Never put PHI here.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    NiftiError
        Bad suffix, or SimpleITK could not write the file.
    """
    import SimpleITK as sitk

    target = Path(path)
    suffix = _suffix(target)
    if volume.array.dtype == np.bool_:
        volume = volume.with_array(volume.array.astype(np.uint8))
    image = volume.to_sitk()
    if description:
        image.SetMetaData(_WRITE_KEY, _clip_description(description))
    # The temporary name keeps the suffix: SimpleITK picks the format (and gzip) from it.
    handle, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=target.parent)
    os.close(handle)
    try:
        sitk.WriteImage(image, temporary)
        os.replace(temporary, target)
    except RuntimeError as error:  # SimpleITK reports I/O failures as RuntimeError
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise NiftiError(f"could not write NIfTI file: {error}", path=target) from error
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return target


def read_nifti(path: str | Path) -> Volume:
    """Read a 3D scalar NIfTI file into a :class:`Volume` (geometry back in LPS).

    The header's ``descrip``, when not empty, is kept as ``metadata["description"]``.

    Raises
    ------
    NiftiError
        Missing or unreadable file, or not a 2D/3D scalar image.
    """
    import SimpleITK as sitk

    source = Path(path)
    _suffix(source)
    if not source.is_file():
        raise NiftiError(f"no such NIfTI file: {source}", path=source)
    try:
        image = sitk.ReadImage(str(source))
    except RuntimeError as error:
        raise NiftiError(f"could not read NIfTI file: {error}", path=source) from error
    if image.GetDimension() not in (2, 3) or image.GetNumberOfComponentsPerPixel() != 1:
        raise NiftiError(
            f"only 2D/3D scalar NIfTI images are supported (dimension {image.GetDimension()}, "
            f"{image.GetNumberOfComponentsPerPixel()} components)",
            path=source,
        )
    metadata: dict[str, str] = {}
    if image.HasMetaDataKey(_READ_KEY) and image.GetMetaData(_READ_KEY).strip():
        metadata["description"] = image.GetMetaData(_READ_KEY).strip()
    return Volume.from_sitk(image, metadata=metadata)

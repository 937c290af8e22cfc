"""Stored pixel values of one frame of a retrieved instance (a DICOM file held in memory).

Native little-endian data are located with the engine's fast header reader and returned as a
zero-copy view of the bytes. Anything else (compressed, big endian, deflated, multi-frame, odd
bit depths) is decoded by pydicom from an in-memory file, trying the same plugins in the same
order as a local load (:func:`workstation.dicom._decode.plugin_order`), so a remote series
decodes to exactly the voxels of the same files on disk. Nothing is written to disk: a
retrieved instance is patient data, and the cache keeps it only encrypted.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from workstation.dicom._decode import DECODE_FAILURES, LENIENT, plugin_order
from workstation.dicom._skim import skim
from workstation.dicom.errors import PixelDecodeError
from workstation.dicom.pixels import PixelLayout

_NATIVE_LE = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1")


@dataclass(frozen=True)
class Instance:
    """A retrieved DICOM file, its transfer syntax and (when the fast reader handled it) the
    header values with the pixel data offset; read once, used for every frame."""

    data: bytes
    transfer_syntax: str | None
    sop_instance_uid: str | None
    values: dict[str, Any] | None

    @classmethod
    def read(cls, data: bytes) -> Instance:
        """Parse the header of ``data`` (up to the pixel data)."""
        values = skim(data, len(data))
        if values is not None:
            sop = values.get("SOPInstanceUID")
            return cls(data, str(values["TransferSyntaxUID"]), sop and str(sop), values)
        from pydicom import dcmread
        from pydicom.errors import InvalidDicomError

        try:
            dataset = dcmread(io.BytesIO(data), stop_before_pixels=True, specific_tags=[0x00080018])
            sop = dataset.get("SOPInstanceUID")
            uid = dataset.file_meta.get("TransferSyntaxUID")
        except (InvalidDicomError, *DECODE_FAILURES):
            return cls(data, None, None, None)
        return cls(data, None if uid is None else str(uid), None if sop is None else str(sop), None)


def native_frame(instance: Instance, frame: int, layout: PixelLayout) -> np.ndarray | None:
    """One native little-endian frame (a copy), or None when pydicom must decode it."""
    values = instance.values
    if layout.bits_allocated not in (8, 16, 32) or values is None:
        return None
    if instance.transfer_syntax not in _NATIVE_LE:
        return None
    offset, length = values["_pixel_offset"], values["_pixel_length"]
    if offset is None or length is None or length < (frame + 1) * layout.frame_bytes:
        return None
    count = layout.rows * layout.columns
    start = offset + frame * layout.frame_bytes
    view = np.frombuffer(instance.data, dtype=layout.stored_dtype, count=count, offset=start)
    # An owned, aligned copy: the pixel data of a file often start at an odd offset, and numpy's
    # bit fixing and rescaling run 8x slower on unaligned data than copy + in-place on a copy.
    return view.reshape(layout.frame_shape).copy()


def decode_frame(instance: Instance, frame: int, layout: PixelLayout, *, name: str) -> np.ndarray:
    """Stored values of ``frame`` (0-based) of a retrieved instance.

    Raises
    ------
    PixelDecodeError
        Not a DICOM file, no decoder for its transfer syntax, or corrupt pixel data.
    """
    view = native_frame(instance, frame, layout)
    if view is not None:
        return view
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import pixel_array

    uid = instance.transfer_syntax
    if uid is None:
        raise PixelDecodeError(f"{name} is not a DICOM file with a transfer syntax", path=name)
    order = plugin_order(uid)
    if not order:
        raise PixelDecodeError(
            f"cannot decode {name}: no decoder is installed for transfer syntax {uid}", path=name
        )
    lenient = LENIENT.get(uid, frozenset())
    failures: list[str] = []
    for plugin in order:
        if failures and plugin in lenient:
            continue  # it would hide the corruption the stricter plugins found
        try:
            source = io.BytesIO(instance.data)
            array: Any = pixel_array(source, index=frame, decoding_plugin=plugin)
        except (InvalidDicomError, *DECODE_FAILURES) as error:
            lines = [line.strip() for line in str(error).splitlines() if line.strip()]
            reason = lines[-1] if lines else type(error).__name__
            failures.append(f"{plugin}: {reason}" if plugin else reason)
            continue
        return np.asarray(array)
    raise PixelDecodeError(
        f"cannot decode frame {frame} of {name} (the pixel data may be corrupt): "
        + "; ".join(dict.fromkeys(failures)),
        path=name,
    )

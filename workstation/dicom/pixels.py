"""Stored pixel values → modality values: dtypes, bit masking and rescale, one slice at a time.

The output type is chosen once per stack from BitsStored, PixelRepresentation and every slice's
rescale slope/intercept (the way GDCM and SimpleITK choose it): the stored type when no slice is
rescaled, the smallest integer type that holds every possible value when slopes and intercepts
are whole numbers, else float32. Work happens in place per slice, so loading never holds more
than the volume plus one slice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from workstation.dicom.errors import UnsupportedSeriesError
from workstation.dicom.header import SliceHeader


@dataclass(frozen=True)
class PixelLayout:
    """How a stack's pixels are stored and what the loaded volume holds."""

    rows: int
    columns: int
    bits_allocated: int
    bits_stored: int
    signed: bool
    stored_dtype: np.dtype
    output_dtype: np.dtype
    direct: bool  # stored bytes can be read straight into the output array

    @property
    def frame_shape(self) -> tuple[int, int]:
        """``(rows, columns)``."""
        return (self.rows, self.columns)

    @property
    def frame_bytes(self) -> int:
        """Bytes of one uncompressed frame."""
        return self.rows * self.columns * self.stored_dtype.itemsize


def _stored_dtype(bits_allocated: int, signed: bool) -> np.dtype:
    if bits_allocated not in (1, 8, 16, 32):
        raise UnsupportedSeriesError(f"BitsAllocated {bits_allocated} is not supported")
    size = 1 if bits_allocated == 1 else bits_allocated // 8
    return np.dtype(f"<{'i' if signed else 'u'}{size}")


def _is_whole(value: float) -> bool:
    return float(value).is_integer()


def layout_for(slices: Sequence[SliceHeader]) -> PixelLayout:
    """The pixel layout of a stack (all slices share size and bit depth; the scan ensures it)."""
    first = slices[0]
    signed = first.pixel_representation == 1
    stored = _stored_dtype(first.bits_allocated, signed)
    bits_stored = (
        first.bits_stored
        if 0 < first.bits_stored <= first.bits_allocated
        else (first.bits_allocated)
    )
    identity = all(s.rescale_slope == 1.0 and s.rescale_intercept == 0.0 for s in slices)
    needs_bit_fix = bits_stored < stored.itemsize * 8
    if identity:
        output = stored
    elif all(_is_whole(s.rescale_slope) and _is_whole(s.rescale_intercept) for s in slices):
        low = -(1 << (bits_stored - 1)) if signed else 0
        high = (1 << (bits_stored - 1)) - 1 if signed else (1 << bits_stored) - 1
        ends = [
            value
            for s in slices
            for value in (
                low * s.rescale_slope + s.rescale_intercept,
                high * s.rescale_slope + s.rescale_intercept,
            )
        ]
        output = _smallest_integer(min(ends), max(ends))
    else:
        output = np.dtype("float32")
    direct = identity and not needs_bit_fix and output == stored
    return PixelLayout(
        rows=first.rows,
        columns=first.columns,
        bits_allocated=first.bits_allocated,
        bits_stored=bits_stored,
        signed=signed,
        stored_dtype=stored,
        output_dtype=np.dtype(output).newbyteorder("="),
        direct=direct,
    )


def _smallest_integer(low: float, high: float) -> np.dtype:
    for candidate in ("u1", "i2", "u2", "i4"):
        info = np.iinfo(candidate)
        if info.min <= low and high <= info.max:
            return np.dtype(candidate)
    return np.dtype("float64")


def fix_bits(stored: np.ndarray, layout: PixelLayout, *, in_place: bool = False) -> np.ndarray:
    """Clear bits above BitsStored (unsigned) or sign-extend from BitsStored (signed).

    With ``in_place`` the result overwrites ``stored`` (a scratch buffer the caller owns),
    which saves two temporary slices per frame on the loading hot path.
    """
    width = stored.dtype.itemsize * 8
    if layout.bits_stored >= width:
        return stored
    out = stored if in_place else None
    if layout.signed:
        shift = width - layout.bits_stored
        shifted = np.left_shift(stored, shift, out=out)
        return np.right_shift(shifted, shift, out=shifted)
    mask = np.asarray((1 << layout.bits_stored) - 1, dtype=stored.dtype)
    return np.bitwise_and(stored, mask, out=out)


def rescale_into(
    out: np.ndarray,
    stored: np.ndarray,
    header: SliceHeader,
    layout: PixelLayout,
    *,
    scratch: bool = False,
) -> None:
    """Write the modality values of one frame of stored values into ``out``.

    ``scratch=True`` says ``stored`` is a buffer the caller owns and may be overwritten.
    """
    values = np.asarray(stored)
    owned = scratch and values.dtype == layout.stored_dtype and values.flags.writeable
    values = fix_bits(values.astype(layout.stored_dtype, copy=False), layout, in_place=owned)
    slope, intercept = header.rescale_slope, header.rescale_intercept
    if slope == 1.0 and intercept == 0.0:
        np.copyto(out, values, casting="unsafe")
        return
    if out.dtype.kind == "f":
        # Compute in float64 (as GDCM does) and round once into the output: in float32 the slope
        # (0.1), the product and the sum would each be rounded, leaving values an ulp off.
        exact = np.multiply(values, slope, dtype=np.float64)
        exact += intercept
        np.copyto(out, exact, casting="unsafe")
        return
    # The output type was chosen to hold every rescaled value, so compute in it directly.
    if slope == 1.0:
        np.add(values, intercept, out=out, dtype=out.dtype, casting="unsafe")
    else:
        np.multiply(values, slope, out=out, dtype=out.dtype, casting="unsafe")
        if intercept:
            np.add(out, intercept, out=out, dtype=out.dtype, casting="unsafe")

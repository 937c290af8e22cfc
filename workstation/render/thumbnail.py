"""Small grey previews of one 2D image, with its physical aspect kept (Qt-free, DICOM-free).

:func:`thumbnail` maps one slice of modality values to grey levels through a window (the DICOM
linear VOI function of :mod:`~workstation.render.windowing`; the percentile auto window when
none is given), then shrinks it by area averaging (every output pixel is the mean of the input
area it covers, pixels partly inside weighted by their overlap) so that its longest side is
``size`` pixels and its height:width ratio is the physical one given by the pixel spacing.

Choosing the slice and reading its pixels is the DICOM engine's part:
:func:`workstation.workflow.thumbnails.series_thumbnail` does both and calls :func:`thumbnail`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from workstation.render.windowing import Window, apply_window, auto_window

__all__ = ["LUMA", "thumbnail", "thumbnail_shape"]

#: ITU-R BT.601 luma weights, used to show a colour (RGB) image in grey.
LUMA = (0.299, 0.587, 0.114)


def thumbnail_shape(
    shape: Sequence[int], pixel_spacing: Sequence[float] | None, size: int
) -> tuple[int, int]:
    """``(height, width)`` of the thumbnail of an image of ``shape`` ``(rows, columns)``.

    Parameters
    ----------
    shape
        ``(rows, columns)`` of the image.
    pixel_spacing
        ``(row spacing, column spacing)`` in mm, as DICOM PixelSpacing gives them (the
        distance between rows, then between columns). ``None``, or values that are not
        positive and finite, count as square pixels.
    size
        The thumbnail's longest side, in pixels (``>= 1``).
    """
    rows, columns = int(shape[0]), int(shape[1])
    if rows < 1 or columns < 1:
        raise ValueError(f"cannot make a thumbnail of an empty image {rows}×{columns}")
    if size < 1:
        raise ValueError(f"thumbnail size must be at least 1, got {size}")
    row_mm, column_mm = _spacing(pixel_spacing)
    height, width = rows * row_mm, columns * column_mm
    scale = size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _spacing(pixel_spacing: Sequence[float] | None) -> tuple[float, float]:
    if pixel_spacing is None or len(pixel_spacing) != 2:
        return 1.0, 1.0
    row_mm, column_mm = (float(v) for v in pixel_spacing)
    if not all(math.isfinite(v) and v > 0 for v in (row_mm, column_mm)):
        return 1.0, 1.0
    return row_mm, column_mm


def thumbnail(
    image: np.ndarray,
    pixel_spacing: Sequence[float] | None = None,
    *,
    size: int = 64,
    window: Window | None = None,
    invert: bool = False,
) -> np.ndarray:
    """A ``uint8`` grey thumbnail of one image, longest side ``size``, physical aspect kept.

    Parameters
    ----------
    image
        ``[rows, columns]`` modality values (any integer or float dtype), or
        ``[rows, columns, 3]`` RGB, shown as its luma.
    pixel_spacing
        ``(row spacing, column spacing)`` in mm; see :func:`thumbnail_shape`.
    size
        The longest side of the result, in pixels.
    window
        The grey-level window; ``None``: :func:`~workstation.render.windowing.auto_window` of
        the image.
    invert
        ``MONOCHROME1`` display (minimum = white).

    Returns
    -------
    numpy.ndarray
        ``uint8`` of shape :func:`thumbnail_shape`, C-contiguous.

    Raises
    ------
    ValueError
        The image is not 2D (or 2D RGB), is empty, or ``size < 1``.
    """
    values = np.asarray(image)
    if values.ndim == 3 and values.shape[2] == 3:
        values = np.tensordot(values.astype(np.float32), np.asarray(LUMA, np.float32), axes=1)
    if values.ndim != 2:
        raise ValueError(f"a thumbnail needs a 2D image, got shape {values.shape}")
    height, width = thumbnail_shape(values.shape, pixel_spacing, size)
    chosen = window if window is not None else auto_window(values)
    grey = apply_window(values, chosen, invert=invert).astype(np.float32)
    if (height, width) != grey.shape:
        grey = _area_weights(height, grey.shape[0]) @ grey @ _area_weights(width, grey.shape[1]).T
    return np.ascontiguousarray(np.clip(np.rint(grey), 0, 255).astype(np.uint8))


def _area_weights(out: int, size: int) -> np.ndarray:
    """``[out, size]`` area-averaging weights along one axis.

    Output pixel ``o`` covers ``[o, o + 1) * size / out`` of the input; its value is the mean of
    the input pixels over that interval, each weighted by its overlap (fractions included), so
    every row of weights sums to 1. Enlarging takes the input pixel(s) under each output pixel.
    """
    step = size / out
    starts = np.arange(out, dtype=np.float64)[:, None] * step
    edges = np.arange(size, dtype=np.float64)[None, :]
    overlap = np.minimum(edges + 1.0, starts + step) - np.maximum(edges, starts)
    weights = np.clip(overlap, 0.0, None) / step
    return weights.astype(np.float32)

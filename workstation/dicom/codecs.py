"""Decoding of compressed pixel data: the fastest exact decoder per transfer syntax, in parallel.

This is the public API; the work is done in two private modules:

* :mod:`workstation.dicom._decode` decodes one frame. pydicom decodes compressed pixel data
  through *plugins* (``pylibjpeg``, ``gdcm``, ``pyjpegls``, ``pillow``, ``pydicom``) that differ
  up to 4x in speed and in robustness; per transfer syntax the fastest available exact plugin is
  used first (measured, table there) and, when it fails, the next ones, except plugins that
  silently accept truncated data: a frame that one decoder calls corrupt is reported, never
  half-decoded.
* :mod:`workstation.dicom._decode_pool` decodes many frames in a process pool. Decoding holds
  the GIL in every plugin (threads give no speedup), so :func:`decode_frames` uses the pool when
  the estimated decode time of a request outweighs starting it. The pool (spawn context, so it
  is safe next to Qt and other threads) is created on first need and kept for later loads;
  :func:`shutdown_pool` ends it.

Importing this module does not import pydicom; decoding does.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Literal, overload

import numpy as np

from workstation.core.tasks import CancelToken, check_cancel
from workstation.dicom import _decode_pool
from workstation.dicom._decode import (
    PLUGINS,
    decode,
    decoder_availability,
    decoder_for,
    is_compressed,
)
from workstation.dicom._decode_pool import shutdown_pool, start_pool

__all__ = [
    "PLUGINS",
    "decode_frame",
    "decode_frames",
    "decoder_availability",
    "decoder_for",
    "is_compressed",
    "shutdown_pool",
    "start_pool",
]


def decode_frame(path: str, frame: int = 0) -> np.ndarray:
    """Stored pixel values of one frame.

    Parameters
    ----------
    path
        A DICOM file (any transfer syntax pydicom can read).
    frame
        0-based frame index (multi-frame files).

    Returns
    -------
    numpy.ndarray
        ``[rows, cols]``, or ``[rows, cols, samples]`` for colour; dtype from BitsAllocated and
        PixelRepresentation. No rescale or VOI; YBR is converted to RGB (pydicom's default).

    Raises
    ------
    workstation.dicom.errors.PixelDecodeError
        The file cannot be read or no decoder can decode the frame (message says why).
    """
    return decode(os.fspath(path), frame)


@overload
def decode_frames(
    items: Sequence[tuple[str, int]],
    *,
    workers: int | None = None,
    cancel: CancelToken | None = None,
    errors: Literal["raise"] = "raise",
    parallel: bool | None = None,
) -> Iterator[tuple[int, np.ndarray]]: ...


@overload
def decode_frames(
    items: Sequence[tuple[str, int]],
    *,
    workers: int | None = None,
    cancel: CancelToken | None = None,
    errors: Literal["report"],
    parallel: bool | None = None,
) -> Iterator[tuple[int, np.ndarray | str]]: ...


def decode_frames(
    items: Sequence[tuple[str, int]],
    *,
    workers: int | None = None,
    cancel: CancelToken | None = None,
    errors: Literal["raise", "report"] = "raise",
    parallel: bool | None = None,
) -> Iterator[tuple[int, np.ndarray | str]]:
    """Decode many frames, yielding ``(index into items, frame)`` as each finishes (any order).

    Parameters
    ----------
    items
        ``(path, frame index)`` pairs; decoded roughly in this order (put first what the user
        should see first).
    workers
        Size of the process pool; ``None``: one per available core (at most 16); ``1``: always
        decode in this process.
    cancel
        Checked between frames; pending work is cancelled and
        :class:`~workstation.core.errors.Cancelled` raised.
    errors
        ``"raise"``: a frame that fails raises :class:`PixelDecodeError` (path and reason).
        ``"report"``: it is yielded as ``(index, reason)`` with a string reason and the rest
        continue.
    parallel
        ``None`` (default): use the process pool only when the estimate says it pays (slow
        syntax, enough frames; measured cost model in ``_decode_pool.pool_pays``); ``True``:
        always (when ``workers > 1``); ``False``: never.

    Yields
    ------
    tuple of (int, numpy.ndarray)
        As :func:`decode_frame` returns them (or a string for a failed frame with "report").
    """
    if errors not in ("raise", "report"):
        raise ValueError(f"errors must be 'raise' or 'report', not {errors!r}")
    items = [(os.fspath(path), int(frame)) for path, frame in items]
    count = _decode_pool.default_workers() if workers is None else max(1, int(workers))
    if parallel is None:
        use_pool = _decode_pool.pool_pays(items, count)
    else:
        use_pool = parallel and count > 1 and len(items) > 1
    if use_pool:
        return _decode_pool.decode_in_pool(items, count, cancel, errors)
    return _decode_here(items, cancel, errors)


def _decode_here(
    items: list[tuple[str, int]], cancel: CancelToken | None, errors: str
) -> Iterator[tuple[int, np.ndarray | str]]:
    from workstation.dicom.errors import PixelDecodeError

    for index, (path, frame) in enumerate(items):
        check_cancel(cancel)
        try:
            arr = decode(path, frame)
        except PixelDecodeError as error:
            if errors == "raise":
                raise
            yield index, error.message
            continue
        yield index, arr

"""Series thumbnails: the middle slice of each series, windowed and shrunk (Qt-free).

:func:`series_thumbnail` reads one instance, the series' middle slice in spatial order, through
the DICOM engine's frame decoder (:func:`workstation.dicom.codecs.decode_frame`: native and
compressed transfer syntaxes alike) and its rescale (:mod:`workstation.dicom.pixels`), windows
it with the series' own DICOM window (else the percentile auto window) and shrinks it with
:func:`workstation.render.thumbnail.thumbnail`. It never reads the rest of the series.

:func:`series_thumbnails` is the long task the study browser runs on a worker: one thumbnail
per series, in the order given, each handed to ``partial`` as it is made; a series whose
pixels cannot be read gives a :class:`Thumbnail` without an image and with the reason.

This lives in ``workflow`` because it joins two sibling layers (``dicom`` and ``render``) that
may not import each other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from workstation.core.tasks import CancelToken, ProgressFn, check_cancel, throttled
from workstation.dicom.catalog import Series
from workstation.dicom.codecs import decode_frame
from workstation.dicom.errors import DicomError, PixelDecodeError, UnsupportedSeriesError
from workstation.dicom.header import SliceHeader
from workstation.dicom.pixels import layout_for, rescale_into
from workstation.render.thumbnail import thumbnail
from workstation.render.windowing import Window

__all__ = [
    "Thumbnail",
    "middle_slice",
    "read_slice",
    "series_thumbnail",
    "series_thumbnails",
    "series_window",
]


@dataclass(frozen=True)
class Thumbnail:
    """The outcome of one series' thumbnail.

    Attributes
    ----------
    index
        Position of the series in the list given to :func:`series_thumbnails`.
    key
        The series' key (:attr:`workstation.dicom.Series.key`).
    image
        ``uint8`` grey ``[height, width]``; ``None`` when it could not be made.
    problem
        Why there is no image (empty when there is one).
    """

    index: int
    key: str
    image: np.ndarray | None
    problem: str = ""


def middle_slice(series: Series) -> SliceHeader:
    """The series' middle slice in spatial order (index ``count // 2``, as the loader's first)."""
    slices = series.stack.slices
    return slices[len(slices) // 2]


def read_slice(header: SliceHeader) -> np.ndarray:
    """Modality values (rescale applied) of one slice; RGB ``[rows, cols, 3]`` for colour.

    Raises
    ------
    UnsupportedSeriesError
        The instance holds no pixel data, or a bit depth the engine does not read.
    PixelDecodeError
        The pixel data cannot be read or decoded (the message says why).
    """
    if not header.has_pixels:
        raise UnsupportedSeriesError("no pixel data", path=header.path, uid=header.series_uid)
    frame = decode_frame(header.path, header.frame)
    if header.samples_per_pixel != 1:
        return frame
    expected = (header.rows, header.columns)
    if frame.shape != expected:
        raise PixelDecodeError(
            f"decoded shape {frame.shape} differs from the header's {expected}", path=header.path
        )
    layout = layout_for([header])
    values = np.empty(expected, dtype=layout.output_dtype)
    rescale_into(values, frame, header, layout, scratch=True)
    return values


def series_window(series: Series, header: SliceHeader | None = None) -> Window | None:
    """The series' DICOM window (WindowCenter / WindowWidth), if it has a usable one.

    The values of ``header`` (the slice shown) come first, else those of the first slice.
    """
    for source in (header, series.stack.first):
        if source is None or source.window_center is None or not source.window_width:
            continue
        try:
            return Window(source.window_center, source.window_width)
        except ValueError:  # width < 1 or not finite: fall back to the auto window
            continue
    return None


def series_thumbnail(series: Series, size: int = 64) -> np.ndarray:
    """A ``uint8`` grey thumbnail of the series' middle slice, longest side ``size``.

    The physical aspect is kept (PixelSpacing); the window is the series' DICOM window when it
    has one, else the percentile auto window; ``MONOCHROME1`` is shown inverted. Only the
    middle slice's instance is read.

    Raises
    ------
    UnsupportedSeriesError, PixelDecodeError
        The slice's pixels cannot be read (see :func:`read_slice`).
    """
    header = middle_slice(series)
    values = read_slice(header)
    if values.ndim == 3:  # colour: the stored range, shown as luma
        top = float((1 << max(1, header.bits_stored)) - 1)
        window: Window | None = Window.from_range(0.0, top, integer=False)
    else:
        window = series_window(series, header)
    invert = header.photometric.upper() == "MONOCHROME1"
    return thumbnail(values, header.pixel_spacing, size=size, window=window, invert=invert)


def series_thumbnails(
    series: Sequence[Series],
    *,
    size: int = 64,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    partial: Callable[[Thumbnail], None] | None = None,
) -> list[Thumbnail]:
    """Thumbnails of ``series``, in order, each handed to ``partial`` as soon as it is made.

    A series whose pixels cannot be read (a :class:`~workstation.dicom.DicomError`) gives a
    :class:`Thumbnail` with ``image=None`` and the reason; the others go on. ``cancel`` is
    checked before each series.

    Returns
    -------
    list of Thumbnail
        One per series, in the order given.

    Raises
    ------
    Cancelled
        ``cancel`` was set.
    """
    report = throttled(progress)
    total = len(series)
    made: list[Thumbnail] = []
    report(0, total, "thumbnails")
    for index, item in enumerate(series):
        check_cancel(cancel)
        try:
            result = Thumbnail(index, item.key, series_thumbnail(item, size))
        except DicomError as error:
            result = Thumbnail(index, item.key, None, error.message)
        made.append(result)
        if partial is not None:
            partial(result)
        report(index + 1, total, "thumbnails")
    return made

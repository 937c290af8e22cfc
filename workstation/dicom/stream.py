"""Progressive loading: a volume that fills in while its slices are read and decoded.

Geometry comes from the headers (the scan), so the whole volume is allocated first; the slice a
viewer shows first (the middle one) is read first and the rest follow concurrently, each
available to the consumer as soon as it is in place. Uncompressed little-endian pixel data are
read straight from the file into the volume's memory (no decoding, no intermediate copies);
compressed data go through :mod:`workstation.dicom.codecs`, in parallel processes when that
pays. A slice that fails is reported, left blank, and the rest of the series loads.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from types import TracebackType

import numpy as np

from workstation.core.tasks import CancelToken, ProgressFn, check_cancel, throttled
from workstation.core.volume import Volume
from workstation.dicom.catalog import Catalog, Problem, Series
from workstation.dicom.errors import UnsupportedSeriesError
from workstation.dicom.header import SliceHeader
from workstation.dicom.pixels import PixelLayout, layout_for, rescale_into
from workstation.dicom.scan import scan

_CHUNK = 16
# Threads reading uncompressed slices: reads release the GIL, and on a cold cache more requests
# in flight keep the disk busy (measured: 8 beats 4 cold, and costs nothing warm).
_DEFAULT_WORKERS = 8
_NATIVE_LE = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1")


def middle_out(count: int) -> list[int]:
    """Slice indices starting at the middle and alternating outwards."""
    middle = count // 2
    order = [middle]
    for step in range(1, count):
        for index in (middle - step, middle + step):
            if 0 <= index < count:
                order.append(index)
        if len(order) >= count:
            break
    return order


def resolve_series(
    source: Series | Catalog | str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    series_uid: str | None = None,
    *,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> Series:
    """The series to load from a Series, a Catalog, a path or a list of files."""
    if isinstance(source, Series):
        return source
    catalog = (
        source if isinstance(source, Catalog) else scan(source, progress=progress, cancel=cancel)
    )
    return catalog.find(series_uid)


class SeriesStream:
    """A series being loaded; iterate to receive slice indices as each slice lands.

    Use as a context manager so that leaving early cancels the remaining work::

        with stream_series(folder) as stream:
            show(stream.volume)           # geometry known, voxels still zero
            for k in stream:              # middle slice first
                refresh(k)
        volume = stream.result()          # warnings include slices that failed

    The arrays of ``volume`` and ``result()`` are the same memory: there is one copy.
    """

    def __init__(
        self,
        series: Series,
        *,
        workers: int | None = None,
        progress: ProgressFn | None = None,
        cancel: CancelToken | None = None,
    ) -> None:
        stack = series.stack
        if not stack.loadable:
            raise UnsupportedSeriesError(
                f"series {series.key} cannot be loaded: {stack.problem}", uid=series.key
            )
        self.series = series
        self.layout: PixelLayout = layout_for(stack.slices)
        self.volume = _allocate(series, self.layout)
        self.loaded = np.zeros(len(stack.slices), dtype=bool)
        self.failed: list[Problem] = []
        self.order = middle_out(len(stack.slices))
        self._cancel = CancelToken()  # ours: set when the consumer leaves early
        self._external = cancel  # the caller's: observed, never set by us
        self._progress = throttled(progress)
        self._workers = workers or _DEFAULT_WORKERS
        self._iterated = False
        self._lock = threading.Lock()

    # -- consumer side ------------------------------------------------------------------------
    def _begin(self) -> int:
        """Mark the stream as iterated (a stream is iterated once), report 0 of N; N."""
        if self._iterated:
            raise RuntimeError("a SeriesStream can be iterated once")
        self._iterated = True
        total = len(self.series.stack.slices)
        self._progress(0, total, "loading slices")
        return total

    def __iter__(self) -> Iterator[int]:
        total = self._begin()
        slices = self.series.stack.slices
        # The slice a viewer shows first is loaded here, before anything else starts.
        first, rest = self.order[0], self.order[1:]
        done = 0
        for k in self._load_first(first):
            done += 1
            yield k
        native = [k for k in rest if _is_native(slices[k], self.layout)]
        other = [k for k in rest if not _is_native(slices[k], self.layout)]
        for k in itertools.chain(self._run_native(native), self._run_decoded(other)):
            done += 1
            self._progress(done, total, "loading slices")
            yield k
        if done < total:  # failed slices count as handled
            self._progress(total, total, "loading slices")

    def wait(self) -> SeriesStream:
        """Load every remaining slice (no-op once iterated)."""
        if not self._iterated:
            for _ in self:
                pass
        return self

    @property
    def complete(self) -> bool:
        """True when every slice was loaded or reported as failed."""
        return bool(self.loaded.all()) or len(self.failed) + int(self.loaded.sum()) == len(
            self.loaded
        )

    def result(self) -> Volume:
        """The finished volume, with a warning per slice that failed."""
        self.wait()
        if not self.failed:
            return self.volume
        notes = tuple(f"slice from {p.path} left blank: {p.reason}" for p in self.failed)
        return Volume(
            array=self.volume.array,
            spacing=self.volume.spacing,
            origin=self.volume.origin,
            direction=self.volume.direction,
            warnings=self.volume.warnings + notes,
            metadata=self.volume.metadata,
        )

    def cancel(self) -> None:
        """Stop loading at the next checkpoint."""
        self._cancel.cancel()

    def __enter__(self) -> SeriesStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.complete:
            self._cancel.cancel()

    # -- producers ----------------------------------------------------------------------------
    def _stopped(self) -> bool:
        return self._cancel.cancelled or (self._external is not None and self._external.cancelled)

    def _check(self) -> None:
        check_cancel(self._external)
        check_cancel(self._cancel)

    def _fail(self, header: SliceHeader, reason: str) -> None:
        with self._lock:
            self.failed.append(Problem(header.path, reason))

    def _read_native(self, indices: list[int]) -> list[int]:
        slices = self.series.stack.slices
        array = self.volume.array
        layout = self.layout
        scratch = None if layout.direct else np.empty(layout.frame_shape, layout.stored_dtype)
        landed = []
        for k in indices:
            if self._stopped():
                break
            header = slices[k]
            target = array[k] if layout.direct else scratch
            assert target is not None
            try:
                with open(header.path, "rb", buffering=0) as handle:
                    handle.seek(header.pixel_offset + header.frame * layout.frame_bytes)
                    got = handle.readinto(memoryview(target).cast("B"))
                if got != layout.frame_bytes:
                    raise OSError(f"read {got} of {layout.frame_bytes} pixel bytes")
            except OSError as error:
                array[k] = 0  # a short read into the volume must not leave half a slice
                self._fail(header, f"cannot read pixel data: {error}")
                continue
            if not layout.direct:
                rescale_into(array[k], target, header, layout, scratch=True)
            landed.append(k)
        return landed

    def _load_first(self, k: int) -> Iterator[int]:
        header = self.series.stack.slices[k]
        if _is_native(header, self.layout):
            yield from self._mark(self._read_native([k]))
            return
        from workstation.dicom.codecs import decode_frame
        from workstation.dicom.errors import PixelDecodeError

        try:
            frame = decode_frame(header.path, header.frame)
        except PixelDecodeError as error:
            self._fail(header, error.message)
            return
        if self._place_decoded(k, frame):
            yield from self._mark([k])

    def _place_decoded(self, k: int, frame: np.ndarray) -> bool:
        header = self.series.stack.slices[k]
        if frame.shape != self.layout.frame_shape:
            self._fail(header, f"decoded shape {frame.shape} != {self.layout.frame_shape}")
            return False
        rescale_into(self.volume.array[k], frame, header, self.layout, scratch=True)
        return True

    def _run_native(self, order: list[int]) -> Iterator[int]:
        if not order:
            return
        chunks = [order[i : i + _CHUNK] for i in range(0, len(order), _CHUNK)]
        if len(chunks) == 1 or self._workers <= 1:
            for chunk in chunks:
                self._check()
                yield from self._mark(self._read_native(chunk))
            return
        with ThreadPoolExecutor(self._workers, thread_name_prefix="dicom-read") as pool:
            pending: set[Future[list[int]]] = {pool.submit(self._read_native, c) for c in chunks}
            try:
                while pending:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        yield from self._mark(future.result())
                    self._check()
            finally:
                for future in pending:
                    future.cancel()

    def _run_decoded(self, order: list[int]) -> Iterator[int]:
        if not order:
            return
        from workstation.dicom.codecs import decode_frames

        slices = self.series.stack.slices
        items = [(slices[k].path, slices[k].frame) for k in order]
        frames = decode_frames(items, cancel=self._external, workers=None, errors="report")
        for position, frame in frames:
            self._check()
            k = order[position]
            header = slices[k]
            if isinstance(frame, str):
                self._fail(header, frame)
            elif self._place_decoded(k, frame):
                yield from self._mark([k])

    def _mark(self, indices: list[int]) -> Iterator[int]:
        for k in indices:
            self.loaded[k] = True
            yield k


def _is_native(header: SliceHeader, layout: PixelLayout) -> bool:
    return (
        header.transfer_syntax in _NATIVE_LE
        and header.pixel_offset is not None
        and header.pixel_length is not None
        and layout.bits_allocated in (8, 16, 32)
        and header.pixel_length >= (header.frame + 1) * layout.frame_bytes
    )


def _allocate(series: Series, layout: PixelLayout) -> Volume:
    stack = series.stack
    first = stack.first
    warnings = list(stack.warnings)
    if first.pixel_spacing:
        row_spacing, column_spacing = first.pixel_spacing
    else:
        row_spacing = column_spacing = 1.0
        warnings.append("no PixelSpacing: 1 mm assumed in the image plane")
    if first.orientation is not None and first.position is not None and stack.normal is not None:
        row = np.asarray(first.orientation[:3], dtype=float)
        column = np.asarray(first.orientation[3:6], dtype=float)
        direction = np.column_stack(
            [row / np.linalg.norm(row), column / np.linalg.norm(column), stack.normal]
        )
        origin = first.position
    else:
        direction, origin = np.eye(3), (0.0, 0.0, 0.0)
    array = np.zeros((len(stack.slices), *layout.frame_shape), dtype=layout.output_dtype)
    metadata = {
        "key": series.key,
        "series_uid": series.uid,
        "study_uid": first.study_uid,
        "frame_of_reference_uid": first.frame_of_reference_uid,
        "modality": first.modality,
        "series_number": first.series_number,
        "description": first.series_description,
        "stack": stack.label,
        "photometric": first.photometric,
        "window": (first.window_center, first.window_width)
        if first.window_center is not None and first.window_width
        else None,
        "units": first.units,
        "transfer_syntax": first.transfer_syntax,
    }
    return Volume(
        array=array,
        spacing=(column_spacing, row_spacing, stack.slice_spacing),
        origin=origin,
        direction=direction,
        warnings=tuple(warnings),
        metadata=metadata,
    )


def stream_series(
    source: Series | Catalog | str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    series_uid: str | None = None,
    *,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    workers: int | None = None,
) -> SeriesStream:
    """Start loading a series progressively (see :class:`SeriesStream`).

    ``source`` is a folder, a file, a list of files, a :class:`Catalog` or a :class:`Series`;
    ``series_uid`` picks a series (its key or SeriesInstanceUID) when there are several.
    """
    series = resolve_series(source, series_uid, cancel=cancel)
    return SeriesStream(series, workers=workers, progress=progress, cancel=cancel)


def load_series(
    source: Series | Catalog | str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    series_uid: str | None = None,
    *,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    workers: int | None = None,
) -> Volume:
    """Load one series as a :class:`~workstation.core.Volume` (geometry in LPS).

    Slices are sorted along the slice normal, rescale slope/intercept applied per slice,
    duplicates dropped; geometry problems and slices that failed to load are in
    ``volume.warnings``.

    Raises
    ------
    SeriesNotFoundError, AmbiguousSeriesError, UnsupportedSeriesError, Cancelled
    """
    with stream_series(source, series_uid, progress=progress, cancel=cancel, workers=workers) as s:
        return s.result()

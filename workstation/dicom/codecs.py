"""Decoding of compressed pixel data: the fastest exact decoder per transfer syntax, in parallel.

pydicom 3 decodes compressed pixel data through *plugins* (``pylibjpeg``, ``gdcm``,
``pyjpegls``, ``pillow`` and its own ``pydicom`` RLE decoder). Every installed plugin decodes
our lossless test series exactly, but speeds differ up to 8x and so does robustness: on a
truncated JPEG, JPEG-LS or JPEG lossless codestream ``pylibjpeg`` returns an image without
raising, while the others raise. So, per transfer syntax:

* the plugin used first is the fastest available one (measured, see ``_RANKING``);
* when it fails, the next ones are tried, except plugins that silently accept truncated data
  (``_LENIENT``): a frame that one decoder calls corrupt is reported, never half-decoded.

Decoding holds the GIL in every plugin (threads give no speedup), so :func:`decode_frames` uses a
process pool when the estimated decode time of a request outweighs starting the pool. The pool
(spawn context, so it is safe next to Qt and other threads) is created on first need and kept
for later loads; :func:`shutdown_pool` ends it.

Measured on a 2-core machine, 512×512 12-bit CT (ms per slice, whole file read included):

===================  =========  =====  ========  ======  =========
syntax               pylibjpeg  gdcm   pyjpegls  pillow  pydicom
===================  =========  =====  ========  ======  =========
RLE Lossless         3.8        --     --        --      8.6
JPEG-LS Lossless     33         14     6-8.5     --      --
JPEG 2000 Lossless   29-36      20*    --        30      --
JPEG Lossless SV1    11.5       8.7    --        --      --
JPEG Baseline 8-bit  3.7        4.2    --        1.5     --
===================  =========  =====  ========  ======  =========

``*`` gdcm runs OpenJPEG on all cores (33 ms CPU); a single-threaded plugin is used for JPEG 2000
inside pool workers, where the cores are already busy. ``benchmarks/compressed_load.py --plugins``
reproduces the table.
"""

from __future__ import annotations

import atexit
import os
import struct
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Literal, overload

import numpy as np

from workstation.core.tasks import CancelToken, check_cancel

if TYPE_CHECKING:
    from multiprocessing import shared_memory

    from pydicom.pixels.decoders.base import Decoder

    from workstation.dicom.errors import PixelDecodeError

__all__ = [
    "PLUGINS",
    "decode_frame",
    "decode_frames",
    "decoder_availability",
    "decoder_for",
    "is_compressed",
    "shutdown_pool",
]

# Transfer syntax UIDs (spelled out so that importing this module does not import pydicom).
_IMPLICIT_LE = "1.2.840.10008.1.2"
_EXPLICIT_LE = "1.2.840.10008.1.2.1"
_EXPLICIT_BE = "1.2.840.10008.1.2.2"
_DEFLATED = "1.2.840.10008.1.2.1.99"
_JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
_JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"
_JPEG_LOSSLESS = "1.2.840.10008.1.2.4.57"
_JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
_JPEGLS_LOSSLESS = "1.2.840.10008.1.2.4.80"
_JPEGLS_NEAR = "1.2.840.10008.1.2.4.81"
_J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"
_J2K = "1.2.840.10008.1.2.4.91"
_HTJ2K_LOSSLESS = "1.2.840.10008.1.2.4.201"
_HTJ2K_RPCL = "1.2.840.10008.1.2.4.202"
_HTJ2K = "1.2.840.10008.1.2.4.203"
_RLE = "1.2.840.10008.1.2.5"

_NATIVE = frozenset({_IMPLICIT_LE, _EXPLICIT_LE, _EXPLICIT_BE})

#: The pydicom decoding plugins this module knows about.
PLUGINS: tuple[str, ...] = ("pylibjpeg", "gdcm", "pyjpegls", "pillow", "pydicom")

# Fastest first (in-process wall time, table in the module docstring). JPEG Extended: pillow and
# gdcm refuse 12-bit data, the common case, so pylibjpeg leads. Lossy JPEG 2000 / JPEG-LS
# near-lossless use the lossless ranking: all plugins agreed exactly on pydicom's samples.
_RANKING: dict[str, tuple[str, ...]] = {
    _RLE: ("pylibjpeg", "pydicom"),
    _JPEGLS_LOSSLESS: ("pyjpegls", "gdcm", "pylibjpeg"),
    _JPEGLS_NEAR: ("pyjpegls", "gdcm", "pylibjpeg"),
    _J2K_LOSSLESS: ("gdcm", "pylibjpeg", "pillow"),
    _J2K: ("gdcm", "pylibjpeg", "pillow"),
    _HTJ2K_LOSSLESS: ("pylibjpeg",),
    _HTJ2K_RPCL: ("pylibjpeg",),
    _HTJ2K: ("pylibjpeg",),
    _JPEG_LOSSLESS_SV1: ("gdcm", "pylibjpeg"),
    _JPEG_LOSSLESS: ("gdcm", "pylibjpeg"),
    _JPEG_BASELINE: ("pillow", "gdcm", "pylibjpeg"),
    _JPEG_EXTENDED: ("pylibjpeg", "gdcm", "pillow"),
}

# Inside pool workers every core is busy: prefer single-threaded decoders (less CPU per frame).
_WORKER_RANKING: dict[str, tuple[str, ...]] = {
    _J2K_LOSSLESS: ("pylibjpeg", "pillow", "gdcm"),
    _J2K: ("pylibjpeg", "pillow", "gdcm"),
}

# Plugins that return an image from a truncated codestream instead of raising: used when they are
# the best available, never as a fallback after a stricter plugin found the data corrupt.
_LENIENT: dict[str, frozenset[str]] = {
    uid: frozenset({"pylibjpeg"})
    for uid in (
        _JPEGLS_LOSSLESS,
        _JPEGLS_NEAR,
        _JPEG_LOSSLESS,
        _JPEG_LOSSLESS_SV1,
        _JPEG_BASELINE,
        _JPEG_EXTENDED,
    )
}

# Cost model for the pool decision: (in-process ms, pool-worker CPU ms) per megapixel of one
# frame, file read included; measured on 512×512 slices (0.26 Mpx).
_COST_MS_PER_MPX: dict[str, tuple[float, float]] = {
    _RLE: (15.0, 15.0),
    _JPEGLS_LOSSLESS: (28.0, 28.0),
    _JPEGLS_NEAR: (28.0, 28.0),
    _J2K_LOSSLESS: (80.0, 112.0),
    _J2K: (80.0, 112.0),
    _HTJ2K_LOSSLESS: (40.0, 40.0),
    _HTJ2K_RPCL: (40.0, 40.0),
    _HTJ2K: (40.0, 40.0),
    _JPEG_LOSSLESS_SV1: (34.0, 34.0),
    _JPEG_LOSSLESS: (34.0, 34.0),
    _JPEG_BASELINE: (6.0, 6.0),
    _JPEG_EXTENDED: (20.0, 20.0),
    _DEFLATED: (8.0, 8.0),
}
_DEFAULT_COST = (10.0, 10.0)
_TRANSFER_MS_PER_MB = 1.0  # pickling a decoded frame back from a worker
_POOL_START_S = 0.8  # spawning and warming the workers (imports of numpy, pydicom, plugins)
_POOL_EFFICIENCY = 0.85  # measured parallel efficiency of the workers
_MAX_WORKERS = 16
_IN_FLIGHT_PER_WORKER = 3  # bounded queue: cancellation leaves little queued work behind

#: Exceptions that mean "this frame cannot be decoded". pydicom wraps plugin failures in
#: RuntimeError; the rest come from unreadable files, bad elements and wrong frame indices.
_DECODE_FAILURES: tuple[type[BaseException], ...] = (
    RuntimeError,
    ValueError,
    NotImplementedError,
    AttributeError,
    KeyError,
    IndexError,
    TypeError,
    OSError,
    EOFError,
    struct.error,
)


# -- transfer syntaxes and plugins --------------------------------------------------------------
def is_compressed(transfer_syntax_uid: str) -> bool:
    """Whether pixel data in this transfer syntax must be decoded (cannot be read as raw bytes).

    True for the encapsulated syntaxes (JPEG family, RLE, video), the deflated syntax (the whole
    dataset is zlib-compressed) and unknown UIDs; False for the three native syntaxes.
    """
    return str(transfer_syntax_uid).strip() not in _NATIVE


def _decoder(transfer_syntax_uid: str) -> Decoder | None:
    """pydicom's decoder for the syntax, or None when pydicom has none (video, unknown UIDs)."""
    from pydicom.pixels import get_decoder

    try:
        return get_decoder(str(transfer_syntax_uid).strip())
    except NotImplementedError:
        return None


def _plugin_order(transfer_syntax_uid: str, *, worker: bool = False) -> list[str]:
    """Available plugins to try for the syntax, best first; ``[""]`` for native data.

    Unranked plugins (registered by third parties) come after the ranked ones.
    """
    uid = str(transfer_syntax_uid).strip()
    decoder = _decoder(uid)
    if decoder is None:
        return []
    if not decoder.is_encapsulated:
        return [""]
    available = decoder.available_plugins
    ranking = (_WORKER_RANKING.get(uid) if worker else None) or _RANKING.get(uid, ())
    order = [name for name in ranking if name in available]
    order += [name for name in available if name not in order]
    return order


def decoder_for(transfer_syntax_uid: str) -> str | None:
    """Name of the pydicom decoding plugin used first for this transfer syntax.

    The fastest available plugin among those that decode exactly (measured; see the module
    docstring). Native and deflated syntaxes need no plugin and give ``"pydicom"``; ``None``
    when no installed plugin (or no pydicom decoder at all) handles the syntax.
    """
    order = _plugin_order(transfer_syntax_uid)
    if not order:
        return None
    return order[0] or "pydicom"


def decoder_availability() -> dict[str, dict[str, str]]:
    """For every transfer syntax pydicom can decode: plugin name -> ``"available"`` or why not.

    Reasons are pydicom's own (``"requires pylibjpeg-openjpeg"``) or ``"does not support
    <syntax>"`` for a plugin with no decoder for it. Native and deflated syntaxes report
    ``{"pydicom": "available"}``.
    """
    from pydicom.pixels.decoders import base
    from pydicom.uid import UID

    report: dict[str, dict[str, str]] = {}
    for uid in list(base._PIXEL_DATA_DECODERS):  # the registry; no public accessor exists
        decoder = _decoder(uid)
        if decoder is None:
            continue
        if not decoder.is_encapsulated:
            report[str(uid)] = {"pydicom": "available"}
            continue
        missing = {}
        for line in decoder.missing_dependencies:
            name, _, reason = line.partition(" - ")
            missing[name.strip()] = reason.strip() or "unavailable"
        status: dict[str, str] = {}
        for name in (*PLUGINS, *decoder.available_plugins, *missing):
            if name in status:
                continue
            if name in decoder.available_plugins:
                status[name] = "available"
            elif name in missing:
                status[name] = missing[name]
            else:
                status[name] = f"does not support {UID(uid).name}"
        report[str(uid)] = status
    return report


# -- decoding one frame -----------------------------------------------------------------------
def _pixel_decode_error(message: str, path: str) -> PixelDecodeError:
    from workstation.dicom.errors import PixelDecodeError

    return PixelDecodeError(message, path=path)


def _transfer_syntax(path: str) -> str | None:
    """The file's transfer syntax from its meta header; None when it has none."""
    from pydicom.filereader import read_file_meta_info

    uid = read_file_meta_info(path).get("TransferSyntaxUID")
    return None if uid is None else str(uid)


def _decode(path: str, frame: int, *, worker: bool = False) -> np.ndarray:
    """Decode one frame, trying plugins in order; raise PixelDecodeError when none succeeds."""
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import pixel_array

    name = os.path.basename(path)
    try:
        uid = _transfer_syntax(path)
    except (InvalidDicomError, *_DECODE_FAILURES) as error:
        raise _pixel_decode_error(f"cannot read {name}: {error}", path) from error
    if uid is None:
        order = [""]  # no meta header: let pydicom guess the encoding
    else:
        order = _plugin_order(uid, worker=worker)
        if not order:
            raise _pixel_decode_error(
                f"cannot decode {name}: no decoder is installed for transfer syntax {uid}", path
            )
    if uid in (_JPEGLS_LOSSLESS, _JPEGLS_NEAR) and _jpegls_truncated(path):
        raise _pixel_decode_error(
            f"cannot decode {name}: the JPEG-LS data are truncated (no end-of-image marker)", path
        )
    lenient = _LENIENT.get(uid or "", frozenset())
    failures: list[str] = []
    for plugin in order:
        if failures and plugin in lenient:
            continue  # it would hide the corruption the stricter plugins found
        try:
            arr = pixel_array(path, index=frame, decoding_plugin=plugin)
        except (InvalidDicomError, *_DECODE_FAILURES) as error:
            failures.append(f"{plugin or 'pydicom'}: {_last_line(error)}")
            continue
        return arr
    reasons = "; ".join(failures)
    raise _pixel_decode_error(
        f"cannot decode frame {frame} of {name} (the pixel data may be corrupt): {reasons}", path
    )


_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


def _jpegls_truncated(path: str) -> bool:
    """Whether a single-frame JPEG-LS file's codestream visibly lacks its end-of-image marker.

    CharLS (pyjpegls, gdcm) rejects such data, but pyjpegls spends seconds doing so. Reads the
    file's last bytes: encapsulated pixel data at the end of the file close with the sequence
    delimiter, preceded by the last fragment's ``FF D9`` (and a pad byte). Any other layout, or
    a multi-frame file (the tail is only the last frame's), gives no verdict (False).
    """
    from pydicom import dcmread

    with open(path, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size < 64:
            return False
        handle.seek(size - 16)
        tail = handle.read(16)
    if tail[-8:] != _SEQUENCE_DELIMITER or tail[:-8].rstrip(b"\x00").endswith(b"\xff\xd9"):
        return False
    ds = dcmread(path, stop_before_pixels=True, specific_tags=["NumberOfFrames"])
    return int(ds.get("NumberOfFrames", 1) or 1) <= 1


def _last_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


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
    return _decode(os.fspath(path), frame)


# -- decoding many frames ----------------------------------------------------------------------
_pool_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_pool_workers = 0


def _default_workers() -> int:
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        count = os.cpu_count() or 1
    return max(1, min(count, _MAX_WORKERS))


def _warm_worker() -> None:
    """Pool initializer: import pydicom's pixel machinery and every decoding plugin once."""
    os.environ.setdefault("OPJ_NUM_THREADS", "1")  # one core per worker (pillow's OpenJPEG)
    import pydicom.pixels  # noqa: F401 - registers the decoders and imports their plugins

    for uid in _RANKING:
        _plugin_order(uid, worker=True)


# A worker's answer for one frame: the frame's place in the shared buffer, the frame itself (when
# it did not fit or there is no buffer), or a failure (message, path) - all picklable.
_InShared = tuple[Literal["shared"], int, tuple[int, ...], str]
_Inline = tuple[Literal["inline"], np.ndarray]
_Failed = tuple[Literal["failed"], str, str]
_Answer = tuple[int, _InShared | _Inline | _Failed]


def _worker_decode(
    batch: list[tuple[int, str, int, int]], buffer: str | None, slot_bytes: int
) -> list[_Answer]:
    """Decode ``(index, path, frame, slot)`` items in a pool worker.

    Decoded frames are copied into slot ``slot`` of the parent's shared memory ``buffer`` (one
    copy, no pickling of pixels); a frame larger than a slot comes back pickled.
    """
    from multiprocessing import shared_memory

    from workstation.dicom.errors import PixelDecodeError

    shared = None
    if buffer is not None:
        try:
            shared = shared_memory.SharedMemory(name=buffer)
        except FileNotFoundError:  # the parent gave up on this request (cancelled)
            return []
    out: list[_Answer] = []
    try:
        for index, path, frame, slot in batch:
            try:
                arr = _decode(path, frame, worker=True)
            except PixelDecodeError as error:
                out.append((index, ("failed", error.message, path)))
                continue
            if shared is not None and arr.nbytes <= slot_bytes:
                offset = slot * slot_bytes
                view = np.ndarray(arr.shape, arr.dtype, buffer=shared.buf, offset=offset)
                view[...] = arr
                del view
                out.append((index, ("shared", slot, arr.shape, arr.dtype.str)))
            else:
                out.append((index, ("inline", arr)))
    finally:
        if shared is not None:
            shared.close()
    return out


def _get_pool(workers: int) -> tuple[ProcessPoolExecutor, bool]:
    """The shared pool with ``workers`` processes, and whether it already existed."""
    global _pool, _pool_workers
    import multiprocessing

    with _pool_lock:
        if _pool is not None and _pool_workers == workers:
            return _pool, True
        if _pool is not None:
            _pool.shutdown(wait=False, cancel_futures=True)
        _pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_warm_worker,
        )
        _pool_workers = workers
        return _pool, False


def _discard_pool(pool: ProcessPoolExecutor) -> None:
    global _pool, _pool_workers
    with _pool_lock:
        if _pool is pool:
            _pool, _pool_workers = None, 0
    pool.shutdown(wait=False, cancel_futures=True)


def shutdown_pool() -> None:
    """Stop the shared decoding processes (they are started again when next needed)."""
    global _pool, _pool_workers
    with _pool_lock:
        pool, _pool, _pool_workers = _pool, None, 0
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


atexit.register(shutdown_pool)


def _frame_size(path: str) -> tuple[str | None, float, int]:
    """Transfer syntax, megapixels (samples included) and bytes per sample of one frame."""
    from pydicom import dcmread

    ds = dcmread(
        path,
        stop_before_pixels=True,
        specific_tags=["Rows", "Columns", "SamplesPerPixel", "BitsAllocated"],
    )
    uid = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    mpx = int(ds.get("Rows", 0) or 0) * int(ds.get("Columns", 0) or 0) * samples / 1e6
    itemsize = max(1, (int(ds.get("BitsAllocated", 16) or 16) + 7) // 8)
    return (None if uid is None else str(uid)), mpx, itemsize


def _pool_pays(items: Sequence[tuple[str, int]], workers: int) -> bool:
    """Whether decoding ``items`` in ``workers`` processes beats decoding them here.

    Estimated from the first item's syntax and frame size with the measured cost model:
    in-process time vs. pool start-up (zero when the pool is warm) + worker time / workers +
    transfer of the decoded frames.
    """
    from pydicom.errors import InvalidDicomError

    if workers <= 1 or len(items) < 2 * workers:
        return False
    try:
        uid, mpx, itemsize = _frame_size(items[0][0])
    except (InvalidDicomError, *_DECODE_FAILURES):
        return False  # decoded in this process, where the error is reported per frame
    here_ms, worker_ms = _COST_MS_PER_MPX.get(uid or "", _DEFAULT_COST)
    n = len(items)
    sequential = n * mpx * here_ms / 1000
    with _pool_lock:
        warm = _pool is not None and _pool_workers == workers
    start = 0.0 if warm else _POOL_START_S
    transfer = n * mpx * itemsize * _TRANSFER_MS_PER_MB / 1000
    parallel = start + n * mpx * worker_ms / 1000 / (workers * _POOL_EFFICIENCY) + transfer
    return parallel < sequential


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
        syntax, enough frames; measured cost model in ``_pool_pays``); ``True``: always (when
        ``workers > 1``); ``False``: never.

    Yields
    ------
    tuple of (int, numpy.ndarray)
        As :func:`decode_frame` returns them (or a string for a failed frame with "report").
    """
    if errors not in ("raise", "report"):
        raise ValueError(f"errors must be 'raise' or 'report', not {errors!r}")
    items = [(os.fspath(path), int(frame)) for path, frame in items]
    count = _default_workers() if workers is None else max(1, int(workers))
    if parallel is None:
        use_pool = _pool_pays(items, count)
    else:
        use_pool = parallel and count > 1 and len(items) > 1
    if use_pool:
        return _decode_pool(items, count, cancel, errors)
    return _decode_here(items, cancel, errors)


def _decode_here(
    items: list[tuple[str, int]], cancel: CancelToken | None, errors: str
) -> Iterator[tuple[int, np.ndarray | str]]:
    from workstation.dicom.errors import PixelDecodeError

    for index, (path, frame) in enumerate(items):
        check_cancel(cancel)
        try:
            arr = _decode(path, frame)
        except PixelDecodeError as error:
            if errors == "raise":
                raise
            yield index, error.message
            continue
        yield index, arr


def _batch_size(count: int, workers: int) -> int:
    """Frames per task: fewer round trips, while every worker still gets several tasks."""
    return max(1, min(8, count // (workers * 8)))


def _decode_pool(
    items: list[tuple[str, int]], workers: int, cancel: CancelToken | None, errors: str
) -> Iterator[tuple[int, np.ndarray | str]]:
    from multiprocessing import shared_memory

    from pydicom.errors import InvalidDicomError

    check_cancel(cancel)
    pool, _ = _get_pool(workers)
    size = _batch_size(len(items), workers)
    limit = workers * _IN_FLIGHT_PER_WORKER
    try:
        _, mpx, itemsize = _frame_size(items[0][0])
        slot_bytes = round(mpx * 1e6) * itemsize
    except (InvalidDicomError, *_DECODE_FAILURES):
        slot_bytes = 0  # every frame comes back pickled
    shared = None
    if slot_bytes > 0:
        shared = shared_memory.SharedMemory(create=True, size=slot_bytes * limit * size)
    free_slots = list(range(limit * size))
    next_item = 0
    pending: dict[Future[list[_Answer]], tuple[int, list[int]]] = {}
    try:
        while next_item < len(items) or pending:
            while next_item < len(items) and len(pending) < limit:
                chunk = items[next_item : next_item + size]
                slots = [free_slots.pop() for _ in chunk]
                batch = [
                    (next_item + n, path, frame, slot)
                    for n, ((path, frame), slot) in enumerate(zip(chunk, slots, strict=True))
                ]
                name = shared.name if shared is not None else None
                future = pool.submit(_worker_decode, batch, name, slot_bytes)
                pending[future] = (next_item, slots)
                next_item += len(chunk)
            done, _ = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
            check_cancel(cancel)
            for future in sorted(done, key=lambda f: pending[f][0]):
                first, slots = pending.pop(future)
                try:
                    answers = future.result()
                except BrokenProcessPool as error:
                    _discard_pool(pool)
                    path = items[first][0]
                    raise _pixel_decode_error(
                        f"a decoder process died while decoding {os.path.basename(path)} "
                        "or a neighbouring frame (corrupt data can crash a decoder)",
                        path,
                    ) from error
                results = [
                    (index, _receive(answer, shared, slot_bytes)) for index, answer in answers
                ]
                free_slots.extend(slots)
                for index, result in results:
                    if isinstance(result, tuple):
                        message, path = result
                        if errors == "raise":
                            raise _pixel_decode_error(message, path)
                        yield index, message
                    else:
                        yield index, result
    finally:
        for future in pending:
            future.cancel()
        if shared is not None:
            shared.close()
            shared.unlink()  # workers still running keep their mapping until they finish


def _receive(
    answer: _InShared | _Inline | _Failed,
    shared: shared_memory.SharedMemory | None,
    slot_bytes: int,
) -> np.ndarray | tuple[str, str]:
    """The frame (copied out of the shared buffer) or ``(message, path)`` of a failure."""
    if answer[0] == "failed":
        return answer[1], answer[2]
    if answer[0] == "inline":
        return answer[1]
    _, slot, shape, dtype = answer
    assert shared is not None
    view = np.ndarray(shape, np.dtype(dtype), buffer=shared.buf, offset=slot * slot_bytes)
    arr = view.copy()
    del view
    return arr

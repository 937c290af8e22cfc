"""The process pool behind :func:`workstation.dicom.codecs.decode_frames`.

Decoding holds the GIL in every plugin (threads give no speedup), so a request whose estimated
decode time outweighs starting the pool (:func:`pool_pays`, a measured cost model) is decoded
in worker processes. The pool (spawn context, so it is safe next to Qt and other threads) is
created on first need and kept for later loads; :func:`shutdown_pool` ends it. Workers decode
with :func:`workstation.dicom._decode.decode` (their own plugin ranking: single-threaded JPEG
2000) and copy each frame into one shared-memory buffer of the parent, so pixels are not
pickled. Functions submitted to the pool are module-level, so spawned workers can import them.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Literal

import numpy as np

from workstation.core.tasks import CancelToken, check_cancel
from workstation.dicom._decode import (
    DECODE_FAILURES,
    DEFLATED,
    HTJ2K,
    HTJ2K_LOSSLESS,
    HTJ2K_RPCL,
    J2K,
    J2K_LOSSLESS,
    JPEG_BASELINE,
    JPEG_EXTENDED,
    JPEG_LOSSLESS,
    JPEG_LOSSLESS_SV1,
    JPEGLS_LOSSLESS,
    JPEGLS_NEAR,
    RANKING,
    RLE,
    decode,
    pixel_decode_error,
    plugin_order,
)

if TYPE_CHECKING:
    from multiprocessing import shared_memory

# Cost model for the pool decision: (in-process ms, pool-worker CPU ms) per megapixel of one
# frame, file read included; from the table in :mod:`workstation.dicom._decode` (512×512 =
# 0.26 Mpx). HTJ2K, JPEG Extended and deflated are estimates (no encoder here to make test data).
_COST_MS_PER_MPX: dict[str, tuple[float, float]] = {
    RLE: (5.0, 5.0),
    JPEGLS_LOSSLESS: (20.0, 20.0),
    JPEGLS_NEAR: (20.0, 20.0),
    J2K_LOSSLESS: (71.0, 111.0),
    J2K: (71.0, 111.0),
    HTJ2K_LOSSLESS: (30.0, 30.0),
    HTJ2K_RPCL: (30.0, 30.0),
    HTJ2K: (30.0, 30.0),
    JPEG_LOSSLESS_SV1: (21.0, 21.0),
    JPEG_LOSSLESS: (21.0, 21.0),
    JPEG_BASELINE: (5.0, 5.0),
    JPEG_EXTENDED: (15.0, 15.0),
    DEFLATED: (8.0, 8.0),
}
_DEFAULT_COST = (10.0, 10.0)
_TRANSFER_MS_PER_MB = 0.8  # per decoded MB: worker -> shared memory -> copy in this process
_POOL_START_S = 0.6  # spawning and warming two workers (numpy, pydicom and plugin imports)
_POOL_REQUEST_S = 0.02  # per request on a warm pool: shared buffer, first round trips
_POOL_EFFICIENCY = 0.85  # measured: 0.8 (JPEG-LS) to 1.0 (JPEG lossless, baseline)
_MAX_WORKERS = 16
_IN_FLIGHT_PER_WORKER = 3  # bounded queue: cancellation leaves little queued work behind

_pool_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_pool_workers = 0


def default_workers() -> int:
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        count = os.cpu_count() or 1
    return max(1, min(count, _MAX_WORKERS))


def _warm_worker() -> None:
    """Pool initializer: import pydicom's pixel machinery and every decoding plugin once."""
    os.environ.setdefault("OPJ_NUM_THREADS", "1")  # one core per worker (pillow's OpenJPEG)
    import pydicom.pixels  # noqa: F401 - registers the decoders and imports their plugins

    for uid in RANKING:
        plugin_order(uid, worker=True)


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
                arr = decode(path, frame, worker=True)
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
    """The shared pool (at least ``workers`` processes), and whether it already existed."""
    global _pool, _pool_workers
    import multiprocessing

    with _pool_lock:
        # a pool broken while idle (a worker killed, e.g. by the OOM killer) is replaced
        usable = _pool is not None and not getattr(_pool, "_broken", False)
        if usable and _pool_workers >= workers:
            return _pool, True
        if _pool is not None:  # too small: replaced; work already queued there still finishes
            _pool.shutdown(wait=False)
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


def start_pool(workers: int | None = None) -> None:
    """Start the shared decoding processes now (in the background), e.g. when a study opens.

    The first :func:`~workstation.dicom.codecs.decode_frames` call that uses the pool then does
    not pay their start-up.
    """
    count = default_workers() if workers is None else max(1, int(workers))
    if count <= 1:
        return
    pool, existed = _get_pool(count)
    if not existed:
        for _ in range(count):
            pool.submit(os.getpid)  # each submit spawns a worker while none is idle


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


def pool_pays(items: Sequence[tuple[str, int]], workers: int) -> bool:
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
    except (InvalidDicomError, *DECODE_FAILURES):
        return False  # decoded in this process, where the error is reported per frame
    here_ms, worker_ms = _COST_MS_PER_MPX.get(uid or "", _DEFAULT_COST)
    n = len(items)
    sequential = n * mpx * here_ms / 1000
    with _pool_lock:
        warm = _pool is not None and _pool_workers >= workers
    start = _POOL_REQUEST_S if warm else _POOL_START_S
    transfer = n * mpx * itemsize * _TRANSFER_MS_PER_MB / 1000
    parallel = start + n * mpx * worker_ms / 1000 / (workers * _POOL_EFFICIENCY) + transfer
    return parallel < sequential


def _batch_size(count: int, workers: int) -> int:
    """Frames per task: fewer round trips, while every worker still gets several tasks."""
    return max(1, min(8, count // (workers * 8)))


def decode_in_pool(
    items: list[tuple[str, int]], workers: int, cancel: CancelToken | None, errors: str
) -> Iterator[tuple[int, np.ndarray | str]]:
    """Decode in the shared process pool; frames come back through one shared-memory buffer.

    At most ``workers * _IN_FLIGHT_PER_WORKER`` batches are queued at a time, so cancelling
    (or closing the generator) leaves little work behind. A worker that dies (a decoder crashing
    on corrupt data) breaks the pool: it is discarded and PixelDecodeError is raised, whatever
    ``errors`` says, since the frame at fault cannot be told apart from its neighbours.
    """
    from multiprocessing import shared_memory

    from pydicom.errors import InvalidDicomError

    check_cancel(cancel)
    pool, _ = _get_pool(workers)
    size = _batch_size(len(items), workers)
    limit = workers * _IN_FLIGHT_PER_WORKER
    try:
        _, mpx, itemsize = _frame_size(items[0][0])
        slot_bytes = round(mpx * 1e6) * itemsize
    except (InvalidDicomError, *DECODE_FAILURES):
        slot_bytes = 0  # every frame comes back pickled
    shared = None
    if slot_bytes > 0:
        shared = shared_memory.SharedMemory(create=True, size=slot_bytes * limit * size)
    name = shared.name if shared is not None else None
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
                future = pool.submit(_worker_decode, batch, name, slot_bytes)
                pending[future] = (next_item, slots)
                next_item += len(chunk)
            done, _ = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
            check_cancel(cancel)
            for future in sorted(done, key=lambda f: pending[f][0]):
                answers = future.result()
                _, slots = pending.pop(future)
                results = [(i, _receive(answer, shared, slot_bytes)) for i, answer in answers]
                free_slots.extend(slots)
                for index, result in results:
                    check_cancel(cancel)
                    if isinstance(result, tuple):
                        message, path = result
                        if errors == "raise":
                            raise pixel_decode_error(message, path)
                        yield index, message
                    else:
                        yield index, result
    except BrokenProcessPool as error:
        _discard_pool(pool)
        first = min(
            (start for start, _ in pending.values()), default=min(next_item, len(items) - 1)
        )
        path = items[first][0]
        raise pixel_decode_error(
            f"a decoder process died while decoding {os.path.basename(path)} or a frame after "
            "it (corrupt data can crash a decoder)",
            path,
        ) from error
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

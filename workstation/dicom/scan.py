"""Index DICOM files under a path: headers only, recursive, tolerant of junk.

Every file is examined (DICOM files often have no extension; a DICOMDIR is recognised and skipped
since the files it points to are in the same tree, and scanning a DICOMDIR file scans its folder).
Each unreadable file becomes a
:class:`~workstation.dicom.catalog.Problem` with its path and reason; nothing raises for a bad
file. Large trees are read by several processes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

from workstation.core.errors import WorkstationError
from workstation.core.tasks import CancelToken, ProgressFn, check_cancel, throttled
from workstation.dicom.catalog import Catalog, Problem
from workstation.dicom.errors import DicomDirectoryError, DicomError, NotDicomError
from workstation.dicom.header import SliceHeader, read_slices
from workstation.dicom.series import build_stacks

_PARALLEL_MIN_FILES = 4000  # below this, starting processes costs more than it saves
_CHUNK = 32
_IO_THREADS = 4  # overlap file-open latency on a cold cache (parsing itself holds the GIL)
_SKIP_NAMES = frozenset(("DICOMDIR", ".DS_Store", "Thumbs.db"))


def iter_files(path: str | os.PathLike[str]) -> Iterator[str]:
    """Every regular file under ``path`` (or ``path`` itself), in a stable order."""
    root = os.fspath(path)
    if os.path.isfile(root):
        yield root
        return
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        subfolders = []
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                subfolders.append(entry.path)
            elif entry.is_file() and entry.name not in _SKIP_NAMES:
                yield entry.path
        stack.extend(reversed(subfolders))


_Read = tuple[str, list[SliceHeader] | str | None, bool]


def _read_many(paths: Sequence[str]) -> list[_Read]:
    """Read headers of ``paths``: (path, slices or reason or None for a DICOMDIR, is_dicom)."""
    results: list[_Read] = []
    for path in paths:
        try:
            results.append((path, read_slices(path), True))
        except DicomDirectoryError:
            results.append((path, None, True))
        except NotDicomError as error:
            results.append((path, error.message, False))
        except DicomError as error:
            results.append((path, error.message, True))
    return results


def scan(
    source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    workers: int | None = None,
) -> Catalog:
    """Index the DICOM files under ``source`` (a folder, a file, or a list of files).

    Parameters
    ----------
    source
        Folder (searched recursively), single file, or iterable of files. A DICOMDIR file stands
        for the folder it is in.
    progress
        Called as ``progress(done, total, message)`` (throttled).
    cancel
        Checked between chunks of files; raises :class:`~workstation.core.Cancelled`.
    workers
        Processes for header reading; by default one per core for large trees, else reading
        happens in this process (on a few threads, so cold-cache file opens overlap).

    Returns
    -------
    Catalog
        Patients, studies and series (split into stacks), and the files that could not be used.
    """
    if isinstance(source, str | os.PathLike):
        root = os.fspath(source)
        if not os.path.exists(root):
            raise WorkstationError(f"no such file or folder: {root}", path=root)
        if os.path.isfile(root) and _is_dicomdir(root):
            root = os.path.dirname(os.path.abspath(root))
        files = list(iter_files(root))
    else:
        files = [os.fspath(f) for f in source]
        root = os.path.commonpath(files) if files else ""
    report = throttled(progress)
    total = len(files)
    report(0, total, "reading headers")
    slices: list[SliceHeader] = []
    problems: list[Problem] = []
    dicom_files = 0
    chunks = [files[i : i + _CHUNK] for i in range(0, total, _CHUNK)]
    done = 0
    for chunk_result in _map_chunks(chunks, workers, cancel):
        for path, result, is_dicom in chunk_result:
            if result is None:  # a DICOMDIR: its files are in the tree being scanned
                dicom_files += 1
                continue
            if isinstance(result, str):
                problems.append(Problem(path, result))
                dicom_files += is_dicom
                continue
            dicom_files += 1
            if not result or not result[0].has_pixels:
                problems.append(Problem(path, "DICOM without pixel data (not an image)"))
                continue
            slices.extend(result)
        done += len(chunk_result)
        report(done, total, "reading headers")
    check_cancel(cancel)
    stacks, dropped = build_stacks(slices)
    problems.extend(Problem(path, reason) for path, reason in dropped)
    return Catalog.from_stacks(root, stacks, problems, files_seen=total, dicom_files=dicom_files)


def _is_dicomdir(path: str) -> bool:
    try:
        read_slices(path)
    except DicomDirectoryError:
        return True
    except DicomError:
        return False
    return False


def _map_chunks(
    chunks: list[list[str]], workers: int | None, cancel: CancelToken | None
) -> Iterator[list[_Read]]:
    files = sum(len(c) for c in chunks)
    if workers is None:
        workers = (os.cpu_count() or 1) if files >= _PARALLEL_MIN_FILES else 1
    if len(chunks) < 2:
        for chunk in chunks:
            check_cancel(cancel)
            yield _read_many(chunk)
        return
    executor = ThreadPoolExecutor if workers <= 1 else ProcessPoolExecutor
    with executor(max_workers=_IO_THREADS if workers <= 1 else workers) as pool:
        futures = [pool.submit(_read_many, chunk) for chunk in chunks]
        try:
            for future in futures:
                check_cancel(cancel)
                yield future.result()
        finally:
            for future in futures:
                future.cancel()

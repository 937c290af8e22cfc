"""A local cache of retrieved instances: content-addressed, size-capped, LRU, encrypted at rest.

Layout under ``root`` (default ``paths().cache / "dicomweb"``)::

    instances/ab/<sha256(SOPInstanceUID)>.<TransferSyntaxUID>   one retrieved DICOM file
    metadata/ab/<sha256(StudyUID | SeriesUID)>.json              a series' WADO-RS metadata

An entry is addressed by what it is (the instance UID and its transfer syntax), never by where
it came from. UIDs are hashed in file names; every file is AES-256-GCM under the caller's data
key ring (:mod:`workstation.security.aead`), bound to its address as associated data, so a file
renamed, swapped or tampered with fails to decrypt and is dropped as a miss. There is no
plaintext mode: without a key ring :func:`open_cache` returns ``None`` and nothing is cached.

Writes go to a temporary file in the same folder and are renamed into place, so a reader sees
a whole entry or none, and an instance that was not completely retrieved and decoded never
enters the cache (the stream stores only what it has placed in the volume). A crash may leave
a torn file only where the file system reorders data and rename; the authentication tag then
rejects it. When the total size passes ``max_bytes`` the least recently used entries go (use is
recorded in the file's modification time, so the order survives restarts).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from workstation.core.files import write_atomic
from workstation.security.aead import DataKeyRing, decrypt, encrypt
from workstation.security.errors import DecryptionError

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 2 * 1024**3
_INSTANCE_KIND = "dicomweb-instance"
_METADATA_KIND = "dicomweb-metadata"
_TMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class CachedInstance:
    """A cached DICOM file and its transfer syntax."""

    data: bytes
    transfer_syntax: str


def default_root() -> Path:
    """``paths().cache / "dicomweb"`` (not created until the cache is opened)."""
    from workstation.config import paths

    return paths().cache / "dicomweb"


def _stem(path: Path) -> str:
    """The hashed address of an entry: its name up to the first dot."""
    return path.name.partition(".")[0]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class InstanceCache:
    """Encrypted, size-capped LRU store of retrieved instances and series metadata.

    Thread-safe within a process; several processes may share a root (writes are atomic, an
    entry another process evicted is a miss).

    Parameters
    ----------
    keys
        The data key ring: its current key encrypts, every version in it decrypts.
    root
        The cache folder (created with private permissions).
    max_bytes
        Size cap of the files on disk; least recently used entries are evicted past it.
    """

    def __init__(
        self,
        keys: DataKeyRing,
        *,
        root: Path | str | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.root = Path(root) if root is not None else default_root()
        self.max_bytes = int(max_bytes)
        self._keys = keys
        self._lock = threading.Lock()
        self._entries: OrderedDict[Path, int] = OrderedDict()  # path -> size, oldest first
        self._by_name: dict[str, list[Path]] = {}  # hashed address -> its files
        self._total = 0
        for sub in ("instances", "metadata"):
            (self.root / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        self._load_index()

    def __repr__(self) -> str:
        return f"InstanceCache({str(self.root)!r}, {len(self)} entries, {self.size} bytes)"

    # -- index --------------------------------------------------------------------------------
    def _load_index(self) -> None:
        found: list[tuple[float, Path, int]] = []
        for path in self.root.glob("*/*/*"):
            try:
                stat = path.stat()
            except OSError:
                continue
            if path.name.startswith(_TMP_PREFIX):
                path.unlink(missing_ok=True)  # left by an interrupted write
                continue
            found.append((stat.st_mtime, path, stat.st_size))
        for _, path, size in sorted(found):
            self._add_locked(path, size)

    def _add_locked(self, path: Path, size: int) -> None:
        self._remove_locked(path)
        self._entries[path] = size
        self._by_name.setdefault(_stem(path), []).append(path)
        self._total += size

    def _remove_locked(self, path: Path) -> None:
        size = self._entries.pop(path, None)
        if size is None:
            return
        self._total -= size
        siblings = self._by_name.get(_stem(path), [])
        if path in siblings:
            siblings.remove(path)
        if not siblings:
            self._by_name.pop(_stem(path), None)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        """Bytes on disk."""
        return self._total

    # -- instances ----------------------------------------------------------------------------
    def _instance_dir(self, sop_uid: str) -> tuple[Path, str]:
        digest = _digest(sop_uid)
        return self.root / "instances" / digest[:2], digest

    def get(self, sop_uid: str, transfer_syntax: str | None = None) -> CachedInstance | None:
        """The cached instance (in ``transfer_syntax``, or any when None), or None."""
        _, digest = self._instance_dir(sop_uid)
        with self._lock:
            candidates = list(self._by_name.get(digest, ()))
        for path in candidates:
            syntax = path.name.partition(".")[2]
            if transfer_syntax is not None and syntax != transfer_syntax:
                continue
            data = self._read(path, _INSTANCE_KIND, f"{sop_uid}|{syntax}")
            if data is not None:
                return CachedInstance(data, syntax)
        return None

    def put(self, sop_uid: str, transfer_syntax: str, data: bytes) -> None:
        """Store a complete, verified instance (replacing any entry at the same address)."""
        if not transfer_syntax or "/" in transfer_syntax:
            raise ValueError(f"not a transfer syntax UID: {transfer_syntax!r}")
        folder, digest = self._instance_dir(sop_uid)
        record = f"{sop_uid}|{transfer_syntax}"
        self._write(folder / f"{digest}.{transfer_syntax}", _INSTANCE_KIND, record, data)

    def __contains__(self, sop_uid: object) -> bool:
        if not isinstance(sop_uid, str):
            return False
        _, digest = self._instance_dir(sop_uid)
        with self._lock:
            return digest in self._by_name

    # -- series metadata ----------------------------------------------------------------------
    def _metadata_path(self, study_uid: str, series_uid: str) -> Path:
        digest = _digest(f"{study_uid}|{series_uid}")
        return self.root / "metadata" / digest[:2] / f"{digest}.json"

    def get_metadata(self, study_uid: str, series_uid: str) -> bytes | None:
        """The cached WADO-RS metadata (JSON bytes) of a series, or None."""
        path = self._metadata_path(study_uid, series_uid)
        with self._lock:
            if path not in self._entries:
                return None
        return self._read(path, _METADATA_KIND, f"{study_uid}|{series_uid}")

    def has_metadata(self, study_uid: str, series_uid: str) -> bool:
        """Whether a series' metadata is cached (the series was opened before)."""
        with self._lock:
            return self._metadata_path(study_uid, series_uid) in self._entries

    def put_metadata(self, study_uid: str, series_uid: str, document: bytes) -> None:
        """Keep a series' metadata (JSON bytes) for offline reopening."""
        path = self._metadata_path(study_uid, series_uid)
        self._write(path, _METADATA_KIND, f"{study_uid}|{series_uid}", document)

    # -- maintenance --------------------------------------------------------------------------
    def clear(self) -> None:
        """Delete every entry."""
        with self._lock:
            paths = list(self._entries)
            self._entries.clear()
            self._by_name.clear()
            self._total = 0
        for path in paths:
            path.unlink(missing_ok=True)

    # -- files --------------------------------------------------------------------------------
    def _read(self, path: Path, kind: str, record: str) -> bytes | None:
        try:
            blob = path.read_bytes()
        except OSError:
            self._forget(path)
            return None
        try:
            data = decrypt(self._keys, blob, kind=kind, record_id=record)
        except DecryptionError:
            logger.warning("dropping a cache entry that does not decrypt (%s)", path.name[:12])
            self._forget(path, delete=True)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # most recently used
        with self._lock:
            if path in self._entries:
                self._entries.move_to_end(path)
        return data

    def _write(self, path: Path, kind: str, record: str, data: bytes) -> None:
        blob = encrypt(self._keys, data, kind=kind, record_id=record)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(path, blob, prefix=_TMP_PREFIX, durable=False)
        with self._lock:
            self._add_locked(path, len(blob))
            victims = self._evict_locked(keep=path)
        for victim in victims:
            victim.unlink(missing_ok=True)

    def _evict_locked(self, *, keep: Path) -> list[Path]:
        victims = []
        while self._total > self.max_bytes and len(self._entries) > 1:
            oldest = next(iter(self._entries))
            if oldest == keep:
                self._entries.move_to_end(oldest)
                continue
            self._remove_locked(oldest)
            victims.append(oldest)
        return victims

    def _forget(self, path: Path, *, delete: bool = False) -> None:
        with self._lock:
            self._remove_locked(path)
        if delete:
            path.unlink(missing_ok=True)


def open_cache(
    keys: DataKeyRing | None,
    *,
    root: Path | str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> InstanceCache | None:
    """The cache under ``root`` encrypted with ``keys``; ``None`` (no caching) without keys."""
    if keys is None:
        return None
    return InstanceCache(keys, root=root, max_bytes=max_bytes)

"""Signed bundles: one zip format for models, plugins and releases.

A bundle holds ``payload/<path>`` for each file, ``manifest.json`` (canonical JSON: ``format``
1, ``kind``, ``name``, semantic ``version``, ``created``, ``expires``, ``files`` with ``path``,
``sha256`` and ``size``, ``requirements``) and ``signatures.json`` (hybrid signatures over the
manifest's exact bytes, context ``bundle-manifest/<kind>``), in that order, in the canonical zip
encoding of :mod:`workstation.security._zipfmt`.

:func:`open_bundle` verifies everything but the payload's bytes before anything is written: a
sane, canonical zip whose entries are exactly the manifest's files; signatures meeting the
kind's threshold in the trust roots; not expired (freeze) and not older than the installed
version (rollback), unless explicitly allowed. :meth:`VerifiedBundle.extract` then streams each
file into a temporary folder checking size and SHA-256 as it writes (stopping at the declared
size), and renames the folder into place only when every file matched.

Model and release bundles are stored uncompressed by default: weights and wheels barely
compress, and stored entries verify at hashing speed. Plugin bundles (source code) are deflated.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import stat
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

from workstation.core.tasks import CancelToken, ProgressFn, check_cancel
from workstation.security import _extract, _zipfmt
from workstation.security._manifest import (
    KINDS,
    MANIFEST,
    PAYLOAD,
    SIGNATURES,
    FileRecord,
    Manifest,
    Version,
    unsafe_reason,
)
from workstation.security._verify import BundleLimits, Reader, context_for
from workstation.security.errors import BundleError
from workstation.security.sign import HybridSigningKey
from workstation.security.trust import (
    SOURCE_ROOT,
    Signer,
    TrustRoots,
    canonical_json,
    format_time,
    utcnow,
)

__all__ = [
    "KINDS",
    "BundleLimits",
    "FileRecord",
    "Manifest",
    "VerifiedBundle",
    "Version",
    "context_for",
    "open_bundle",
    "write_bundle",
]

_READ_CHUNK = _extract.CHUNK


# -- writing -----------------------------------------------------------------------------------


def write_bundle(
    src_dir: str | Path,
    out: str | Path,
    *,
    kind: str,
    name: str,
    version: str,
    signing_keys: Sequence[HybridSigningKey],
    expires: dt.timedelta | dt.datetime = dt.timedelta(days=365),
    created: dt.datetime | None = None,
    requirements: dict[str, Any] | None = None,
    compression: Literal["stored", "deflate"] | None = None,
    cancel: CancelToken | None = None,
) -> Manifest:
    """Bundle every file under ``src_dir`` into ``out``, signed by each of ``signing_keys``.

    Files go in sorted order; symbolic links, special files and unsafe names are refused. The
    bundle is written beside ``out`` and renamed into place when complete.
    """
    src, out = Path(src_dir), Path(out)
    if kind not in KINDS:
        raise BundleError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    if not signing_keys or len({k.key_id for k in signing_keys}) != len(signing_keys):
        raise BundleError("sign with at least one key, each key once")
    if not src.is_dir():
        raise BundleError(f"{src} is not a folder", path=src)
    if out.resolve().is_relative_to(src.resolve()):
        raise BundleError("the bundle cannot be written inside the folder it bundles", path=out)
    created = created or utcnow()
    expires_at = created + expires if isinstance(expires, dt.timedelta) else expires
    header = {"kind": kind, "name": name, "version": version, "created": created}
    header |= {"expires": expires_at, "requirements": requirements or {}}
    Manifest.build(**header, files=[])  # refuse a bad name, version or date before any work
    compression = compression or ("deflate" if kind == "plugin" else "stored")
    if compression not in ("stored", "deflate"):
        raise BundleError(f"compression {compression!r} is not 'stored' or 'deflate'")
    method = _zipfmt.DEFLATED if compression == "deflate" else _zipfmt.STORED
    sources = _collect(src)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            writer = _zipfmt.ZipWriter(f)
            records = []
            for rel, path, size in sources:
                check_cancel(cancel)
                sha = hashlib.sha256()
                with _open_regular(path) as source:
                    chunks = _hashed_chunks(source, sha)
                    writer.add(PAYLOAD + rel, chunks, size=size, method=method)
                records.append(FileRecord(rel, sha.hexdigest(), size))
            manifest = Manifest.build(**header, files=records)
            signatures = [k.sign(manifest.raw, context=context_for(kind)) for k in signing_keys]
            sig_raw = canonical_json([s.to_json() for s in signatures])
            writer.add(MANIFEST, [manifest.raw], size=len(manifest.raw), method=_zipfmt.STORED)
            writer.add(SIGNATURES, [sig_raw], size=len(sig_raw), method=_zipfmt.STORED)
            writer.close()
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return manifest


def _collect(src: Path) -> list[tuple[str, Path, int]]:
    found: list[tuple[str, Path, int]] = []

    def walk(folder: Path, prefix: str) -> None:
        with os.scandir(folder) as it:
            for item in it:
                rel = prefix + item.name
                if item.is_symlink():
                    raise BundleError(f"{rel} is a symbolic link; bundles hold regular files only")
                if item.is_dir(follow_symlinks=False):
                    walk(Path(item.path), rel + "/")
                    continue
                info = item.stat(follow_symlinks=False)
                if not stat.S_ISREG(info.st_mode):
                    raise BundleError(f"{rel} is not a regular file (device, FIFO or socket)")
                reason = unsafe_reason(rel)
                if reason:
                    raise BundleError(f"cannot bundle {rel!r}: {reason}")
                found.append((rel, Path(item.path), info.st_size))

    walk(src, "")
    if not found:
        raise BundleError(f"there are no files to bundle under {src}", path=src)
    found.sort()
    return found


def _open_regular(path: Path) -> BinaryIO:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise BundleError(f"{path} is not a regular file", path=path)
    return os.fdopen(fd, "rb")


def _hashed_chunks(source: BinaryIO, sha: Any) -> Iterator[bytes]:
    while chunk := source.read(_READ_CHUNK):
        sha.update(chunk)
        yield chunk


# -- reading -----------------------------------------------------------------------------------


@dataclass
class VerifiedBundle:
    """A bundle whose manifest is authentic and acceptable; its payload is checked as it is
    read (:meth:`verify_payload`, :meth:`extract`). Close it, or use it as a context manager."""

    path: Path
    manifest: Manifest
    signers: tuple[Signer, ...]
    warnings: tuple[str, ...]
    _file: BinaryIO = field(repr=False)
    _files: list[tuple[_zipfmt.Entry, FileRecord]] = field(repr=False)

    @property
    def kind(self) -> str:
        """``model``, ``plugin`` or ``release``."""
        return self.manifest.kind

    @property
    def name(self) -> str:
        """The bundle's name."""
        return self.manifest.name

    @property
    def version(self) -> Version:
        """The bundle's semantic version."""
        return self.manifest.version

    @property
    def trusted_by(self) -> str:
        """``"trust root"``, or ``"local key"`` / ``"allow-list"`` when only this workstation's
        local trust vouches for it (show that to the user)."""
        return SOURCE_ROOT if any(not s.local for s in self.signers) else self.signers[0].source

    def verify_payload(
        self, *, progress: ProgressFn | None = None, cancel: CancelToken | None = None
    ) -> None:
        """Check every payload file's bytes without writing anything."""
        _extract.verify(self._file, self._files, progress=progress, cancel=cancel)

    def extract(
        self,
        dest: str | Path,
        *,
        progress: ProgressFn | None = None,
        cancel: CancelToken | None = None,
        fsync: bool = False,
    ) -> Path:
        """Extract the payload into the new folder ``dest`` (see the module docstring)."""
        return _extract.extract(
            self._file, self._files, Path(dest), progress=progress, cancel=cancel, fsync=fsync
        )

    def close(self) -> None:
        """Close the bundle file."""
        self._file.close()

    def __enter__(self) -> VerifiedBundle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def to_json(self) -> dict[str, Any]:
        """What ``workstation bundle verify --json`` prints (besides ``ok``)."""
        m = self.manifest
        return {
            "path": str(self.path),
            "kind": m.kind,
            "name": m.name,
            "version": str(m.version),
            "created": format_time(m.created),
            "expires": format_time(m.expires),
            "files": len(m.files),
            "bytes": m.total_size,
            "trusted_by": self.trusted_by,
            "signers": [s.to_json() for s in self.signers],
            "requirements": m.requirements,
            "warnings": list(self.warnings),
        }


def open_bundle(
    path: str | Path,
    *,
    trust: TrustRoots,
    kind: str | None = None,
    now: dt.datetime | None = None,
    installed_version: str | Version | None = None,
    allow_downgrade: bool = False,
    allow_expired: bool = False,
    limits: BundleLimits | None = None,
) -> VerifiedBundle:
    """Verify the bundle at ``path`` (all but the payload's bytes) and return it, open.

    ``now`` is fixed once for every time check (default: the current time). Raises
    :class:`BundleError` (malformed, unsafe, tampered, expired, rollback), :class:`TrustError`
    (signers not trusted enough) or :class:`SignatureError` (malformed signatures).
    """
    path = Path(path)
    now = now or utcnow()
    try:
        f: BinaryIO = open(path, "rb")  # noqa: SIM115 - handed to the VerifiedBundle
    except OSError as error:
        raise BundleError(f"cannot open {path}: {error.strerror}", path=path) from None
    try:
        checked = Reader(f, path, limits or BundleLimits()).read(
            trust, kind, now, installed_version, allow_downgrade, allow_expired
        )
    except BundleError as error:
        f.close()
        if error.path is None:
            error.path = path
        raise
    except BaseException:
        f.close()
        raise
    return VerifiedBundle(
        path, checked.manifest, checked.signers, checked.warnings, f, checked.files
    )

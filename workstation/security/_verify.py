"""Verifying a signed bundle before anything is extracted (see :mod:`.bundle`).

Order: the zip's structure; entry names (safe, expected, unique), types (regular files only),
methods; ``manifest.json`` and ``signatures.json`` (canonical JSON); the kind; the signers'
trust; the entries against the signed manifest (each file exactly once, sizes, ratio, totals);
the canonical zip encoding; then expiry (freeze) and version (rollback).
"""

from __future__ import annotations

import datetime as dt
import os
import stat
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from workstation.security import _zipfmt
from workstation.security._canonical import canonical_json, format_time, strict_json
from workstation.security._manifest import (
    MANIFEST,
    PAYLOAD,
    SIGNATURES,
    FileRecord,
    Manifest,
    Version,
    collision_key,
    unsafe_reason,
)
from workstation.security.errors import BundleError, SignatureError
from workstation.security.sign import HybridSignature
from workstation.security.trust import Signer, TrustRoots

_MAX_SIGNATURES = 32


def context_for(kind: str) -> str:
    """The signature context of a ``kind`` bundle's manifest."""
    return f"bundle-manifest/{kind}"


@dataclass(frozen=True)
class BundleLimits:
    """What a bundle may hold. A deflated file over ``ratio_floor`` bytes may expand at most
    ``max_ratio`` times (deflate's own maximum is about 1032)."""

    max_total: int = 16 * 2**30
    max_files: int = 50_000
    max_ratio: int = 200
    ratio_floor: int = 2**20
    max_manifest: int = 16 * 2**20
    max_signatures_bytes: int = 2**20


@dataclass(frozen=True)
class Checked:
    """What verification established."""

    manifest: Manifest
    signers: tuple[Signer, ...]
    warnings: tuple[str, ...]
    files: list[tuple[_zipfmt.Entry, FileRecord]]


@dataclass
class Reader:
    """The checks of :func:`workstation.security.bundle.open_bundle`, in order."""

    f: BinaryIO
    path: Path
    limits: BundleLimits

    def read(
        self,
        trust: TrustRoots,
        kind: str | None,
        now: dt.datetime,
        installed: str | Version | None,
        allow_downgrade: bool,
        allow_expired: bool,
    ) -> Checked:
        try:
            size = os.fstat(self.f.fileno()).st_size
            directory = _zipfmt.read_directory(self.f, size)
            entries = self._check_entries(directory.entries)
            manifest = Manifest.parse(self._small(entries, MANIFEST, self.limits.max_manifest))
            sig_raw = self._small(entries, SIGNATURES, self.limits.max_signatures_bytes)
            signatures = self._signatures(sig_raw)
            role = kind or manifest.kind
            if manifest.kind != role:
                raise BundleError(f"expected a {role} bundle, but this is a {manifest.kind} bundle")
            signers = trust.signers(
                role, signatures, manifest.raw, context=context_for(role), now=now
            )
            files = self._match(manifest, entries)
            _zipfmt.check_layout(self.f, directory)
        except OSError as error:
            raise BundleError(f"cannot read {self.path}: {error}") from None
        warnings = []
        if now >= manifest.expires:
            when = format_time(manifest.expires)
            if not allow_expired:
                raise BundleError(
                    f"{manifest.kind} {manifest.name} {manifest.version} expired on {when}; an "
                    "expired bundle may be a stale copy (freeze attack); an administrator can "
                    "accept it with --allow-expired"
                )
            warnings.append(f"expired on {when} (accepted: allow_expired)")
        if installed is not None:
            installed = installed if isinstance(installed, Version) else Version.parse(installed)
            if manifest.version < installed:
                what = f"{manifest.name} {manifest.version} is older than the installed {installed}"
                if not allow_downgrade:
                    raise BundleError(
                        f"rollback refused: {what}; an administrator can downgrade with "
                        "--allow-downgrade"
                    )
                warnings.append(f"downgrade: {what} (accepted: allow_downgrade)")
        return Checked(manifest, tuple(signers), tuple(warnings), files)

    def _check_entries(self, entries: list[_zipfmt.Entry]) -> dict[str, _zipfmt.Entry]:
        if len(entries) > self.limits.max_files + 2:
            raise BundleError(f"too many files (more than {self.limits.max_files})")
        by_name: dict[str, _zipfmt.Entry] = {}
        keys: dict[str, str] = {}
        for entry in entries:
            name = entry.name
            reason = unsafe_reason(name)
            if reason:
                raise BundleError(f"unsafe entry name {name!r}: {reason}")
            if name not in (MANIFEST, SIGNATURES) and not name.startswith(PAYLOAD):
                raise BundleError(
                    f"unexpected entry {name!r}: a bundle holds only {MANIFEST}, {SIGNATURES} "
                    f"and {PAYLOAD}..."
                )
            if name in by_name:
                raise BundleError(f"duplicate entry {name!r}")
            if collision_key(name) in keys:
                raise BundleError(
                    f"entries {keys[collision_key(name)]!r} and {name!r} differ only in case"
                )
            kind = stat.S_IFMT(entry.mode)
            if kind == stat.S_IFLNK:
                raise BundleError(f"entry {name!r} is a symbolic link")
            if kind not in (stat.S_IFREG, 0):
                raise BundleError(f"entry {name!r} is not a regular file (mode {entry.mode:o})")
            if entry.flags & 0x1:
                raise BundleError(f"entry {name!r} is encrypted")
            if entry.method not in (_zipfmt.STORED, _zipfmt.DEFLATED):
                raise BundleError(
                    f"entry {name!r} uses compression method {entry.method}; bundles use "
                    "stored (0) or deflate (8)"
                )
            by_name[name] = entry
            keys[collision_key(name)] = name
        for required in (MANIFEST, SIGNATURES):
            if required not in by_name:
                raise BundleError(f"{required} is missing: this is not a signed bundle")
        return by_name

    def _small(self, entries: dict[str, _zipfmt.Entry], name: str, limit: int) -> bytes:
        entry = entries[name]
        if entry.method != _zipfmt.STORED or entry.csize != entry.usize:
            raise BundleError(f"{name} must be stored uncompressed")
        if entry.usize > limit:
            raise BundleError(f"{name} is too large ({entry.usize} bytes; limit {limit})")
        _zipfmt.check_local(self.f, entry)
        data = _zipfmt.read_at(self.f, entry.data_offset, entry.usize)
        if zlib.crc32(data) != entry.crc:
            raise BundleError(f"{name}: CRC-32 differs from the zip directory's (corrupt)")
        return data

    def _signatures(self, raw: bytes) -> list[HybridSignature]:
        doc = strict_json(raw, SIGNATURES, BundleError)
        if not isinstance(doc, list) or not 1 <= len(doc) <= _MAX_SIGNATURES:
            raise BundleError(f"{SIGNATURES} must list 1 to {_MAX_SIGNATURES} signatures")
        signatures = [HybridSignature.from_json(item) for item in doc]
        if canonical_json([s.to_json() for s in signatures]) != raw:
            raise SignatureError(f"{SIGNATURES} is not in canonical form")
        return signatures

    def _match(
        self, manifest: Manifest, entries: dict[str, _zipfmt.Entry]
    ) -> list[tuple[_zipfmt.Entry, FileRecord]]:
        listed = {PAYLOAD + f.path: f for f in manifest.files}
        for name in entries:
            if name.startswith(PAYLOAD) and name not in listed:
                raise BundleError(f"{name} is in the bundle but not in the signed manifest")
        for name in listed:
            if name not in entries:
                raise BundleError(f"{name} is listed in the signed manifest but missing")
        order = [*listed, MANIFEST, SIGNATURES]
        if list(entries) != order:
            raise BundleError("the bundle's entries are not in the canonical order")
        if len(manifest.files) > self.limits.max_files:
            raise BundleError(f"too many files ({len(manifest.files)})")
        if manifest.total_size > self.limits.max_total:
            raise BundleError(
                f"the payload is {manifest.total_size} bytes; the limit is {self.limits.max_total}"
            )
        files = []
        for name, record in listed.items():
            entry = entries[name]
            if entry.usize != record.size:
                raise BundleError(
                    f"{name}: the zip says {entry.usize} bytes, the signed manifest {record.size}"
                )
            if entry.method == _zipfmt.STORED and entry.csize != entry.usize:
                raise BundleError(f"{name}: stored entry with a different compressed size")
            if (
                entry.method == _zipfmt.DEFLATED
                and record.size > self.limits.ratio_floor
                and record.size > self.limits.max_ratio * max(entry.csize, 1)
            ):
                raise BundleError(
                    f"{name}: compression ratio {record.size // max(entry.csize, 1)}:1 exceeds "
                    f"the limit {self.limits.max_ratio}:1 (zip bomb)"
                )
            files.append((entry, record))
        return files

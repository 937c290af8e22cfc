"""Signed model metadata from the registry: TUF-style timestamp → snapshot → targets.

Three documents, each ``{"signed": {...}, "signatures": [HybridSignature JSON, ...]}`` with the
signatures over :func:`canonical_json` of ``signed`` (context per type, so one never verifies
as another), checked against the workstation's :class:`TrustRoots`:

* **targets** (role ``model``, the root's threshold): which model bundles exist —
  ``"<name>/<semver>": {"sha256", "size", "channel": shadow|canary|stable, "sites"?: [ids] |
  null, "validation"?: {reference metrics}}``;
* **snapshot** (role ``registry``): ``"meta": {"targets.json": {"version", "sha256"}}``;
* **timestamp** (role ``registry``, short expiry): ``"snapshot": {"version", "sha256"}``.

:meth:`ModelMetadataStore.update` runs the TUF client workflow: each document must verify
(``signature``), be the exact one named by the document above it (``mix-and-match``), not have
expired (``expired``: a freeze), and not go back in version — an equal version must be the same
bytes (``rollback``); no model's newest listed version may decrease either (a model is withdrawn
by removing all its entries). On any refusal the last trusted set stays in use, so an offline
or attacked workstation keeps its last good metadata. The set is kept as one file
(``trusted.json``, written atomically, so the three documents always belong together) and
re-verified when the store opens.

Expired metadata is *not* hidden: :meth:`ModelMetadataStore.trusted_targets` returns the last
good targets with ``"expired": True`` so models already installed keep running offline, while
:meth:`ModelMetadataStore.verify_bundle_against_targets` refuses to approve a bundle from
expired metadata (no new installs) unless the caller passes ``allow_expired=True``.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workstation.core.files import write_atomic
from workstation.security._model_metadata_checks import (
    DOC_TYPES,
    KINDS,
    SNAPSHOT,
    SPEC_VERSION,
    TARGETS,
    TARGETS_FILE,
    TIMESTAMP,
    DocType,
    Document,
    MetadataError,
    check_not_expired,
    check_ref,
    check_targets_forward,
    check_version,
    parse,
    sha256_hex,
)
from workstation.security.sign import HybridSigningKey
from workstation.security.trust import (
    TrustRoots,
    canonical_json,
    format_time,
    now_or,
    parse_time,
    strict_json,
)

__all__ = [
    "KINDS",
    "SNAPSHOT",
    "TARGETS",
    "TIMESTAMP",
    "MetadataError",
    "ModelMetadataStore",
    "UpdateResult",
    "sign_metadata",
    "snapshot_signed",
    "targets_signed",
    "timestamp_signed",
]

STORE_FILE = "trusted.json"
_STORE_FORMAT = 1


# -- publishing (the registry, the maintainers' tools, the tests) ---------------------------


def sign_metadata(
    signed: Mapping[str, Any], keys: Sequence[HybridSigningKey], *, context: str | None = None
) -> bytes:
    """The metadata file: ``signed`` and each key's signature (``context`` defaults to the one
    of ``signed["type"]``)."""
    if context is None:
        by_type = {d.type: d.context for d in DOC_TYPES.values()}
        if signed.get("type") not in by_type:
            raise ValueError(f"unknown metadata type {signed.get('type')!r}; pass context=")
        context = by_type[signed["type"]]
    message = canonical_json(signed)
    signatures = [k.sign(message, context=context).to_json() for k in keys]
    text = json.dumps({"signed": signed, "signatures": signatures}, indent=2, ensure_ascii=False)
    return (text + "\n").encode("utf-8")


def _header(doc: DocType, version: int, expires: dt.datetime) -> dict[str, Any]:
    return {
        "type": doc.type,
        "spec_version": SPEC_VERSION,
        "version": version,
        "expires": format_time(expires),
    }


def targets_signed(
    targets: Mapping[str, Mapping[str, Any]], *, version: int, expires: dt.datetime
) -> dict[str, Any]:
    """The ``signed`` part of targets metadata."""
    return {**_header(TARGETS, version, expires), "targets": copy.deepcopy(dict(targets))}


def snapshot_signed(targets_raw: bytes, *, version: int, expires: dt.datetime) -> dict[str, Any]:
    """The ``signed`` part of a snapshot naming the targets file ``targets_raw``."""
    ref = {"version": _version_of(targets_raw), "sha256": sha256_hex(targets_raw)}
    return {**_header(SNAPSHOT, version, expires), "meta": {TARGETS_FILE: ref}}


def timestamp_signed(snapshot_raw: bytes, *, version: int, expires: dt.datetime) -> dict[str, Any]:
    """The ``signed`` part of a timestamp naming the snapshot file ``snapshot_raw``."""
    ref = {"version": _version_of(snapshot_raw), "sha256": sha256_hex(snapshot_raw)}
    return {**_header(TIMESTAMP, version, expires), "snapshot": ref}


def _version_of(raw: bytes) -> int:
    return int(json.loads(raw)["signed"]["version"])


# -- the client --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrustedSet:
    """A timestamp, snapshot and targets that were checked together, and when."""

    timestamp: Document
    snapshot: Document
    targets: Document
    accepted: dt.datetime

    def expired(self, now: dt.datetime) -> list[str]:
        """Names of the documents that have expired at ``now``."""
        return [d.doc.name for d in (self.timestamp, self.snapshot, self.targets) if d.expired(now)]


@dataclass(frozen=True)
class UpdateResult:
    """What an accepted update changed."""

    timestamp_version: int
    snapshot_version: int
    targets_version: int
    changed: bool  # the targets differ from the previously trusted ones
    added: list[str] = field(default_factory=list)  # "<name>/<version>" keys now listed
    removed: list[str] = field(default_factory=list)  # keys no longer listed


class ModelMetadataStore:
    """The last trusted model metadata under ``folder`` (see the module doc).

    Opening re-verifies the stored set against ``trust`` at the time it was accepted. A set
    whose signatures no longer verify (its keys were rotated out or revoked) is dropped, as TUF
    does after a key rotation, and :attr:`dropped` says why; a corrupt or inconsistent file
    raises :class:`MetadataError` (kind ``malformed`` / ``mix-and-match``) rather than silently
    losing the rollback protection it gives.
    """

    def __init__(self, folder: str | Path, trust: TrustRoots) -> None:
        self.folder = Path(folder)
        self.trust = trust
        self.dropped: str | None = None
        self._set = self._load()

    @property
    def path(self) -> Path:
        """The file holding the trusted set."""
        return self.folder / STORE_FILE

    # -- updating ------------------------------------------------------------------------------

    def update(
        self,
        timestamp_raw: bytes,
        snapshot_raw: bytes | None = None,
        targets_raw: bytes | None = None,
        *,
        now: dt.datetime | None = None,
    ) -> UpdateResult:
        """Check a new timestamp and, when it names new ones, the snapshot and targets it names
        (``None``: unchanged, reuse the trusted document); accept and persist them all, or raise
        :class:`MetadataError` and keep the previous set."""
        now = now_or(now)
        old = self._set
        timestamp = parse(TIMESTAMP, timestamp_raw, self.trust, now)
        check_not_expired(timestamp, now)
        check_version(timestamp, old.timestamp if old else None)
        snapshot = self._next(
            SNAPSHOT, snapshot_raw, timestamp.signed["snapshot"], old, "timestamp", now
        )
        targets = self._next(
            TARGETS, targets_raw, snapshot.signed["meta"][TARGETS_FILE], old, "snapshot", now
        )
        check_targets_forward(targets, old.targets if old else None)
        new = TrustedSet(timestamp, snapshot, targets, now)
        self._save(new)
        self._set = new
        before = set(old.targets.signed["targets"]) if old else set()
        after = set(targets.signed["targets"])
        return UpdateResult(
            timestamp.version,
            snapshot.version,
            targets.version,
            changed=old is None or old.targets.raw != targets.raw,
            added=sorted(after - before),
            removed=sorted(before - after),
        )

    def _next(
        self,
        doc: DocType,
        raw: bytes | None,
        ref: Mapping[str, Any],
        old: TrustedSet | None,
        named_by: str,
        now: dt.datetime,
    ) -> Document:
        previous: Document | None = getattr(old, doc.name) if old else None
        if raw is None:
            same = previous is not None and (previous.version, previous.sha256) == (
                ref["version"],
                ref["sha256"],
            )
            if not same or previous is None:
                raise MetadataError(
                    "mix-and-match",
                    f"the {named_by} names {doc.name} version {ref['version']}, which is "
                    "neither supplied nor the trusted one",
                )
            raw = previous.raw
        document = parse(doc, raw, self.trust, now)
        check_ref(ref, document, named_by)
        check_not_expired(document, now)
        check_version(document, previous)
        return document

    # -- reading -------------------------------------------------------------------------------

    def trusted_targets(self, now: dt.datetime | None = None) -> dict[str, Any]:
        """The last good targets: ``{"version", "expires", "expired", "expired_metadata",
        "targets"}``. ``expired`` is true when any of the trusted documents has expired: keep
        running installed models, install nothing new. With nothing trusted yet: version 0 and
        no targets."""
        now = now_or(now)
        current = self._set
        if current is None:
            return {
                "version": 0,
                "expires": None,
                "expired": False,
                "expired_metadata": [],
                "targets": {},
            }
        expired = current.expired(now)
        return {
            "version": current.targets.version,
            "expires": format_time(current.targets.expires),
            "expired": bool(expired),
            "expired_metadata": expired,
            "targets": copy.deepcopy(current.targets.signed["targets"]),
        }

    def versions(self) -> dict[str, int]:
        """The trusted timestamp, snapshot and targets versions (0 when none)."""
        current = self._set
        return {
            name: getattr(current, name).version if current else 0
            for name in ("timestamp", "snapshot", "targets")
        }

    def verify_bundle_against_targets(
        self,
        bundle_path: str | Path,
        name: str,
        version: str,
        *,
        now: dt.datetime | None = None,
        allow_expired: bool = False,
    ) -> None:
        """The file's size and SHA-256 must be those the trusted targets list for
        ``name/version`` (the bundle's own signatures are checked when it is opened). Expired
        metadata approves nothing unless ``allow_expired`` (re-checking an installed model)."""
        now = now_or(now)
        key = f"{name}/{version}"
        current = self._set
        if current is None or key not in current.targets.signed["targets"]:
            raise MetadataError("unknown-target", f"{key} is not listed in the trusted targets")
        expired = current.expired(now)
        if expired and not allow_expired:
            raise MetadataError(
                "expired",
                f"the trusted {', '.join(expired)} metadata has expired; refresh it before "
                f"installing {key}",
            )
        entry = current.targets.signed["targets"][key]
        path = Path(bundle_path)
        try:
            size, digest = _size_and_hash(path)
        except OSError as error:
            raise MetadataError("hash", f"cannot read {path}: {error}") from None
        if size != entry["size"]:
            raise MetadataError(
                "hash", f"{path.name} is {size} bytes; targets list {key} as {entry['size']}"
            )
        if digest != entry["sha256"]:
            raise MetadataError(
                "hash", f"{path.name} does not have the SHA-256 that the targets list for {key}"
            )

    # -- persistence ---------------------------------------------------------------------------

    def _save(self, current: TrustedSet) -> None:
        doc = {
            "format": _STORE_FORMAT,
            "accepted": format_time(current.accepted),
            **{
                d.doc.name: base64.b64encode(d.raw).decode()
                for d in (current.timestamp, current.snapshot, current.targets)
            },
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps(doc, indent=2).encode() + b"\n", mode=0o644)

    def _load(self) -> TrustedSet | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise MetadataError("malformed", f"cannot read {self.path}: {error}") from None
        try:
            stored = strict_json(raw, str(self.path), ValueError)
            if set(stored) != {"format", "accepted", *DOC_TYPES}:
                raise ValueError("unexpected fields")
            if stored["format"] != _STORE_FORMAT:
                raise ValueError(f"unknown format {stored['format']!r}")
            accepted = parse_time(stored["accepted"], "accepted")
            blobs = {n: base64.b64decode(stored[n], validate=True) for n in DOC_TYPES}
        except (TypeError, ValueError) as error:
            raise MetadataError("malformed", f"{self.path} is corrupt: {error}") from None
        try:
            docs = {n: parse(DOC_TYPES[n], blobs[n], self.trust, accepted) for n in DOC_TYPES}
        except MetadataError as error:
            if error.kind != "signature":
                raise
            self.dropped = f"the stored model metadata is no longer trusted: {error}"
            return None
        check_ref(docs["timestamp"].signed["snapshot"], docs["snapshot"], "timestamp")
        check_ref(docs["snapshot"].signed["meta"][TARGETS_FILE], docs["targets"], "snapshot")
        return TrustedSet(docs["timestamp"], docs["snapshot"], docs["targets"], accepted)


def _size_and_hash(path: Path) -> tuple[int, str]:
    sha = hashlib.sha256()
    size = 0
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            sha.update(chunk)
            size += len(chunk)
    return size, sha.hexdigest()

"""Parsing and checking of the model registry's signed metadata (see :mod:`.metadata`).

Each document is an envelope ``{"signed": {...}, "signatures": [HybridSignature JSON, ...]}``;
the signatures cover :func:`canonical_json` of ``signed`` with a context per document type, and
the schema of ``signed`` is checked strictly (exact field sets, integers only, UTC times).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from workstation.core.errors import WorkstationError
from workstation.security.bundle import Version
from workstation.security.errors import BundleError, SignatureError, TrustError
from workstation.security.sign import HybridSignature
from workstation.security.trust import (
    TrustRoots,
    canonical_json,
    format_time,
    parse_time,
    strict_json,
)

KINDS = frozenset(
    {"signature", "expired", "rollback", "mix-and-match", "malformed", "unknown-target", "hash"}
)
SPEC_VERSION = 1
CHANNELS = ("shadow", "canary", "stable")
TARGETS_FILE = "targets.json"


@dataclass(frozen=True)
class DocType:
    """What one kind of metadata is called, which role signs it, and its signing context."""

    name: str  # "timestamp", "snapshot", "targets"
    type: str
    role: str
    context: str


TIMESTAMP = DocType(
    "timestamp", "medical-workstation/model-timestamp", "registry", "medws-model-timestamp-v1"
)
SNAPSHOT = DocType(
    "snapshot", "medical-workstation/model-snapshot", "registry", "medws-model-snapshot-v1"
)
TARGETS = DocType("targets", "medical-workstation/model-targets", "model", "medws-model-targets-v1")
DOC_TYPES = {d.name: d for d in (TIMESTAMP, SNAPSHOT, TARGETS)}

_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
_SITE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z")
_TARGET_FIELDS = {"sha256", "size", "channel"}
_TARGET_OPTIONAL = {"sites", "validation"}


class MetadataError(WorkstationError):
    """Model metadata or a bundle was refused; ``kind`` says which check failed (one of
    :data:`KINDS`), and the message starts with it."""

    def __init__(self, kind: str, message: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown metadata error kind {kind!r}")
        super().__init__(f"{kind}: {message}")
        self.kind = kind


@dataclass(frozen=True)
class Document:
    """One verified metadata document: its parsed ``signed`` part and its exact bytes."""

    doc: DocType
    raw: bytes
    signed: dict[str, Any]
    version: int
    expires: dt.datetime

    @property
    def sha256(self) -> str:
        """SHA-256 (hex) of the document's bytes, as the document above it records it."""
        return sha256_hex(self.raw)

    def expired(self, now: dt.datetime) -> bool:
        """True at or after its expiry."""
        return now >= self.expires


def sha256_hex(data: bytes) -> str:
    """Lower-case hex SHA-256."""
    return hashlib.sha256(data).hexdigest()


def _int(value: Any, what: str, low: int) -> int:
    if type(value) is not int or value < low:
        raise ValueError(f"{what} must be an integer >= {low}, not {value!r}")
    return value


def _hash(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _HEX64.match(value):
        raise ValueError(f"{what} must be 64 lower-case hex digits")
    return value


def _ref(value: Any, what: str) -> dict[str, Any]:
    """``{"version": int, "sha256": hex}``: how one document names the one below it."""
    if not isinstance(value, dict) or set(value) != {"version", "sha256"}:
        raise ValueError(f"{what} must have exactly the fields 'version' and 'sha256'")
    _int(value["version"], f"{what} version", 1)
    _hash(value["sha256"], f"{what} sha256")
    return value


def split_target(key: str) -> tuple[str, Version]:
    """``"<name>/<version>"`` → (name, semantic version); ``ValueError`` when malformed."""
    name, sep, version = key.partition("/")
    if not sep or not _NAME.match(name):
        raise ValueError(f"target {key!r} must be '<name>/<version>' (name: letters, digits, ._-)")
    try:
        return name, Version.parse(version)
    except BundleError as error:
        raise ValueError(f"target {key!r}: {error}") from None


def _target(key: str, entry: Any) -> None:
    split_target(key)
    if not isinstance(entry, dict) or not set(entry) >= _TARGET_FIELDS:
        raise ValueError(f"target {key!r} must have the fields {sorted(_TARGET_FIELDS)}")
    extra = set(entry) - _TARGET_FIELDS - _TARGET_OPTIONAL
    if extra:
        raise ValueError(f"target {key!r} has unknown field(s) {sorted(extra)}")
    _hash(entry["sha256"], f"target {key!r} sha256")
    _int(entry["size"], f"target {key!r} size", 0)
    if entry["channel"] not in CHANNELS:
        raise ValueError(f"target {key!r} channel must be one of {', '.join(CHANNELS)}")
    sites = entry.get("sites")
    if sites is not None and not (
        isinstance(sites, list)
        and sites
        and all(isinstance(s, str) and _SITE.match(s) for s in sites)
    ):
        raise ValueError(f"target {key!r} sites must be null or a non-empty list of site ids")
    if "validation" in entry and not isinstance(entry["validation"], dict):
        raise ValueError(f"target {key!r} validation must be an object")


def _check_body(doc: DocType, signed: dict[str, Any]) -> None:
    if doc is TIMESTAMP:
        _ref(signed["snapshot"], "snapshot")
    elif doc is SNAPSHOT:
        meta = signed["meta"]
        if not isinstance(meta, dict) or set(meta) != {TARGETS_FILE}:
            raise ValueError(f"meta must name exactly {TARGETS_FILE!r}")
        _ref(meta[TARGETS_FILE], TARGETS_FILE)
    else:
        targets = signed["targets"]
        if not isinstance(targets, dict):
            raise ValueError("targets must be an object")
        for key, entry in targets.items():
            _target(key, entry)


_BODY = {TIMESTAMP.name: "snapshot", SNAPSHOT.name: "meta", TARGETS.name: "targets"}


def parse(doc: DocType, raw: bytes, trust: TrustRoots, now: dt.datetime) -> Document:
    """Parse ``raw`` as a ``doc`` document and check a threshold of its role's keys signed it
    (keys valid at ``now``). Expiry and versions are the caller's checks."""
    what = f"the {doc.name} metadata"
    try:
        envelope = strict_json(raw, what, ValueError)
        if not isinstance(envelope, dict) or set(envelope) != {"signed", "signatures"}:
            raise ValueError("expected exactly the fields 'signed' and 'signatures'")
        signed = envelope["signed"]
        fields = {"type", "spec_version", "version", "expires", _BODY[doc.name]}
        if not isinstance(signed, dict) or set(signed) != fields:
            raise ValueError(f"'signed' must have exactly the fields {sorted(fields)}")
        if signed["type"] != doc.type or signed["spec_version"] != SPEC_VERSION:
            raise ValueError(f"not a {doc.type} document of spec version {SPEC_VERSION}")
        version = _int(signed["version"], "version", 1)
        expires = parse_time(signed["expires"], "expires")
        _check_body(doc, signed)
        if not isinstance(envelope["signatures"], list):
            raise ValueError("signatures must be a list")
        signatures = [HybridSignature.from_json(s) for s in envelope["signatures"]]
    except (AttributeError, KeyError, TypeError, ValueError, SignatureError) as error:
        raise MetadataError("malformed", f"{what} is malformed: {error}") from None
    try:
        trust.check(doc.role, signatures, canonical_json(signed), context=doc.context, now=now)
    except TrustError as error:
        raise MetadataError("signature", f"{what} (version {version}) {error}") from None
    return Document(doc, raw, signed, version, expires)


def check_not_expired(document: Document, now: dt.datetime) -> None:
    """Refuse expired metadata (a freeze attack, or a registry that stopped re-signing)."""
    if document.expired(now):
        raise MetadataError(
            "expired",
            f"the {document.doc.name} metadata (version {document.version}) expired on "
            f"{format_time(document.expires)}; refusing it (freeze)",
        )


def check_version(new: Document, old: Document | None) -> None:
    """No going back: a lower version is a rollback; an equal one must be the same bytes."""
    if old is None:
        return
    name = new.doc.name
    if new.version < old.version:
        raise MetadataError(
            "rollback",
            f"{name} version {new.version} is older than the trusted version {old.version}",
        )
    if new.version == old.version and new.raw != old.raw:
        raise MetadataError(
            "rollback",
            f"{name} version {new.version} differs from the trusted document of that version",
        )


def check_ref(ref: Mapping[str, Any], document: Document, named_by: str) -> None:
    """``document`` must be exactly the one that ``named_by`` names (version and hash)."""
    name = document.doc.name
    if ref["sha256"] != document.sha256 or ref["version"] != document.version:
        raise MetadataError(
            "mix-and-match",
            f"the {named_by} names {name} version {ref['version']} (sha256 "
            f"{ref['sha256'][:12]}…) but got {name} version {document.version} (sha256 "
            f"{document.sha256[:12]}…)",
        )


def check_targets_forward(new: Document, old: Document | None) -> None:
    """For every model name in both, the highest listed version must not decrease (a name may
    disappear altogether: that is how a model is withdrawn)."""
    if old is None:
        return
    before, after = highest(old.signed["targets"]), highest(new.signed["targets"])
    for name, version in sorted(before.items()):
        if name in after and after[name] < version:
            raise MetadataError(
                "rollback",
                f"model {name!r}: the newest listed version went back from {version} to "
                f"{after[name]} (targets version {old.version} → {new.version})",
            )


def highest(targets: Mapping[str, Any]) -> dict[str, Version]:
    """The highest listed version of each model name."""
    out: dict[str, Version] = {}
    for key in targets:
        name, version = split_target(key)
        if name not in out or out[name] < version:
            out[name] = version
    return out

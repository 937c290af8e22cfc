"""The signed bundle's manifest: schema, semantic versions, and safe payload names."""

from __future__ import annotations

import datetime as dt
import functools
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from workstation.security._canonical import canonical_json, format_time, parse_time, strict_json
from workstation.security.errors import BundleError

FORMAT = 1
KINDS = ("model", "plugin", "release")
MANIFEST, SIGNATURES, PAYLOAD = "manifest.json", "signatures.json", "payload/"
_FIELDS = {"format", "kind", "name", "version", "created", "expires", "files", "requirements"}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
_IDENT = r"(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)"
_SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    rf"(?:-({_IDENT}(?:\.{_IDENT})*))?(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?\Z"
)
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {
    f"{p}{i}" for p in ("COM", "LPT") for i in "123456789"
}
_WINDOWS_BAD = set('<>:"|?*\\')


@functools.total_ordering
@dataclass(frozen=True, eq=False)
class Version:
    """A semantic version (semver.org 2.0): compared numerically, pre-releases first, build
    metadata ignored."""

    text: str
    key: tuple[Any, ...]

    @classmethod
    def parse(cls, text: Any) -> Version:
        """Parse ``MAJOR.MINOR.PATCH[-PRE][+BUILD]``; anything else raises :class:`BundleError`."""
        match = _SEMVER.match(text) if isinstance(text, str) and len(text) <= 128 else None
        if match is None:
            raise BundleError(f"{text!r} is not a semantic version like 1.2.0")
        major, minor, patch, pre, _build = match.groups()
        parts = pre.split(".") if pre else []
        pre_key = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts)
        return cls(text, (int(major), int(minor), int(patch), not parts, pre_key))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self.key == other.key

    def __lt__(self, other: Version) -> bool:
        return self.key < other.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __str__(self) -> str:
        return self.text


def unsafe_reason(path: str) -> str | None:
    """Why ``path`` (``/``-separated, relative) is unsafe to create anywhere, or ``None``."""
    if not path:
        return "it is empty"
    if len(path.encode("utf-8")) > 1024:
        return "it is longer than 1024 bytes"
    if "\\" in path:
        return "it contains a backslash"
    if path.startswith("/"):
        return "it is an absolute path"
    if re.match(r"[A-Za-z]:", path):
        return "it starts with a drive letter"
    if any(ord(c) < 32 or c == "\x7f" for c in path):
        return "it contains a control character"
    if unicodedata.normalize("NFC", path) != path:
        return "it is not in Unicode normal form C"
    for part in path.split("/"):
        if part in ("", ".", ".."):
            return f"it has an empty, '.' or '..' component ({part!r})"
        if len(part.encode("utf-8")) > 255:
            return "a component is longer than 255 bytes"
        if _WINDOWS_BAD & set(part):
            return f"{part!r} contains a character Windows forbids"
        if part.endswith((".", " ")) or part.split(".")[0].upper() in _WINDOWS_RESERVED:
            return f"{part!r} is not a valid file name on Windows"
    return None


def collision_key(path: str) -> str:
    """Paths with equal keys name the same file on case-insensitive file systems."""
    return unicodedata.normalize("NFC", path).casefold()


@dataclass(frozen=True)
class FileRecord:
    """One payload file as the manifest declares it (``path`` is relative to ``payload/``)."""

    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """A parsed, validated manifest and its exact (signed) bytes."""

    kind: str
    name: str
    version: Version
    created: dt.datetime
    expires: dt.datetime
    files: tuple[FileRecord, ...]
    requirements: dict[str, Any]
    raw: bytes

    @property
    def total_size(self) -> int:
        """The payload's size in bytes."""
        return sum(f.size for f in self.files)

    def to_json(self) -> dict[str, Any]:
        """The manifest as a JSON-ready dictionary."""
        return {
            "format": FORMAT,
            "kind": self.kind,
            "name": self.name,
            "version": str(self.version),
            "created": format_time(self.created),
            "expires": format_time(self.expires),
            "files": [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in self.files],
            "requirements": self.requirements,
        }

    @classmethod
    def build(
        cls,
        *,
        kind: str,
        name: str,
        version: str,
        created: dt.datetime,
        expires: dt.datetime,
        files: list[FileRecord],
        requirements: dict[str, Any],
    ) -> Manifest:
        """Validate and encode a manifest (the writer's path into :meth:`parse`)."""
        doc = {
            "format": FORMAT,
            "kind": kind,
            "name": name,
            "version": version,
            "created": format_time(created),
            "expires": format_time(expires),
            "files": [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in files],
            "requirements": requirements,
        }
        try:
            raw = canonical_json(doc)
        except (TypeError, ValueError) as error:
            raise BundleError(f"the manifest cannot be encoded: {error}") from None
        return cls.parse(raw)

    @classmethod
    def parse(cls, raw: bytes) -> Manifest:
        """Parse the exact bytes of ``manifest.json``; refuse anything non-canonical."""
        doc = strict_json(raw, MANIFEST, BundleError)
        if canonical_json(doc) != raw:
            raise BundleError(f"{MANIFEST} is not canonical JSON (sorted keys, no spaces, UTF-8)")
        try:
            return cls._from_doc(doc, raw)
        except (KeyError, TypeError, ValueError) as error:
            raise BundleError(f"{MANIFEST} is invalid: {error}") from None

    @classmethod
    def _from_doc(cls, doc: Any, raw: bytes) -> Manifest:
        if not isinstance(doc, dict) or set(doc) != _FIELDS:
            raise ValueError(f"it must have exactly the fields {sorted(_FIELDS)}")
        if doc["format"] != FORMAT:
            raise ValueError(f"format {doc['format']!r} is not supported (this reads {FORMAT})")
        if doc["kind"] not in KINDS:
            raise ValueError(f"kind {doc['kind']!r} is not one of {', '.join(KINDS)}")
        if not isinstance(doc["name"], str) or not _NAME.match(doc["name"]):
            raise ValueError(f"name {doc['name']!r}: use letters, digits, '.', '_', '-'")
        version = Version.parse(doc["version"])
        created = parse_time(doc["created"], "created")
        expires = parse_time(doc["expires"], "expires")
        if expires <= created:
            raise ValueError("it expires before it was created")
        if not isinstance(doc["requirements"], dict):
            raise ValueError("requirements must be an object")
        files = []
        for item in doc["files"]:
            if not isinstance(item, dict) or set(item) != {"path", "sha256", "size"}:
                raise ValueError("each file needs exactly 'path', 'sha256' and 'size'")
            path, digest, size = item["path"], item["sha256"], item["size"]
            reason = unsafe_reason(path) if isinstance(path, str) else "it is not a string"
            if reason:
                raise ValueError(f"file name {path!r} is unsafe: {reason}")
            if not isinstance(digest, str) or not _SHA256.match(digest):
                raise ValueError(f"{path}: sha256 must be 64 lowercase hex digits")
            if type(size) is not int or size < 0:
                raise ValueError(f"{path}: size must be a non-negative integer")
            files.append(FileRecord(path, digest, size))
        _check_names([f.path for f in files])
        return cls(
            doc["kind"], doc["name"], version, created, expires, tuple(files),
            doc["requirements"], raw,
        )  # fmt: skip


def _check_names(paths: list[str]) -> None:
    """Sorted, unique, no case/normalisation collisions, no file that is also a folder."""
    if paths != sorted(paths) or len(set(paths)) != len(paths):
        raise ValueError("files must be sorted by path, each listed once")
    keys = {collision_key(p): p for p in paths}
    if len(keys) != len(paths):
        raise ValueError("two file names differ only in case (they collide on macOS/Windows)")
    for path in paths:
        parts = collision_key(path).split("/")
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            if prefix in keys:
                raise ValueError(f"{keys[prefix]!r} is both a file and a folder")

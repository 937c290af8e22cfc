"""Test helpers for trust roots and signed bundles: throwaway keys, roots, bundles, raw zips.

Every test makes its own keys and roots here; none needs the maintainers' offline keys.
"""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from workstation.security import _zipfmt
from workstation.security.bundle import context_for, write_bundle
from workstation.security.sign import HybridSigningKey
from workstation.security.trust import ROLES, TrustRoots, canonical_json, root_signed, sign_root

NOW = dt.datetime(2030, 6, 1, 12, 0, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
LAYOUT = {"root": (3, 2), "release": (3, 2), "model": (1, 1), "plugin": (1, 1), "registry": (1, 1)}


@dataclass
class Publisher:
    """A set of role keys and the root built from them (``thresholds``, ``expiries`` tunable)."""

    keys: dict[str, list[HybridSigningKey]] = field(default_factory=dict)
    thresholds: dict[str, int] = field(default_factory=dict)
    key_expires: dict[str, dt.datetime] = field(default_factory=dict)  # by key id
    revoked: set[str] = field(default_factory=set)
    expires: dt.datetime = NOW + 365 * DAY
    version: int = 1

    @classmethod
    def make(cls) -> Publisher:
        keys = {r: [HybridSigningKey.generate() for _ in range(n)] for r, (n, _) in LAYOUT.items()}
        return cls(keys, {r: k for r, (_, k) in LAYOUT.items()})

    def key(self, role: str, index: int = 0) -> HybridSigningKey:
        return self.keys[role][index]

    def signed(self) -> dict:
        roles = {
            role: (
                self.thresholds[role],
                [(k.public_key, self.key_expires.get(k.key_id, NOW + 700 * DAY)) for k in keys],
            )
            for role, keys in self.keys.items()
        }
        return root_signed(roles, version=self.version, expires=self.expires, revoked=self.revoked)

    def root_bytes(self, signers: Iterable[HybridSigningKey] | None = None) -> bytes:
        signers = list(self.keys["root"][: self.thresholds["root"]] if signers is None else signers)
        return sign_root(self.signed(), signers)

    def write_root(self, path: Path, signers: Iterable[HybridSigningKey] | None = None) -> Path:
        path.write_bytes(self.root_bytes(signers))
        return path

    def roots(self, now: dt.datetime = NOW) -> TrustRoots:
        return TrustRoots.from_bytes(self.root_bytes(), now=now)


assert set(LAYOUT) == set(ROLES)


def source_tree(folder: Path, *, big: int = 3000) -> Path:
    """A small payload: a binary file, a text file in a sub-folder, an empty file."""
    (folder / "sub").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(bytes(range(256)) * (big // 256) + b"\x01" * (big % 256))
    (folder / "sub" / "notes.txt").write_text("hello bundle\n" * 40)
    (folder / "sub" / "empty").write_bytes(b"")
    return folder


def bundle(
    tmp: Path,
    keys: list[HybridSigningKey],
    *,
    kind: str = "model",
    version: str = "1.2.0",
    name: str = "demo",
    created: dt.datetime = NOW - DAY,
    expires: dt.timedelta = 30 * DAY,
    compression: str | None = None,
    src: Path | None = None,
) -> Path:
    """Write a bundle of :func:`source_tree` (made once per ``tmp``)."""
    src = src or tmp / "src"
    if not src.exists():
        source_tree(src)
    out = tmp / f"{name}-{kind}-{version}-{len(list(tmp.glob('*.zip')))}.zip"
    write_bundle(
        src, out, kind=kind, name=name, version=version, signing_keys=keys,
        created=created, expires=expires, compression=compression,  # type: ignore[arg-type]
    )  # fmt: skip
    return out


# -- raw zips ----------------------------------------------------------------------------------


@dataclass
class Raw:
    """One entry to write by hand: ``data`` as stored in the zip (already compressed if
    ``method`` is 8); ``usize`` / ``crc`` default to the truth for stored data."""

    name: str
    data: bytes
    method: int = 0
    usize: int | None = None
    crc: int | None = None


def raw_zip(path: Path, entries: list[Raw]) -> Path:
    """A canonical-format zip with exactly these entries, whatever they claim."""
    out = bytearray()
    records = []
    for raw in entries:
        usize = len(raw.data) if raw.usize is None else raw.usize
        crc = zlib.crc32(raw.data) if raw.crc is None else raw.crc
        entry = _zipfmt.Entry(raw.name, raw.method, crc, len(raw.data), usize, len(out))
        out += entry.local_header() + raw.data
        records.append(entry.central_record())
    directory = b"".join(records)
    cd_offset = len(out)
    out += directory + _zipfmt.end_records(len(records), cd_offset, len(directory))
    path.write_bytes(bytes(out))
    return path


def deflate(data: bytes) -> bytes:
    """Raw deflate, as zip entries hold it."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def entries_of(path: Path) -> dict[str, bytes]:
    """The stored bytes of each entry of a canonical bundle, in order."""
    data = path.read_bytes()
    with path.open("rb") as f:
        directory = _zipfmt.read_directory(f, len(data))
    return {
        e.name: data[e.data_offset : e.data_offset + e.csize] for e in directory.entries
    }  # fmt: skip


def signed_manifest(doc: dict, keys: list[HybridSigningKey]) -> tuple[bytes, bytes]:
    """``(manifest.json, signatures.json)`` bytes for an arbitrary manifest ``doc``."""
    raw = canonical_json(doc)
    sigs = [k.sign(raw, context=context_for(doc["kind"])).to_json() for k in keys]
    return raw, canonical_json(sigs)

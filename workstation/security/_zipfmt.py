"""The canonical zip subset of signed bundles: one encoding, written and accepted byte for byte.

Every entry has the UTF-8 name flag and nothing else, method stored (0) or deflate (8), the time
1980-01-01 00:00, Unix regular file mode 0644, no comment, no data descriptor, and an extra field
only for ZIP64 values (sizes from :data:`ZIP64_SIZE`, offsets from :data:`ZIP64_OFFSET`).
Entries lie back to back from offset 0; the central directory follows at once, then the ZIP64
end records when an offset needs them, then the end record without a comment, at the very end.

The reader re-encodes every record from the values it parsed and compares bytes, so any other
encoding, and any changed byte of the container, is refused. Python's :mod:`zipfile` and
``unzip`` read these files; this module reads only these files.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

from workstation.security.errors import BundleError

STORED, DEFLATED = 0, 8
FLAGS = 0x0800  # names are UTF-8
DOS_TIME, DOS_DATE = 0, (0 << 9) | (1 << 5) | 1  # 1980-01-01 00:00:00
MODE = 0o100644  # a regular file, rw-r--r--
ZIP64_SIZE = 0xF000_0000  # sizes from here on use ZIP64 fields (room for deflate's growth)
ZIP64_OFFSET = 0xFFFF_FFFF  # offsets (and the directory's size) from here on use ZIP64 fields
MAX_ENTRIES = 0xFFFE  # the end record's 16-bit counts always suffice
_M32 = 0xFFFF_FFFF
_UNIX = 3

_LOCAL = struct.Struct("<4sHHHHHIIIHH")
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
_END = struct.Struct("<4sHHHHIIH")
_END64 = struct.Struct("<4sQHHIIQQQQ")
_LOCATOR = struct.Struct("<4sIQI")
_SIG_LOCAL, _SIG_CENTRAL = b"PK\x03\x04", b"PK\x01\x02"
_SIG_END, _SIG_END64, _SIG_LOCATOR = b"PK\x05\x06", b"PK\x06\x06", b"PK\x06\x07"

_LOCAL_FIELDS = (
    "signature", "version needed", "flags", "compression method", "modification time",
    "modification date", "CRC-32", "compressed size", "size", "name length", "extra length",
)  # fmt: skip
_CENTRAL_FIELDS = (
    "signature", "version made by", "version needed", "flags", "compression method",
    "modification time", "modification date", "CRC-32", "compressed size", "size",
    "name length", "extra length", "comment length", "disk number", "internal attributes",
    "file type and mode", "offset",
)  # fmt: skip


@dataclass(frozen=True)
class Entry:
    """One zip entry: what the central directory says (``record``: its bytes as read)."""

    name: str
    method: int
    crc: int
    csize: int
    usize: int
    offset: int
    mode: int = MODE
    flags: int = FLAGS
    record: bytes = b""

    @property
    def _zip64_sizes(self) -> bool:
        return self.usize >= ZIP64_SIZE

    @property
    def _needed(self) -> int:
        return 45 if self._zip64_sizes or self.offset >= ZIP64_OFFSET else 20

    @property
    def data_offset(self) -> int:
        """Where the (compressed) data starts."""
        return (
            self.offset + _LOCAL.size + len(self.name.encode()) + (20 if self._zip64_sizes else 0)
        )

    def local_header(self) -> bytes:
        """The canonical local file header."""
        name = self.name.encode()
        sizes = (_M32, _M32) if self._zip64_sizes else (self.csize, self.usize)
        extra = struct.pack("<HHQQ", 1, 16, self.usize, self.csize) if self._zip64_sizes else b""
        head = (_SIG_LOCAL, self._needed, FLAGS, self.method, DOS_TIME, DOS_DATE, self.crc)
        return _LOCAL.pack(*head, *sizes, len(name), len(extra)) + name + extra

    def central_record(self) -> bytes:
        """The canonical central directory record."""
        name = self.name.encode()
        wide: list[int] = []
        csize, usize, offset = self.csize, self.usize, self.offset
        if self._zip64_sizes:
            wide += [usize, csize]
            csize = usize = _M32
        if self.offset >= ZIP64_OFFSET:
            wide.append(offset)
            offset = _M32
        extra = struct.pack(f"<HH{len(wide)}Q", 1, 8 * len(wide), *wide) if wide else b""
        made_by = (_UNIX << 8) | self._needed
        fields = (_SIG_CENTRAL, made_by, self._needed, FLAGS, self.method, DOS_TIME, DOS_DATE)
        fields += (self.crc, csize, usize, len(name), len(extra), 0, 0, 0, MODE << 16, offset)
        return _CENTRAL.pack(*fields) + name + extra


def end_records(count: int, cd_offset: int, cd_size: int) -> bytes:
    """The canonical end of the file after the central directory."""
    out = b""
    if cd_offset >= ZIP64_OFFSET or cd_size >= ZIP64_OFFSET:
        made_by = (_UNIX << 8) | 45
        out += _END64.pack(_SIG_END64, 44, made_by, 45, 0, 0, count, count, cd_size, cd_offset)
        out += _LOCATOR.pack(_SIG_LOCATOR, 0, cd_offset + cd_size, 1)
    size32 = _M32 if cd_size >= ZIP64_OFFSET else cd_size
    offset32 = _M32 if cd_offset >= ZIP64_OFFSET else cd_offset
    return out + _END.pack(_SIG_END, 0, 0, count, count, size32, offset32, 0)


# -- reading -----------------------------------------------------------------------------------


def read_at(f: BinaryIO, offset: int, size: int) -> bytes:
    """Exactly ``size`` bytes at ``offset``; a short read is a truncated bundle."""
    f.seek(offset)
    data = f.read(size)
    if len(data) != size:
        raise BundleError(f"the file is truncated (wanted {size} bytes at offset {offset})")
    return data


@dataclass(frozen=True)
class Directory:
    """The parsed central directory and where it lies."""

    entries: list[Entry]
    cd_offset: int
    cd_size: int
    file_size: int


def read_directory(f: BinaryIO, file_size: int) -> Directory:
    """Parse the end records and the central directory (structure only; see :func:`check`)."""
    if file_size < _END.size:
        raise BundleError("not a signed bundle: too short to be a zip file")
    end_at = file_size - _END.size
    sig, _, _, _, count, cd_size, cd_offset, _ = _END.unpack(read_at(f, end_at, _END.size))
    if sig != _SIG_END:
        raise BundleError(
            "not a signed bundle: no zip end record at the end of the file (not a zip, "
            "truncated, or with trailing data or a comment)"
        )
    if _M32 in (cd_size, cd_offset):
        at = end_at - _LOCATOR.size - _END64.size
        if at < 0:
            raise BundleError("the ZIP64 end records are missing")
        lsig, _, end64_at, _ = _LOCATOR.unpack(read_at(f, end_at - _LOCATOR.size, _LOCATOR.size))
        if lsig != _SIG_LOCATOR or end64_at != at:
            raise BundleError("the ZIP64 end locator is missing or points elsewhere")
        record = _END64.unpack(read_at(f, at, _END64.size))
        if record[0] != _SIG_END64:
            raise BundleError("the ZIP64 end record is missing")
        count, cd_size, cd_offset, end_at = record[7], record[8], record[9], at
    if count > MAX_ENTRIES:
        raise BundleError(f"too many zip entries ({count}; at most {MAX_ENTRIES})")
    if cd_offset + cd_size != end_at:
        raise BundleError("the zip directory is not where the end record says (corrupt zip)")
    cd = read_at(f, cd_offset, cd_size)
    entries: list[Entry] = []
    pos = 0
    for _ in range(count):
        if pos + _CENTRAL.size > len(cd):
            raise BundleError("the zip directory is truncated")
        fields = _CENTRAL.unpack_from(cd, pos)
        if fields[0] != _SIG_CENTRAL:
            raise BundleError("the zip directory is corrupt (bad record signature)")
        nlen, xlen, clen = fields[10], fields[11], fields[12]
        end = pos + _CENTRAL.size + nlen + xlen + clen
        if end > len(cd):
            raise BundleError("the zip directory is truncated")
        raw_name = cd[pos + _CENTRAL.size : pos + _CENTRAL.size + nlen]
        try:
            name = raw_name.decode("utf-8")
        except UnicodeDecodeError:
            raise BundleError(f"zip entry name {raw_name!r} is not UTF-8") from None
        extra = cd[pos + _CENTRAL.size + nlen : pos + _CENTRAL.size + nlen + xlen]
        csize, usize, offset = _wide(name, extra, fields[8], fields[9], fields[16])
        method, crc, mode, flags = fields[4], fields[7], fields[15] >> 16, fields[3]
        record = cd[pos:end]
        entries.append(Entry(name, method, crc, csize, usize, offset, mode, flags, record))
        pos = end
    if pos != len(cd):
        raise BundleError("the zip directory holds more records than the end record counts")
    return Directory(entries, cd_offset, cd_size, file_size)


def _wide(name: str, extra: bytes, csize: int, usize: int, offset: int) -> tuple[int, int, int]:
    """Apply a ZIP64 extra field to the 32-bit values that overflowed."""
    if _M32 not in (csize, usize, offset):
        return csize, usize, offset
    pos = 0
    while pos + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, pos)
        if tag == 1:
            values = extra[pos + 4 : pos + 4 + size]
            wanted = [v == _M32 for v in (usize, csize, offset)]
            if len(values) < 8 * sum(wanted):
                break
            got = iter(struct.unpack_from(f"<{sum(wanted)}Q", values))
            usize = next(got) if wanted[0] else usize
            csize = next(got) if wanted[1] else csize
            offset = next(got) if wanted[2] else offset
            return csize, usize, offset
        pos += 4 + size
    raise BundleError(f"{name}: the ZIP64 extra field is missing or malformed")


def check_layout(f: BinaryIO, directory: Directory) -> None:
    """Refuse anything but the canonical encoding (see the module docstring)."""
    pos = 0
    for entry in directory.entries:
        if entry.offset != pos:
            raise BundleError(
                f"{entry.name}: entry at offset {entry.offset}, expected {pos} (entries must "
                "follow each other with nothing between)"
            )
        want = entry.central_record()
        if entry.record != want:
            what = _difference(entry.record, want, _CENTRAL, _CENTRAL_FIELDS)
            raise BundleError(f"{entry.name}: non-canonical {what} in the zip directory")
        check_local(f, entry)
        pos = entry.data_offset + entry.csize
    if pos != directory.cd_offset:
        raise BundleError("unexpected bytes between the last entry and the zip directory")
    end = directory.cd_offset + directory.cd_size
    tail = read_at(f, end, directory.file_size - end)
    if tail != end_records(len(directory.entries), directory.cd_offset, directory.cd_size):
        raise BundleError("the zip end record is not canonical (counts, sizes or comment)")


def check_local(f: BinaryIO, entry: Entry) -> None:
    """Refuse a local header other than the canonical one for the directory's values."""
    header = entry.local_header()
    got = read_at(f, entry.offset, len(header))
    if got != header:
        what = _difference(got, header, _LOCAL, _LOCAL_FIELDS)
        raise BundleError(f"{entry.name}: non-canonical {what} in the local header")


def _difference(got: bytes, want: bytes, layout: struct.Struct, names: tuple[str, ...]) -> str:
    if len(got) >= layout.size:
        for name, a, b in zip(
            names, layout.unpack_from(got), layout.unpack_from(want), strict=True
        ):
            if a != b:
                return name
    return "name or extra field"


# -- writing -----------------------------------------------------------------------------------


class ZipWriter:
    """Writes the canonical encoding to a seekable binary file opened at offset 0."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self._entries: list[Entry] = []
        self._pos = 0

    def add(self, name: str, chunks: Iterable[bytes], *, size: int, method: int) -> Entry:
        """Write one entry of exactly ``size`` bytes (``chunks``) with ``method``."""
        start = self._pos
        draft = Entry(name, method, 0, 0, size, start)
        self._f.write(draft.local_header())
        compressor = zlib.compressobj(6, zlib.DEFLATED, -15) if method == DEFLATED else None
        crc = csize = usize = 0
        for chunk in chunks:
            crc = zlib.crc32(chunk, crc)
            usize += len(chunk)
            out = compressor.compress(chunk) if compressor else chunk
            self._f.write(out)
            csize += len(out)
        if compressor is not None:
            tail = compressor.flush()
            self._f.write(tail)
            csize += len(tail)
        if usize != size:
            raise BundleError(f"{name} changed size while it was being bundled")
        entry = Entry(name, method, crc, csize, usize, start)
        self._f.seek(start)
        self._f.write(entry.local_header())
        self._pos = entry.data_offset + csize
        self._f.seek(self._pos)
        self._entries.append(entry)
        return entry

    def close(self) -> None:
        """Write the central directory and the end records."""
        if len(self._entries) > MAX_ENTRIES:
            raise BundleError(f"a bundle holds at most {MAX_ENTRIES} entries")
        directory = b"".join(e.central_record() for e in self._entries)
        self._f.write(directory)
        self._f.write(end_records(len(self._entries), self._pos, len(directory)))

"""multipart/related (RFC 2046 / 2387) as DICOMweb uses it: parsed from a stream of chunks.

:func:`iter_parts` yields each part as soon as its closing delimiter has arrived, so a series
retrieve holds one instance in memory at a time, never the whole response. A part that declares
its ``Content-Length`` (Orthanc, dcm4chee) is taken by length and the delimiter only checked,
so its bytes are not searched; otherwise the delimiter is searched for, resuming where the last
search stopped (linear in the body size, unlike split-on-every-chunk parsers). A body that ends
before the close delimiter raises :class:`TruncatedResponseError` and the incomplete part is
never yielded.

:func:`encode_parts` writes the request body of a STOW-RS store, streaming file contents.
"""

from __future__ import annotations

import email.message
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from workstation.dicom.dicomweb.errors import BadResponseError, TruncatedResponseError

_CRLF = b"\r\n"
_MAX_HEADER_BYTES = 64 * 1024  # a part's header section; more is not a DICOMweb response
_FILE_CHUNK = 1 << 20


def parse_content_type(value: str) -> tuple[str, dict[str, str]]:
    """``(media type, parameters)`` of a Content-Type value; names lower-cased, values unquoted.

    Quoted parameters may hold ``;`` (Orthanc: ``type="application/octet-stream;
    transfer-syntax=1.2.840.10008.1.2.1"``).
    """
    message = email.message.Message()
    message["content-type"] = value
    params = message.get_params() or []
    return message.get_content_type(), {str(k).lower(): str(v) for k, v in params[1:]}


@dataclass(frozen=True)
class Part:
    """One body part: its headers (names lower-cased) and its content."""

    headers: Mapping[str, str]
    content: bytes

    @property
    def content_type(self) -> str:
        """The media type (``application/dicom``, ``application/octet-stream``, ...)."""
        return parse_content_type(self.headers.get("content-type", "application/octet-stream"))[0]

    @property
    def transfer_syntax(self) -> str | None:
        """The ``transfer-syntax`` parameter of the part's Content-Type, when given."""
        value = self.headers.get("content-type")
        return None if value is None else parse_content_type(value)[1].get("transfer-syntax")

    @property
    def location(self) -> str | None:
        """The Content-Location header (the frame or instance URL), when given."""
        return self.headers.get("content-location")


def _parse_headers(raw: bytes) -> Mapping[str, str]:
    headers: dict[str, str] = {}
    for line in raw.decode("latin-1").split("\r\n"):
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise BadResponseError(f"malformed multipart header line ({len(line)} characters)")
        headers[name.strip().lower()] = value.strip()
    return MappingProxyType(headers)


def _declared_length(headers: Mapping[str, str]) -> int | None:
    value = headers.get("content-length")
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        return None
    return length if length >= 0 else None


def iter_parts(chunks: Iterable[bytes], boundary: str) -> Iterator[Part]:
    """Parse a multipart body arriving as ``chunks``; yield each complete part.

    Raises
    ------
    TruncatedResponseError
        The chunks ended before the close delimiter (the part in progress is dropped).
    BadResponseError
        No opening boundary, or a malformed part header.
    """
    if not boundary:
        raise BadResponseError("multipart response without a boundary")
    dash = b"--" + boundary.encode("latin-1")
    delimiter = _CRLF + dash
    buf = bytearray()
    source = iter(chunks)
    state = "preamble"
    pos = 0  # where parsing resumes in buf
    body_start = 0
    search_from = 0
    length: int | None = None
    headers: Mapping[str, str] = MappingProxyType({})
    count = 0

    def more() -> bool:
        for chunk in source:
            if chunk:
                buf.extend(chunk)
                return True
        return False

    while True:
        if state == "preamble":
            index = buf.find(dash)
            while index > 0 and buf[index - 2 : index] != _CRLF:
                index = buf.find(dash, index + 1)
            if index < 0:
                if len(buf) > _MAX_HEADER_BYTES:
                    raise BadResponseError("multipart response without its opening boundary")
                if not more():
                    raise TruncatedResponseError("the multipart response ended before any part")
                continue
            pos, state = index + len(dash), "delimiter"
        elif state == "delimiter":
            if len(buf) - pos < 2 and not more():
                break
            if len(buf) - pos < 2:
                continue
            if buf[pos : pos + 2] == b"--":
                return  # close delimiter; the epilogue is ignored
            end = buf.find(_CRLF, pos)
            if end < 0:
                if len(buf) - pos > 1024:
                    raise BadResponseError("malformed multipart boundary line")
                if not more():
                    break
                continue
            if buf[pos:end].strip(b" \t"):
                raise BadResponseError("malformed multipart boundary line")
            del buf[: end + 2]
            pos, state = 0, "headers"
        elif state == "headers":
            if buf[:2] == _CRLF:
                header_end, body_start = 0, 2
            else:
                header_end = buf.find(b"\r\n\r\n")
                body_start = header_end + 4
            if header_end < 0:
                if len(buf) > _MAX_HEADER_BYTES:
                    raise BadResponseError("multipart part header too long")
                if not more():
                    break
                continue
            headers = _parse_headers(bytes(buf[:header_end]))
            length = _declared_length(headers)
            search_from = body_start
            state = "body"
        else:  # body
            end = -1
            if length is not None:
                stop = body_start + length
                if len(buf) < stop + len(delimiter):
                    if not more():
                        break
                    continue
                if buf[stop : stop + len(delimiter)] == delimiter:
                    end = stop
                else:
                    length = None  # a wrong Content-Length: find the delimiter instead
            if end < 0:
                end = buf.find(delimiter, search_from)
                if end < 0:
                    search_from = max(body_start, len(buf) - len(delimiter) + 1)
                    if not more():
                        break
                    continue
            count += 1
            with memoryview(buf) as view:  # one copy out of the buffer (a slice would be two)
                part = Part(headers, view[body_start:end].tobytes())
            del buf[: end + len(delimiter)]
            pos, state = 0, "delimiter"
            yield part
    raise TruncatedResponseError(
        f"the multipart response was cut off after {count} complete part(s) (no closing "
        "boundary); the incomplete part was dropped"
    )


def new_boundary() -> str:
    """A random boundary that cannot occur in DICOM data by chance."""
    return f"medws-{uuid.uuid4().hex}"


def encode_parts(
    items: Iterable[bytes | str | os.PathLike[str]], boundary: str, content_type: str
) -> tuple[int, Iterator[bytes]]:
    """The body of a multipart/related request: ``(total length, chunks)``.

    ``items`` are bytes or paths of files (streamed in 1 MiB chunks, never read whole). The
    length is computed up front so the request carries a Content-Length.
    """
    sources: list[bytes | Path] = [
        bytes(item) if isinstance(item, bytes | bytearray | memoryview) else Path(item)
        for item in items
    ]
    if not sources:
        raise ValueError("a multipart body needs at least one part")
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1")
    opening = b"--" + boundary.encode("latin-1") + _CRLF + head
    between = _CRLF + opening
    closing = _CRLF + b"--" + boundary.encode("latin-1") + b"--" + _CRLF
    sizes = [len(s) if isinstance(s, bytes) else s.stat().st_size for s in sources]
    total = len(opening) + sum(sizes) + len(between) * max(0, len(sources) - 1) + len(closing)

    def chunks() -> Iterator[bytes]:
        for index, source in enumerate(sources):
            yield opening if index == 0 else between
            if isinstance(source, bytes):
                yield source
                continue
            with open(source, "rb") as handle:
                while block := handle.read(_FILE_CHUNK):
                    yield block
        yield closing

    return total, chunks()

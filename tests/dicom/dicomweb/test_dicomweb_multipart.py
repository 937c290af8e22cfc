"""The streaming multipart parser: any chunking, declared lengths or not, truncation caught."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workstation.dicom.dicomweb._multipart import (
    encode_parts,
    iter_parts,
    parse_content_type,
)
from workstation.dicom.dicomweb.errors import BadResponseError, TruncatedResponseError

BOUNDARY = "b0undary-42"


def body(
    parts: list[bytes], *, lengths: bool, preamble: bytes = b"", epilogue: bytes = b""
) -> bytes:
    out = [preamble]
    for index, content in enumerate(parts):
        out.append((b"\r\n" if index or preamble else b"") + b"--" + BOUNDARY.encode() + b"\r\n")
        out.append(b"Content-Type: application/dicom\r\n")
        if lengths:
            out.append(f"Content-Length: {len(content)}\r\n".encode())
        out.append(b"\r\n" + content)
    out.append(b"\r\n--" + BOUNDARY.encode() + b"--" + epilogue)
    return b"".join(out)


def chunked(data: bytes, sizes: list[int]) -> list[bytes]:
    chunks, position = [], 0
    for size in sizes:
        chunks.append(data[position : position + size])
        position += size
    chunks.append(data[position:])
    return chunks


# Contents that look like delimiters without being one, and empty parts.
CONTENT = st.binary(max_size=300) | st.sampled_from(
    [b"", b"\r\n", b"--" + BOUNDARY.encode()[:-1], b"\r\n--b0undary-4", b"x\r\n\r\ny"]
)


@settings(max_examples=150, deadline=None)
@given(
    parts=st.lists(CONTENT, min_size=1, max_size=5),
    sizes=st.lists(st.integers(1, 40), max_size=60),
    lengths=st.booleans(),
    preamble=st.sampled_from([b"", b"ignored preamble"]),
)
def test_parts_survive_any_chunking(parts, sizes, lengths, preamble):
    data = body(parts, lengths=lengths, preamble=preamble, epilogue=b"\r\nepilogue")
    got = list(iter_parts(chunked(data, sizes), BOUNDARY))
    assert [p.content for p in got] == parts
    assert all(p.content_type == "application/dicom" for p in got)


@settings(max_examples=100, deadline=None)
@given(
    parts=st.lists(st.binary(min_size=1, max_size=200), min_size=1, max_size=4),
    cut=st.integers(min_value=1),
    lengths=st.booleans(),
)
def test_a_body_cut_anywhere_never_yields_a_partial_part(parts, cut, lengths):
    data = body(parts, lengths=lengths)
    cut_at = cut % (len(data) - 1)  # anything short of the final "--"
    received = []
    with pytest.raises(TruncatedResponseError):
        for part in iter_parts([data[:cut_at]], BOUNDARY):
            received.append(part.content)
    assert received == parts[: len(received)]  # complete parts only, in order
    assert len(received) < len(parts) or cut_at >= len(data) - 4


def test_a_wrong_content_length_falls_back_to_the_delimiter():
    data = body([b"abc", b"defgh"], lengths=False).replace(
        b"Content-Type: application/dicom\r\n\r\nabc",
        b"Content-Type: application/dicom\r\nContent-Length: 1\r\n\r\nabc",
    )
    assert [p.content for p in iter_parts([data], BOUNDARY)] == [b"abc", b"defgh"]


def test_part_headers_and_the_orthanc_content_type():
    media, params = parse_content_type(
        'multipart/related; type="application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"'
        "; boundary=abc-123"
    )
    assert media == "multipart/related"
    assert params["boundary"] == "abc-123"
    assert params["type"] == "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1"
    data = (
        b"--abc-123\r\nContent-Type: image/dicom-rle; transfer-syntax=1.2.840.10008.1.2.5\r\n"
        b"Content-Location: http://x/frames/1\r\n\r\nRLE\r\n--abc-123--\r\n"
    )
    [part] = iter_parts([data], "abc-123")
    assert part.transfer_syntax == "1.2.840.10008.1.2.5"
    assert part.location == "http://x/frames/1"
    assert part.content == b"RLE"


def test_no_opening_boundary_is_malformed():
    with pytest.raises(BadResponseError):
        list(iter_parts([b"x" * 70_000], BOUNDARY))
    with pytest.raises(TruncatedResponseError):
        list(iter_parts([b"not multipart at all"], BOUNDARY))


def test_encoded_parts_parse_back_with_the_declared_length(tmp_path):
    file = tmp_path / "a.dcm"
    file.write_bytes(b"\x00file contents\r\n--" * 1000)
    length, chunks = encode_parts([b"first", file], BOUNDARY, "application/dicom")
    data = b"".join(chunks)
    assert len(data) == length
    assert [p.content for p in iter_parts([data], BOUNDARY)] == [b"first", file.read_bytes()]
    with pytest.raises(ValueError):
        encode_parts([], BOUNDARY, "application/dicom")

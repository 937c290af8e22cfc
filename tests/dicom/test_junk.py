"""Junk never crashes a scan: each bad file is reported with its path and a reason.

Fixed cases (zero bytes, truncations, random bytes named .dcm, a PNG, DICOM without pixel data,
...) beside a good series, and Hypothesis fuzzing of random bytes, truncations and overwritten
bytes of a valid file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian

from workstation.core import WorkstationError
from workstation.dicom import DicomError, load_series, scan
from workstation.dicom.synthetic import SeriesSpec, write_series

# pydicom warns about every invalid value it meets in corrupted input; that is expected here.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

FUZZ = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _png(width: int = 4, height: int = 4) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = b"".join(b"\0" + bytes(range(width)) for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_good_series_loads_beside_junk_and_each_bad_file_is_reported(make_series):
    written = make_series()
    folder = written.folder
    good = written.paths[0].read_bytes()
    pixel_start = len(good) - 32 * 32 * 2
    junk = {
        "empty.dcm": b"",
        "truncated_header.dcm": good[:300],
        "truncated_pixels.dcm": good[: pixel_start + 100],
        "random.dcm": np.random.default_rng(1).bytes(5000),
        "random_with_preamble.dcm": b"\0" * 128 + b"DICM" + np.random.default_rng(2).bytes(900),
        "image.png": _png(),
        "notes.txt": b"scanned on Tuesday\n",
        "preamble_only.dcm": b"\0" * 128 + b"DICM",
    }
    nested = folder / "extra" / "deeper"
    nested.mkdir(parents=True)
    for name, content in junk.items():
        (nested if name.startswith("random") else folder).joinpath(name).write_bytes(content)
    # A DICOM object without pixel data (e.g. a presentation state) in the same series.
    no_pixels = pydicom.dcmread(written.paths[0])
    del no_pixels.PixelData
    no_pixels.SOPInstanceUID = pydicom.uid.generate_uid()
    no_pixels.save_as(folder / "no_pixels.dcm")
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # skipped silently

    catalog = scan(folder)
    [series] = catalog.series
    assert series.slice_count == 12 and series.warnings == ()
    volume = load_series(catalog)
    np.testing.assert_array_equal(volume.array, written.stored)

    reported = {Path(p.path).name: p.reason for p in catalog.problems}
    assert set(reported) == {*junk, "no_pixels.dcm"}
    assert all(p.reason and os.path.isabs(p.path) for p in catalog.problems)
    assert "0 bytes" in reported["empty.dcm"]
    assert "truncated" in reported["truncated_pixels.dcm"]
    assert "not a DICOM file" in reported["image.png"]
    assert "not a DICOM file" in reported["random.dcm"]
    assert "without pixel data" in reported["no_pixels.dcm"]
    for name in junk:
        expected = (nested if name.startswith("random") else folder) / name
        assert any(p.path == str(expected) for p in catalog.problems), name
    assert catalog.files_seen == 12 + len(junk) + 1


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs and symlinks")
def test_special_files_neither_hang_nor_crash_scan(make_series):
    written = make_series(slices=4)
    folder = written.folder
    os.mkfifo(folder / "pipe")  # reading it would block forever
    (folder / "broken_link").symlink_to(folder / "does_not_exist")
    (folder / "loop").symlink_to(folder, target_is_directory=True)
    (folder / "sub").mkdir()
    (folder / "sub" / "up").symlink_to(folder, target_is_directory=True)
    catalog = scan(folder)
    [series] = catalog.series
    assert series.slice_count == 4
    assert catalog.problems == []
    np.testing.assert_array_equal(load_series(catalog).array, written.stored)


def test_scan_of_missing_path_raises_clearly(tmp_path):
    with pytest.raises(WorkstationError, match="no such file or folder"):
        scan(tmp_path / "nowhere")


def test_scan_of_empty_folder_and_list_with_missing_file(tmp_path):
    catalog = scan(tmp_path)
    assert catalog.series == [] and catalog.problems == []
    missing = tmp_path / "gone.dcm"
    catalog = scan([missing])
    [problem] = catalog.problems
    assert problem.path == str(missing) and problem.reason


def test_unloadable_only_junk_gives_clear_error(tmp_path):
    (tmp_path / "a.dcm").write_bytes(b"junk")
    with pytest.raises(DicomError, match="no loadable series"):
        load_series(tmp_path)


# --------------------------------------------------------------------------- fuzzing


@pytest.fixture(scope="module", params=["explicit", "implicit", "big-endian", "no-preamble"])
def valid_file(request, tmp_path_factory) -> tuple[bytes, np.ndarray]:
    """The bytes of one valid single-slice file (12-bit CT with rescale) and its stored pixels.

    Encoded four ways, so both header readers (the fast one and pydicom's) are fuzzed.
    """
    folder = tmp_path_factory.mktemp("valid")
    stored = np.random.default_rng(0).integers(0, 4096, (1, 16, 16), dtype=np.uint16)
    [path] = write_series(
        folder,
        stored,
        spec=SeriesSpec(modality="CT", rescale_intercept=-1024.0, window_center=40.0,
                        window_width=400.0, uid_prefix="fuzz"),
    )  # fmt: skip
    if request.param in ("implicit", "big-endian"):
        ds = pydicom.dcmread(path)
        syntax = ImplicitVRLittleEndian if request.param == "implicit" else ExplicitVRBigEndian
        ds.file_meta.TransferSyntaxUID = syntax
        if request.param == "big-endian":
            ds.PixelData = stored[0].astype(">u2").tobytes()
            ds["PixelData"].VR = "OW"
        pydicom.dcmwrite(
            path,
            ds,
            implicit_vr=syntax.is_implicit_VR,
            little_endian=syntax.is_little_endian,
            force_encoding=True,
        )
    content = path.read_bytes()
    if request.param == "no-preamble":
        content = content[132:]  # starts with the file meta group (0002,xxxx)
    return content, stored[0]


def _scan_one(content: bytes, name: str = "file.dcm") -> tuple[str, object]:
    """Scan a folder holding only ``content``; check the invariants; return what happened."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, name)
        with open(path, "wb") as handle:
            handle.write(content)
        catalog = scan(folder)  # must never raise
        assert catalog.files_seen == 1
        if catalog.problems:
            [problem] = catalog.problems
            assert problem.path == path
            assert isinstance(problem.reason, str) and problem.reason.strip()
            assert catalog.series == []
            return "problem", problem.reason
        [series] = catalog.series
        try:
            volume = load_series(catalog, series.key)
        except DicomError as error:  # refusing is fine; crashing with anything else is not
            return "refused", str(error)
        return "loaded", volume


@FUZZ
@given(content=st.binary(max_size=2000), preamble=st.booleans())
def test_random_bytes_never_crash_scan(content, preamble):
    if preamble:
        content = b"\0" * 128 + b"DICM" + content
    outcome, _ = _scan_one(content)
    assert outcome == "problem"


@FUZZ
@given(data=st.data())
def test_truncation_at_any_offset_is_reported(valid_file, data):
    content, stored = valid_file
    size = data.draw(st.integers(0, len(content)), label="size")
    outcome, result = _scan_one(content[:size])
    if size < len(content):
        assert outcome == "problem"
    else:
        assert outcome == "loaded"
        np.testing.assert_array_equal(result.array[0], stored.astype(np.int32) - 1024)


@FUZZ
@given(data=st.data())
def test_overwritten_bytes_never_crash_scan(valid_file, data):
    content, _ = valid_file
    header_end = len(content) - 16 * 16 * 2
    mutated = bytearray(content)
    for _ in range(data.draw(st.integers(1, 4), label="runs")):
        offset = data.draw(st.integers(0, header_end - 1), label="offset")
        replacement = data.draw(st.binary(min_size=1, max_size=8), label="bytes")
        mutated[offset : offset + len(replacement)] = replacement
    outcome, result = _scan_one(bytes(mutated))
    if outcome == "loaded":
        assert result.array.ndim == 3


@FUZZ
@given(data=st.data())
def test_overwritten_bytes_in_a_series_never_crash_scan(data, tmp_path_factory):
    """One corrupted file among good ones: the others still load."""
    folder = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp()))
    try:
        stored = np.random.default_rng(1).integers(0, 4096, (4, 8, 8), dtype=np.uint16)
        paths = write_series(folder, stored, spec=SeriesSpec(uid_prefix="fuzz"))  # same sizes
        victim = paths[data.draw(st.integers(0, 3), label="victim")]
        raw = bytearray(victim.read_bytes())
        offset = data.draw(st.integers(0, len(raw) - 8 * 8 * 2 - 1), label="offset")
        replacement = data.draw(st.binary(min_size=1, max_size=16), label="bytes")
        raw[offset : offset + len(replacement)] = replacement
        victim.write_bytes(bytes(raw))
        catalog = scan(folder)
        problem_paths = {p.path for p in catalog.problems}
        assert problem_paths <= {str(victim)}
        for series in catalog.series:
            with contextlib.suppress(DicomError):  # refusing is fine, crashing is not
                load_series(catalog, series.key)
    finally:
        shutil.rmtree(folder)

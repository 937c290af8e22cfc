"""Decoding of compressed pixel data: exactness, plugin choice, parallel path, cancel, errors."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate, generate_frames
from pydicom.pixels import get_decoder

from workstation.core.errors import Cancelled
from workstation.core.tasks import CancelToken
from workstation.dicom import _decode, _decode_pool, codecs
from workstation.dicom.errors import PixelDecodeError
from workstation.dicom.synthetic import SeriesSpec, write_series

try:
    import gdcm  # python-gdcm: the only encoder for JPEG lossless / baseline here
except ImportError:
    gdcm = None

RLE = "1.2.840.10008.1.2.5"
JPEG_LS = "1.2.840.10008.1.2.4.80"
J2K = "1.2.840.10008.1.2.4.90"
JPEG_SV1 = "1.2.840.10008.1.2.4.70"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
EXPLICIT_LE = "1.2.840.10008.1.2.1"

# syntax -> pydicom encoding plugin ("gdcm": transcoded with python-gdcm)
LOSSLESS = {RLE: "pydicom", JPEG_LS: "pyjpegls", J2K: "pylibjpeg", JPEG_SV1: "gdcm"}
LOSSLESS_IDS = ["rle", "jpegls", "j2k", "jpeg-sv1"]
needs_gdcm = pytest.mark.skipif(gdcm is None, reason="python-gdcm not installed")
LOSSLESS_PARAMS = [
    pytest.param(uid, id=name, marks=[needs_gdcm] if plugin == "gdcm" else [])
    for (uid, plugin), name in zip(LOSSLESS.items(), LOSSLESS_IDS, strict=True)
]
SLICES, SIZE = 8, 64


@pytest.fixture(autouse=True, scope="module")
def _quiet_and_no_pool() -> Iterator[None]:
    # pydicom logs every failing plugin with a traceback; the corrupt-data tests make many.
    logger = logging.getLogger("pydicom")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)
    codecs.shutdown_pool()


def phantom(signed: bool = False) -> np.ndarray:
    """Smooth blobs plus noise, 12-bit: compresses like real CT, not like random noise."""
    rng = np.random.default_rng(7)
    z, y, x = np.mgrid[0:SLICES, 0:SIZE, 0:SIZE].astype(np.float32) / SIZE - 0.5
    body = ((x / 0.4) ** 2 + (y / 0.3) ** 2) < 1
    values = np.where(body, 1064 + 300 * np.exp(-((x - z / 4) ** 2 + y**2) / 0.01), 24)
    values += rng.normal(0, 12, values.shape)
    stored = np.clip(np.rint(values), 0, 4095)
    return (stored - 2048).astype(np.int16) if signed else stored.astype(np.uint16)


def _gdcm_transcode(src: Path, dst: Path, uid: str) -> None:
    if gdcm is None:
        pytest.skip("python-gdcm not installed")
    names = {
        JPEG_SV1: gdcm.TransferSyntax.JPEGLosslessProcess14_1,
        JPEG_BASELINE: gdcm.TransferSyntax.JPEGBaselineProcess1,
    }
    reader = gdcm.ImageReader()
    reader.SetFileName(str(src))
    assert reader.Read()
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(names[uid]))
    change.SetInput(reader.GetImage())
    assert change.Change()
    writer = gdcm.ImageWriter()
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    writer.SetFileName(str(dst))
    assert writer.Write()


def compress_series(sources: list[Path], folder: Path, uid: str, plugin: str) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for src in sources:
        dst = folder / src.name
        if plugin == "gdcm":
            _gdcm_transcode(src, dst, uid)
        else:
            ds = pydicom.dcmread(src)
            ds.compress(uid, encoding_plugin=plugin)
            ds.save_as(dst, enforce_file_format=True)
        out.append(str(dst))
    return out


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, bool], list[str]]:
    """(syntax, signed) -> compressed files of the phantom; unsigned 12-bit and signed 12-bit."""
    root = tmp_path_factory.mktemp("codecs")
    made: dict[tuple[str, bool], list[str]] = {}
    for signed in (False, True):
        plain = write_series(
            root / f"plain-{signed}",
            phantom(signed),
            spec=SeriesSpec(modality="CT", extra={"BitsStored": 12, "HighBit": 11}),
        )
        made[(EXPLICIT_LE, signed)] = [str(p) for p in plain]
        for uid, plugin in LOSSLESS.items():
            if plugin == "gdcm" and gdcm is None:
                continue
            made[(uid, signed)] = compress_series(plain, root / f"{uid}-{signed}", uid, plugin)
    return made


def _stack(items: list[tuple[str, int]], **kwargs: object) -> np.ndarray:
    frames: dict[int, np.ndarray] = dict(codecs.decode_frames(items, **kwargs))  # type: ignore[arg-type]
    return np.stack([frames[i] for i in range(len(items))])


# -- exactness --------------------------------------------------------------------------------
@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
@pytest.mark.parametrize("uid", LOSSLESS_PARAMS)
def test_lossless_round_trip_is_exact(series, uid: str, signed: bool) -> None:
    files = series[(uid, signed)]
    assert pydicom.dcmread(files[0]).file_meta.TransferSyntaxUID == uid
    original = phantom(signed)
    for k, path in enumerate(files):
        frame = codecs.decode_frame(path)
        assert frame.dtype == original.dtype
        np.testing.assert_array_equal(frame, original[k])


@pytest.mark.parametrize("uid", LOSSLESS_PARAMS)
def test_every_available_plugin_is_exact(series, uid: str) -> None:
    """The ranking may pick any available plugin: all of them must be exact (signed data)."""
    from pydicom.pixels import pixel_array

    path = series[(uid, True)][3]
    for plugin in get_decoder(uid).available_plugins:
        np.testing.assert_array_equal(pixel_array(path, decoding_plugin=plugin), phantom(True)[3])


def test_native_files_decode_too(series) -> None:
    path = series[(EXPLICIT_LE, True)][2]
    np.testing.assert_array_equal(codecs.decode_frame(path), phantom(True)[2])


@needs_gdcm
def test_jpeg_baseline_decoders_agree_within_one(series, tmp_path: Path) -> None:
    """Lossy: no original to compare with, but every decoder gives the same image +/- 1."""
    from pydicom.pixels import pixel_array

    eight_bit = (phantom() // 16).astype(np.uint8)
    plain = write_series(tmp_path / "plain", eight_bit[:1])
    path = compress_series(plain, tmp_path / "jpeg", JPEG_BASELINE, "gdcm")[0]
    ours = codecs.decode_frame(path)
    assert ours.dtype == np.uint8
    assert np.abs(ours.astype(int) - eight_bit[0]).max() <= 4  # lossy, but close
    for plugin in get_decoder(JPEG_BASELINE).available_plugins:
        other = pixel_array(path, decoding_plugin=plugin).astype(int)
        assert np.abs(other - ours.astype(int)).max() <= 1, plugin


# pydicom's bundled compressed files and their uncompressed twins
PAIRS = [
    ("MR_small.dcm", "MR_small_RLE.dcm"),
    ("MR_small.dcm", "MR_small_jp2klossless.dcm"),
    ("MR_small.dcm", "MR_small_jpeg_ls_lossless.dcm"),
    ("rtdose_1frame.dcm", "rtdose_rle_1frame.dcm"),
    ("rtdose.dcm", "rtdose_rle.dcm"),
]


@pytest.mark.parametrize(("plain", "compressed"), PAIRS, ids=[p[1] for p in PAIRS])
def test_bundled_compressed_files_equal_their_uncompressed_twins(
    plain: str, compressed: str
) -> None:
    from pydicom.data import get_testdata_file

    plain_path, compressed_path = get_testdata_file(plain), get_testdata_file(compressed)
    if plain_path is None or compressed_path is None:
        pytest.skip("pydicom test file not available")
    frames = int(pydicom.dcmread(plain_path, stop_before_pixels=True).get("NumberOfFrames", 1))
    expected = pydicom.dcmread(plain_path).pixel_array.reshape(frames, -1)
    items = [(compressed_path, k) for k in range(frames)]
    got = _stack(items, workers=1).reshape(frames, -1)
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == expected.dtype


def test_dataset_whose_encoding_disagrees_with_its_meta_header() -> None:
    """pydicom's fast path-based reader fails on it; decode_frame falls back to a full read."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file("SC_rgb_jpeg.dcm")  # meta says explicit VR, dataset is implicit
    if path is None:
        pytest.skip("pydicom test file not available")
    with pytest.warns(UserWarning):
        ds = pydicom.dcmread(path)
        ds.pixel_array_options(decoding_plugin=codecs.decoder_for(JPEG_BASELINE))
        expected = ds.pixel_array
    with pytest.warns(UserWarning):
        got = codecs.decode_frame(path)
    assert got.shape == (256, 256, 3)
    np.testing.assert_array_equal(got, expected)


# -- plugin choice ----------------------------------------------------------------------------
def test_is_compressed() -> None:
    assert codecs.is_compressed(RLE) and codecs.is_compressed(J2K)
    assert codecs.is_compressed("1.2.840.10008.1.2.1.99")  # deflated: not raw bytes
    assert not codecs.is_compressed(EXPLICIT_LE)
    assert not codecs.is_compressed("1.2.840.10008.1.2")
    assert codecs.is_compressed("1.2.3.4")  # unknown: cannot be read as raw bytes


def test_decoder_for_picks_the_fastest_available() -> None:
    for uid in (RLE, JPEG_LS, J2K, JPEG_SV1, JPEG_BASELINE):
        available = get_decoder(uid).available_plugins
        chosen = codecs.decoder_for(uid)
        assert chosen in available
        assert chosen == next(p for p in _decode.RANKING[uid] if p in available)
    assert codecs.decoder_for(EXPLICIT_LE) == "pydicom"
    assert codecs.decoder_for("1.2.840.10008.1.2.4.100") is None  # MPEG-2 video
    assert codecs.decoder_for("1.2.3.4") is None


def test_decoder_availability_reports_reasons(monkeypatch: pytest.MonkeyPatch) -> None:
    report = codecs.decoder_availability()
    assert report[EXPLICIT_LE] == {"pydicom": "available"}
    rle = report[RLE]
    assert set(codecs.PLUGINS) <= set(rle)
    assert rle["pydicom"] == "available"
    assert rle["pyjpegls"] == "does not support RLE Lossless"
    for uid in (RLE, JPEG_LS, J2K):
        assert report[uid][codecs.decoder_for(uid)] == "available"

    # A plugin with missing dependencies: pydicom's reason is reported, the next one is used.
    decoder = get_decoder(JPEG_LS)
    first = codecs.decoder_for(JPEG_LS)
    monkeypatch.delitem(decoder._available, first)
    monkeypatch.setitem(decoder._unavailable, first, ("numpy", "some-codec>=9"))
    assert codecs.decoder_availability()[JPEG_LS][first] == "requires numpy and some-codec>=9"
    assert codecs.decoder_for(JPEG_LS) not in (None, first)


def test_lenient_plugin_is_used_when_it_is_the_only_one(
    series, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoder = get_decoder(JPEG_LS)
    if "pylibjpeg" not in decoder.available_plugins:
        pytest.skip("pylibjpeg not installed")
    for name in decoder.available_plugins:
        if name != "pylibjpeg":
            monkeypatch.delitem(decoder._available, name)
    assert codecs.decoder_for(JPEG_LS) == "pylibjpeg"
    path = series[(JPEG_LS, False)][1]
    np.testing.assert_array_equal(codecs.decode_frame(path), phantom()[1])


# -- many frames: parallel, cancel ------------------------------------------------------------
def test_parallel_path_equals_sequential(series) -> None:
    items = [(p, 0) for uid in (J2K, RLE) for p in series[(uid, True)]]
    sequential = _stack(items, workers=1)
    parallel = _stack(items, workers=2, parallel=True)
    np.testing.assert_array_equal(parallel, sequential)
    np.testing.assert_array_equal(parallel, np.concatenate([phantom(True)] * 2))
    assert parallel.dtype == np.int16


def test_pool_is_used_only_when_it_pays(
    series, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = np.tile(phantom()[:1], (1, 8, 8))  # one 512x512 slice
    plain = write_series(tmp_path / "plain", big)
    j2k_512 = [(compress_series(plain, tmp_path / "j2k", J2K, "pylibjpeg")[0], 0)]
    monkeypatch.setattr(_decode_pool, "_pool", None)  # cold: start-up counts
    assert _decode_pool.pool_pays(j2k_512 * 300, 4)  # a slow syntax, a whole series
    assert not _decode_pool.pool_pays(j2k_512 * 300, 1)  # one worker: never
    assert not _decode_pool.pool_pays(j2k_512 * 6, 4)  # a few frames
    assert not _decode_pool.pool_pays(j2k_512 * 30, 2)  # not worth starting two workers
    monkeypatch.setattr(_decode_pool, "_pool", object())  # warm: only the decoding counts
    monkeypatch.setattr(_decode_pool, "_pool_workers", 2)
    assert _decode_pool.pool_pays(j2k_512 * 30, 2)
    rle_small = [(p, 0) for p in series[(RLE, False)]]
    assert not _decode_pool.pool_pays(rle_small * 4, 2)  # fast syntax, small frames
    monkeypatch.setattr(_decode_pool, "_pool", None)

    calls: list[str] = []
    monkeypatch.setattr(_decode_pool, "decode_in_pool", lambda *a: calls.append("pool") or iter(()))
    assert len(list(codecs.decode_frames(rle_small, workers=4))) == len(rle_small)
    assert calls == []
    list(codecs.decode_frames(rle_small, workers=4, parallel=True))
    assert calls == ["pool"]


@pytest.mark.parametrize("parallel", [False, True], ids=["sequential", "parallel"])
def test_cancel_stops_decoding(series, parallel: bool) -> None:
    items = [(p, 0) for p in series[(J2K, False)]] * 4
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        next(codecs.decode_frames(items, workers=2, parallel=parallel, cancel=token))

    token = CancelToken()
    got = []
    with pytest.raises(Cancelled):
        for index, _frame in codecs.decode_frames(
            items, workers=2, parallel=parallel, cancel=token
        ):
            got.append(index)
            token.cancel()
    assert len(got) == 1
    # the shared pool is still usable afterwards
    np.testing.assert_array_equal(_stack(items[:8], workers=2, parallel=parallel), phantom())


def test_a_crashed_worker_raises_and_the_pool_recovers(series) -> None:
    items = [(p, 0) for p in series[(J2K, False)]] * 40
    frames = codecs.decode_frames(items, workers=2, parallel=True)
    next(frames)
    pool = _decode_pool._pool
    assert pool is not None
    for process in list(pool._processes.values()):
        process.kill()  # as when a decoder crashes on corrupt data
    with pytest.raises(PixelDecodeError, match="process died") as caught:
        list(frames)
    assert caught.value.path == Path(items[0][0])
    assert _decode_pool._pool is not pool  # discarded; the next request starts a fresh one
    np.testing.assert_array_equal(_stack(items[:8], workers=2, parallel=True), phantom())


def test_a_pool_broken_while_idle_is_replaced(series) -> None:
    codecs.start_pool(2)
    pool = _decode_pool._pool
    assert pool is not None
    pool.submit(os._exit, 1).exception()  # a worker dies between requests
    items = [(p, 0) for p in series[(RLE, False)]]
    np.testing.assert_array_equal(_stack(items, workers=2, parallel=True), phantom())
    assert _decode_pool._pool is not pool


# -- errors -----------------------------------------------------------------------------------
def truncate_pixel_data(path: str, out: Path) -> str:
    ds = pydicom.dcmread(path)
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    cut = frame[: len(frame) // 2]
    ds.PixelData = encapsulate([cut + b"\0" * (len(cut) % 2)])
    ds.save_as(out)
    return str(out)


@pytest.mark.parametrize("uid", LOSSLESS_PARAMS)
def test_corrupt_pixel_data_raises_with_path(series, tmp_path: Path, uid: str) -> None:
    bad = truncate_pixel_data(series[(uid, False)][0], tmp_path / "bad.dcm")
    with pytest.raises(PixelDecodeError) as caught:
        codecs.decode_frame(bad)
    assert caught.value.path == Path(bad)
    assert "bad.dcm" in str(caught.value)


def test_corrupt_data_is_not_handed_to_a_lenient_decoder(series, tmp_path: Path) -> None:
    """pyjpegls rejects a cut JPEG-LS stream; pylibjpeg would return garbage: not tried."""
    ds = pydicom.dcmread(series[(JPEG_LS, False)][0])
    frame = next(generate_frames(ds.PixelData, number_of_frames=1))
    ds.PixelData = encapsulate([frame[: len(frame) // 2 // 2 * 2] + b"\xff\xd9"])
    ds.save_as(tmp_path / "cut.dcm")
    with pytest.raises(PixelDecodeError, match=r"cut\.dcm"):
        codecs.decode_frame(str(tmp_path / "cut.dcm"))


def test_corrupt_frame_in_decode_frames(series, tmp_path: Path) -> None:
    files = list(series[(JPEG_LS, False)])
    files[2] = truncate_pixel_data(files[2], tmp_path / "bad.dcm")
    items = [(p, 0) for p in files]
    for parallel in (False, True):
        with pytest.raises(PixelDecodeError) as caught:
            list(codecs.decode_frames(items, workers=2, parallel=parallel))
        assert caught.value.path == Path(files[2])
        reported = dict(codecs.decode_frames(items, workers=2, parallel=parallel, errors="report"))
        assert sorted(reported) == list(range(len(items)))
        assert isinstance(reported[2], str) and "bad.dcm" in reported[2]
        np.testing.assert_array_equal(reported[3], phantom()[3])


def test_missing_or_non_dicom_file_raises(tmp_path: Path) -> None:
    with pytest.raises(PixelDecodeError):
        codecs.decode_frame(str(tmp_path / "missing.dcm"))
    text = tmp_path / "notes.txt"
    text.write_text("not dicom")
    with pytest.raises(PixelDecodeError) as caught:
        codecs.decode_frame(str(text))
    assert caught.value.path == text


def test_file_without_meta_header_decodes(series, tmp_path: Path) -> None:
    ds = pydicom.dcmread(series[(EXPLICIT_LE, True)][4])
    del ds.file_meta
    ds.preamble = None
    path = tmp_path / "raw.dcm"
    ds.save_as(path, implicit_vr=True, little_endian=True, enforce_file_format=False)
    with pytest.raises(pydicom.errors.InvalidDicomError):
        pydicom.dcmread(path)  # really no preamble / meta
    np.testing.assert_array_equal(codecs.decode_frame(str(path)), phantom(True)[4])


def test_frame_index_out_of_range_raises(series) -> None:
    with pytest.raises(PixelDecodeError):
        codecs.decode_frame(series[(RLE, False)][0], frame=5)


def test_cleanup_copies_are_independent(series, tmp_path: Path) -> None:
    """Frames from the pool are private copies (the shared buffer is gone afterwards)."""
    src = Path(series[(RLE, False)][0]).parent
    folder = shutil.copytree(src, tmp_path / "copy")
    items = [(str(p), 0) for p in sorted(folder.glob("*.dcm"))]
    frames = _stack(items, workers=2, parallel=True)
    frames[0, 0, 0] += 1  # writable, not a view into released memory
    np.testing.assert_array_equal(frames[1:], phantom()[1:])

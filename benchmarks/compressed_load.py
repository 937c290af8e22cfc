"""Benchmark: loading compressed DICOM series, ours against SimpleITK.

For each lossless transfer syntax (RLE, JPEG-LS, JPEG 2000) a synthetic CT series (300 slices of
512×512, 12-bit, smooth anatomy-like content plus noise; ``--quick``: 60 slices of 256×256) is
written once and cached under ``benchmarks/.data/``. In one process run we then time

* ``decode_frames`` sequentially (``workers=1``) and in parallel (process pool),
* ``workstation.dicom.load_series`` when the loader exists (else ``decode_frames`` + ``np.stack``
  + rescale, and the table says so),
* SimpleITK's ``ImageSeriesReader`` on the same files (reference),

check that every result equals the original voxels, print a table and, as the last line, one
JSON object. ``--plugins`` also times every available pydicom decoding plugin per syntax
(including JPEG baseline and JPEG lossless SV1) and checks exactness: the numbers behind the
ranking in ``workstation.dicom.codecs``.

Usage::

    python benchmarks/compressed_load.py [--quick] [--plugins] [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent
if str(ROOT.parent) not in sys.path:
    sys.path.insert(0, str(ROOT.parent))

DATA = ROOT / ".data"
DATA_VERSION = 1
INTERCEPT = -1024.0

# benchmark key -> (transfer syntax UID, pydicom encoding plugin or "gdcm", stored dtype)
SYNTAXES: dict[str, tuple[str, str, str]] = {
    "rle": ("1.2.840.10008.1.2.5", "pylibjpeg", "uint16"),
    "jpegls": ("1.2.840.10008.1.2.4.80", "pyjpegls", "uint16"),
    "j2k": ("1.2.840.10008.1.2.4.90", "pylibjpeg", "uint16"),
}
# Extra syntaxes used only by --plugins (no pydicom encoder: gdcm transcodes them).
EXTRA_SYNTAXES: dict[str, tuple[str, str, str]] = {
    "jpeg-sv1": ("1.2.840.10008.1.2.4.70", "gdcm", "uint16"),
    "jpeg-baseline": ("1.2.840.10008.1.2.4.50", "gdcm", "uint8"),
}
MAIN = tuple(SYNTAXES)


# -- synthetic data -------------------------------------------------------------------------------
def make_phantom(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Return a ``uint16`` ``[n, size, size]`` CT-like volume of 12-bit stored values.

    Body ellipse with a fat rim, two lungs that grow along the slices, a spine, a dozen smooth
    soft-tissue blobs and Gaussian noise (sigma 12 HU); stored = HU + 1024, clipped to 0..4095.
    Deterministic for a given ``seed``.
    """
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    blobs = [
        (
            rng.uniform(-0.25, 0.25),
            rng.uniform(-0.2, 0.2),
            rng.uniform(0.03, 0.1),
            rng.uniform(-60, 120),
            rng.uniform(0, np.pi),
        )
        for _ in range(12)
    ]
    out = np.empty((n, size, size), np.uint16)
    for k in range(n):
        t = k / max(n - 1, 1)
        body_a, body_b = 0.42 - 0.05 * np.cos(np.pi * t), 0.32 - 0.04 * np.cos(np.pi * t)
        r_body = (x / body_a) ** 2 + (y / body_b) ** 2
        hu = np.full((size, size), -1000.0, np.float32)
        hu[r_body < 1] = 40
        hu[(r_body < 1) & (r_body > 0.9)] = -80
        lung_b = 0.2 * (0.3 + 0.7 * np.sin(np.pi * t)) + 1e-3
        for sx in (-0.17, 0.17):
            r_lung = ((x - sx) / 0.12) ** 2 + ((y + 0.02) / lung_b) ** 2
            inside = r_lung < 1
            hu[inside] = -850 + 60 * np.sin(20 * x[inside])
        r_spine = (x / 0.05) ** 2 + ((y - 0.2) / 0.04) ** 2
        hu[r_spine < 1] = 700
        hu[r_spine < 0.4] = 250
        for bx, by, br, val, phase in blobs:
            rb = ((x - bx) ** 2 + (y - by) ** 2) / (
                br * (0.6 + 0.4 * np.sin(np.pi * t + phase))
            ) ** 2
            m = (rb < 1) & (r_body < 0.9)
            hu[m] += val * (1 - rb[m])
        hu += rng.normal(0, 12, hu.shape).astype(np.float32)
        out[k] = np.clip(np.rint(hu - INTERCEPT), 0, 4095).astype(np.uint16)
    return out


def _to_uint8(stored: np.ndarray) -> np.ndarray:
    """Soft-tissue window of the phantom as 8-bit (for JPEG baseline)."""
    hu = stored.astype(np.float32) + INTERCEPT
    return np.clip((hu + 160) / 400 * 255, 0, 255).astype(np.uint8)


def compress_file(src: Path, dst: Path, transfer_syntax: str, plugin: str) -> None:
    """Write ``src`` (uncompressed) to ``dst`` in ``transfer_syntax``, lossless where possible."""
    if plugin == "gdcm":
        import gdcm

        names = {
            "1.2.840.10008.1.2.4.70": gdcm.TransferSyntax.JPEGLosslessProcess14_1,
            "1.2.840.10008.1.2.4.50": gdcm.TransferSyntax.JPEGBaselineProcess1,
        }
        reader = gdcm.ImageReader()
        reader.SetFileName(str(src))
        if not reader.Read():
            raise RuntimeError(f"gdcm cannot read {src}")
        change = gdcm.ImageChangeTransferSyntax()
        change.SetTransferSyntax(gdcm.TransferSyntax(names[transfer_syntax]))
        change.SetInput(reader.GetImage())
        if not change.Change():
            raise RuntimeError(f"gdcm cannot transcode {src}")
        writer = gdcm.ImageWriter()
        writer.SetFile(reader.GetFile())
        writer.SetImage(change.GetOutput())
        writer.SetFileName(str(dst))
        if not writer.Write():
            raise RuntimeError(f"gdcm cannot write {dst}")
        return
    import pydicom

    ds = pydicom.dcmread(src)
    ds.compress(transfer_syntax, encoding_plugin=plugin)
    ds.save_as(dst, enforce_file_format=True)


def series_dir(key: str, quick: bool) -> Path:
    """Cache folder of one benchmark series."""
    return DATA / ("quick" if quick else "full") / key


def build_series(key: str, quick: bool, stored: Callable[[], np.ndarray]) -> list[Path]:
    """Create (once) and return the files of series ``key``; ``stored`` gives the voxels."""
    from workstation.dicom.synthetic import SeriesSpec, write_series

    table = {**SYNTAXES, **EXTRA_SYNTAXES}
    uid, plugin, dtype = table[key]
    folder = series_dir(key, quick)
    stamp = folder / "complete.json"
    if stamp.exists() and json.loads(stamp.read_text()).get("version") == DATA_VERSION:
        return sorted(folder.glob("*.dcm"))
    shutil.rmtree(folder, ignore_errors=True)
    plain = folder.with_name(folder.name + ".plain")
    shutil.rmtree(plain, ignore_errors=True)
    voxels = stored()
    if dtype == "uint8":
        voxels = _to_uint8(voxels)
    extra: dict[str, object] = {"BitsStored": 12, "HighBit": 11} if dtype == "uint16" else {}
    spec = SeriesSpec(
        modality="CT",
        rescale_intercept=INTERCEPT,
        series_description=f"benchmark {key}",
        body_part="CHEST",
        extra=extra,
    )
    sources = write_series(plain, voxels, spacing=(0.7, 0.7, 1.0), spec=spec)
    folder.mkdir(parents=True, exist_ok=True)
    for src in sources:
        compress_file(src, folder / src.name, uid, plugin)
    shutil.rmtree(plain)
    stamp.write_text(json.dumps({"version": DATA_VERSION, "syntax": uid, "files": len(sources)}))
    return sorted(folder.glob("*.dcm"))


# -- timing ---------------------------------------------------------------------------------------
def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Run ``fn`` ``repeat`` times; return the fastest wall time and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def _files(folder: Path) -> list[str]:
    return [str(p) for p in sorted(folder.glob("*.dcm"))]


def _decode_all(files: Sequence[str], **kwargs: Any) -> np.ndarray:
    from workstation.dicom.codecs import decode_frames

    frames: list[np.ndarray | None] = [None] * len(files)
    for index, frame in decode_frames([(f, 0) for f in files], **kwargs):
        frames[index] = frame
    return np.stack(frames)  # type: ignore[arg-type]


def _ours_loader() -> tuple[Callable[[Path], np.ndarray], str]:
    """``load_series`` when the loader exists, else decode_frames + stack + rescale."""
    try:
        from workstation.dicom import load_series
    except ImportError:

        def fallback(folder: Path) -> np.ndarray:
            stored = _decode_all(_files(folder))
            return stored.astype(np.int16) + np.int16(INTERCEPT)

        return fallback, "decode_frames+stack (no loader)"

    def load(folder: Path) -> np.ndarray:
        return np.asarray(load_series(folder).array)

    return load, "load_series"


def _simpleitk(folder: Path) -> np.ndarray:
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))
    return sitk.GetArrayFromImage(reader.Execute())


def _equal(a: np.ndarray, b: np.ndarray, offset: int = 0) -> bool:
    """``a == b + offset`` voxel for voxel, slice by slice (no full-size int64 copies)."""
    if a.shape != b.shape:
        return False
    return all(
        np.array_equal(x.astype(np.int32), y.astype(np.int32) + offset)
        for x, y in zip(a, b, strict=True)
    )


def run_main(quick: bool, repeat: int) -> dict[str, Any]:
    """Time ours vs SimpleITK on the three lossless syntaxes; print the table, return the JSON."""
    from workstation.dicom import _decode_pool, codecs

    n, size = (60, 256) if quick else (300, 512)
    phantom: dict[str, np.ndarray] = {}

    def voxels() -> np.ndarray:
        if "v" not in phantom:
            phantom["v"] = make_phantom(n, size)
        return phantom["v"]

    folders = {key: (build_series(key, quick, voxels), series_dir(key, quick)) for key in MAIN}
    load, load_name = _ours_loader()
    workers = _decode_pool.default_workers()
    rows: list[dict[str, Any]] = []
    per_syntax: dict[str, Any] = {}
    for key in MAIN:
        files_, folder = folders[key]
        files = [str(f) for f in files_]
        uid = SYNTAXES[key][0]
        t_seq, seq = best_of(lambda files=files: _decode_all(files, workers=1), repeat)
        codecs.shutdown_pool()
        t0 = time.perf_counter()
        cold = _decode_all(files, workers=workers, parallel=True)
        t_cold = time.perf_counter() - t0
        t_par, par = best_of(lambda files=files: _decode_all(files, parallel=True), repeat)
        t_auto, auto = best_of(lambda folder=folder: load(folder), repeat)
        t_ref, ref = best_of(lambda folder=folder: _simpleitk(folder), repeat)
        exact = {
            "seq": _equal(seq, voxels()),
            "par": _equal(par, voxels()) and _equal(cold, voxels()),
            "ours": _equal(auto, voxels(), int(INTERCEPT)),
            "ref": _equal(ref, voxels(), int(INTERCEPT)),
        }
        del seq, par, cold, auto, ref
        size_mb = sum(os.path.getsize(f) for f in files) / 1e6
        rows.append(
            {
                "key": key,
                "plugin": codecs.decoder_for(uid),
                "ratio": voxels().nbytes / 1e6 / size_mb,
                "seq": t_seq,
                "cold": t_cold,
                "par": t_par,
                "ours": t_auto,
                "ref": t_ref,
                "exact": exact,
            }
        )
        per_syntax[key] = {
            "transfer_syntax": uid,
            "decoder": codecs.decoder_for(uid),
            "decode_sequential_s": round(t_seq, 4),
            "decode_parallel_s": round(t_par, 4),
            "decode_parallel_cold_s": round(t_cold, 4),
            "ours_s": round(t_auto, 4),
            "reference_s": round(t_ref, 4),
            "ratio": round(t_auto / t_ref, 4),
            "exact": all(exact.values()),
        }
    codecs.shutdown_pool()

    print(f"\n{n} slices of {size}x{size}, 12-bit CT; {workers} workers; best of {repeat}")
    print(f"ours = {load_name}; reference = SimpleITK ImageSeriesReader (GetGDCMSeriesFileNames)")
    head = (
        f"{'syntax':8s} {'plugin':10s} {'ratio':>6s} {'seq s':>7s} {'par s':>7s} "
        f"{'(cold)':>7s} {'x':>5s} {'ours s':>7s} {'SITK s':>7s} {'ours/SITK':>9s}  exact"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        ok = "yes" if all(r["exact"].values()) else f"NO {r['exact']}"
        print(
            f"{r['key']:8s} {r['plugin']:10s} {r['ratio']:6.2f} {r['seq']:7.3f} {r['par']:7.3f} "
            f"{r['cold']:7.3f} {r['seq'] / r['par']:5.2f} {r['ours']:7.3f} {r['ref']:7.3f} "
            f"{r['ours'] / r['ref']:9.3f}  {ok}"
        )
    ours = sum(r["ours"] for r in rows)
    reference = sum(r["ref"] for r in rows)
    return {
        "benchmark": "compressed_load",
        "ours": round(ours, 4),
        "reference": round(reference, 4),
        "reference_name": "SimpleITK ImageSeriesReader",
        "ratio": round(ours / reference, 4),
        "ours_name": load_name,
        "slices": n,
        "size": size,
        "workers": workers,
        "exact": all(all(r["exact"].values()) for r in rows),
        "per_syntax": per_syntax,
    }


def run_plugins(quick: bool, repeat: int) -> None:
    """Time every available decoding plugin per syntax (one frame per call) and check exactness."""
    import logging

    from pydicom.pixels import get_decoder, pixel_array

    from workstation.dicom import codecs

    logging.getLogger("pydicom").setLevel(logging.CRITICAL)
    n, size = (60, 256) if quick else (300, 512)
    count = min(n, 100)
    phantom: dict[str, np.ndarray] = {}

    def voxels() -> np.ndarray:
        if "v" not in phantom:
            phantom["v"] = make_phantom(n, size)
        return phantom["v"]

    print(f"\nms per {size}x{size} slice (best of {repeat} x {count} slices; file read included)")
    print(
        f"{'syntax':14s} {'plugin':10s} {'wall ms':>8s} {'cpu ms':>7s}  {'max |diff|':>10s}  chosen"
    )
    for key, (uid, _, dtype) in {**SYNTAXES, **EXTRA_SYNTAXES}.items():
        files = [str(f) for f in build_series(key, quick, voxels)][:count]
        original = voxels()[:count]
        if dtype == "uint8":
            original = _to_uint8(original)
        chosen = codecs.decoder_for(uid)
        for plugin in get_decoder(uid).available_plugins:
            try:
                pixel_array(files[0], decoding_plugin=plugin)
            except (RuntimeError, ValueError, NotImplementedError) as error:
                print(f"{key:14s} {plugin:10s} fails: {str(error).splitlines()[-1]}")
                continue
            best_wall, best_cpu, decoded = float("inf"), float("inf"), None
            for _ in range(repeat):
                c0, t0 = time.process_time(), time.perf_counter()
                decoded = np.stack([pixel_array(f, decoding_plugin=plugin) for f in files])
                best_wall = min(best_wall, time.perf_counter() - t0)
                best_cpu = min(best_cpu, time.process_time() - c0)
            assert decoded is not None
            diff = int(np.abs(decoded.astype(np.int64) - original.astype(np.int64)).max())
            print(
                f"{key:14s} {plugin:10s} {best_wall / count * 1e3:8.2f} "
                f"{best_cpu / count * 1e3:7.2f}  {diff:10d}  {'*' if plugin == chosen else ''}"
            )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 slices of 256x256")
    parser.add_argument("--plugins", action="store_true", help="also time every plugin")
    parser.add_argument("--repeat", type=int, default=3, help="best of N (default 3)")
    args = parser.parse_args(argv)
    if args.plugins:
        run_plugins(args.quick, args.repeat)
    result = run_main(args.quick, args.repeat)
    print(json.dumps(result))
    return 0 if result["exact"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

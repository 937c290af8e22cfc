"""Shared helpers for the loader benchmarks: arguments, data, timing, memory, output.

Every benchmark script imports this module first; it puts the repository root on ``sys.path`` so
the scripts run from a checkout without installing the package. Data is generated with the
project's own writer (:mod:`workstation.dicom.synthetic`) and cached under ``benchmarks/.data``.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DATA_DIR = BENCH_DIR / ".data"

# Benchmark the working tree, not some other installed copy of the package.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

_DATA_VERSION = 2  # 2: the CT declares BitsStored 12, as CT scanners do


# -- arguments ---------------------------------------------------------------------------------
def parse_args(description: str, *, repeat: int = 5, quick_repeat: int = 3) -> argparse.Namespace:
    """Parse ``--quick`` and ``--repeat N``; ``args.repeat`` is filled in for the chosen mode."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick", action="store_true", help="small data and fewer repetitions (< 20 s)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help=f"timed repetitions per measurement (default {repeat}, {quick_repeat} with --quick)",
    )
    args = parser.parse_args()
    if args.repeat is None:
        args.repeat = quick_repeat if args.quick else repeat
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


# -- synthetic data ----------------------------------------------------------------------------
def synthetic_ct(shape: Sequence[int], *, seed: int = 0, dtype: Any = np.int16) -> np.ndarray:
    """Stored values (HU + 1024, 12-bit range) of a smooth torso-like CT with noise.

    A body ellipse (fat rim, soft tissue with slow variation), two lungs in the upper half,
    a spine and a few contrast-filled vessels, all changing smoothly along the slices, plus
    Gaussian noise (σ ≈ 12 HU). ``shape`` is ``(k, j, i)``.
    """
    nk, nj, ni = (int(s) for s in shape)
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(
        np.linspace(-1.0, 1.0, nj, dtype=np.float32),
        np.linspace(-1.0, 1.0, ni, dtype=np.float32),
        indexing="ij",
    )
    texture = (np.sin(7.0 * x + 1.3) * np.cos(5.0 * y - 0.4) + 0.5 * np.sin(13.0 * (x + y))).astype(
        np.float32
    )
    out = np.empty((nk, nj, ni), dtype=dtype)
    for k in range(nk):
        t = k / max(nk - 1, 1)
        ax, ay = 0.86 + 0.06 * np.sin(np.pi * t), 0.62 + 0.05 * np.cos(2.0 * np.pi * t)
        body = (x / ax) ** 2 + (y / ay) ** 2
        hu = np.full((nj, ni), -1000.0, dtype=np.float32)
        hu[body <= 1.0] = -100.0  # fat
        inner = body <= 0.8
        hu[inner] = 40.0 + 15.0 * texture[inner] + 20.0 * t
        if t > 0.45:  # lungs
            lr = 0.25 * np.sin(np.pi * min(1.0, (t - 0.45) / 0.5))
            for cx in (-0.38, 0.38):
                lung = ((x - cx) / (lr + 0.02)) ** 2 + ((y + 0.05) / (1.6 * lr + 0.02)) ** 2
                hu[lung <= 1.0] = -850.0 + 40.0 * texture[lung <= 1.0]
        spine = x**2 + ((y - 0.42 * ay) / 1.1) ** 2 <= 0.09**2
        hu[spine] = 700.0 + 300.0 * np.abs(texture[spine])
        for cx, cy, r in ((0.12, 0.05, 0.06), (-0.1, 0.1, 0.045)):
            vessel = (x - cx - 0.03 * np.sin(6.0 * t)) ** 2 + (y - cy) ** 2 <= r**2
            hu[vessel] = 250.0
        hu += rng.normal(0.0, 12.0, size=(nj, ni)).astype(np.float32)
        out[k] = np.clip(np.rint(hu + 1024.0), 0, 4095).astype(dtype)
    return out


def _marker(folder: Path) -> Path:
    """Written after the last file; beside the folder so the folder holds only DICOM files."""
    return folder.with_name(folder.name + ".complete.json")


def _cached(folder: Path, params: dict[str, Any], expected_files: int) -> bool:
    marker = _marker(folder)
    try:
        if json.loads(marker.read_text()) != params:
            return False
    except (OSError, ValueError):
        return False
    return [p.suffix for p in folder.iterdir()] == [".dcm"] * expected_files


def _mark(folder: Path, params: dict[str, Any]) -> None:
    _marker(folder).write_text(json.dumps(params))


def ct_series(
    name: str,
    shape: Sequence[int],
    *,
    spacing: Sequence[float] = (0.7, 0.7, 1.0),
    dtype: str = "int16",
) -> Path:
    """Folder of one synthetic CT series (``shape`` = ``(k, j, i)``), generated once and cached."""
    from workstation.dicom.synthetic import SeriesSpec, write_series

    folder = DATA_DIR / name
    params = {
        "version": _DATA_VERSION,
        "kind": "ct",
        "shape": [int(s) for s in shape],
        "spacing": [float(s) for s in spacing],
        "dtype": dtype,
    }
    if _cached(folder, params, int(shape[0])):
        return folder
    log(f"generating {name} ({'x'.join(map(str, shape))} {dtype}) ...")
    t0 = time.perf_counter()
    _marker(folder).unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)
    spec = SeriesSpec(
        modality="CT",
        rescale_intercept=-1024,
        window_center=40,
        window_width=400,
        patient_name="BENCH^CT",
        series_description=f"Benchmark CT {name}",
        body_part="CHEST",
        bits_stored=12,
    )
    stored = synthetic_ct(shape, dtype=np.dtype(dtype))
    write_series(folder, stored, spacing=spacing, origin=(-180.0, -180.0, -150.0), spec=spec)
    _mark(folder, params)
    log(f"  done in {time.perf_counter() - t0:.1f} s")
    return folder


def standard_ct(*, quick: bool) -> tuple[tuple[int, int, int], str]:
    """Shape and folder of the CT series the load benchmarks share (300 × 512², or 60 × 256²)."""
    shape = (60, 256, 256) if quick else (300, 512, 512)
    return shape, str(ct_series(f"ct_{shape[0]}x{shape[1]}x{shape[2]}_int16", shape))


def header_study(name: str, n_series: int, n_slices: int, size: int) -> Path:
    """Flat folder of ``n_series`` small series (``n_slices`` × ``size``²) in one study, cached.

    Small pixels keep the data small while the number of headers to read stays large.
    """
    from pydicom.uid import generate_uid

    from workstation.dicom.synthetic import SeriesSpec, write_series

    folder = DATA_DIR / name
    params = {
        "version": _DATA_VERSION,
        "kind": "headers",
        "series": n_series,
        "slices": n_slices,
        "size": size,
    }
    if _cached(folder, params, n_series * n_slices):
        return folder
    log(f"generating {name} ({n_series} series x {n_slices} slices of {size}x{size}) ...")
    t0 = time.perf_counter()
    _marker(folder).unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)
    study_uid = generate_uid()
    for s in range(n_series):
        spec = SeriesSpec(
            modality="CT",
            rescale_intercept=-1024,
            window_center=40,
            window_width=400,
            patient_name="BENCH^HEADERS",
            study_uid=study_uid,
            series_number=s + 1,
            series_description=f"Benchmark series {s + 1}",
        )
        stored = synthetic_ct((n_slices, size, size), seed=s)
        write_series(
            folder,
            stored,
            spacing=(0.7, 0.7, 1.0 + 0.5 * (s % 3)),
            spec=spec,
            file_pattern=f"S{s + 1:02d}_" + "IM{index:05d}.dcm",
        )
    _mark(folder, params)
    log(f"  done in {time.perf_counter() - t0:.1f} s")
    return folder


def dicom_files(folder: str | Path) -> list[str]:
    """The ``.dcm`` files directly in ``folder``, sorted by name."""
    with os.scandir(folder) as entries:
        return sorted(e.path for e in entries if e.name.endswith(".dcm") and e.is_file())


def folder_bytes(folder: str | Path) -> int:
    """Total size of the ``.dcm`` files in ``folder``."""
    return sum(os.path.getsize(p) for p in dicom_files(folder))


# -- page cache --------------------------------------------------------------------------------
def drop_page_cache() -> bool:
    """Flush dirty pages and drop the page cache; False when not permitted (needs root)."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        return False
    return True


def can_drop_page_cache() -> bool:
    """True when :func:`drop_page_cache` works here (root on Linux)."""
    return hasattr(os, "geteuid") and os.geteuid() == 0 and drop_page_cache()


# -- timing ------------------------------------------------------------------------------------
@dataclass
class Timing:
    """Wall-clock times (s) of repeated runs of one callable."""

    times: list[float]

    @property
    def best(self) -> float:
        return min(self.times)

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def measure(
    fns: dict[str, Callable[[], Any]],
    repeat: int,
    *,
    setup: Callable[[], Any] | None = None,
    warmup: bool = True,
) -> dict[str, Timing]:
    """Time each callable ``repeat`` times, interleaved (a, b, a, b, ...) to share any drift.

    ``setup`` (e.g. :func:`drop_page_cache`) runs untimed before every timed run; an untimed
    warm-up run of each callable first pays for lazy imports and, without ``setup``, warms the
    page cache.
    """
    if warmup:
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            gc.collect()
            if setup is not None:
                setup()
            t0 = time.perf_counter()
            result = fn()
            times[name].append(time.perf_counter() - t0)
            del result
    return {name: Timing(t) for name, t in times.items()}


@dataclass
class StreamTiming:
    """One pass through ``stream_series``: times from the call, and what was yielded."""

    first: float
    full: float
    first_index: int
    yielded: int
    slices: int
    each_once: bool


def stream_timing(folder: str | Path) -> StreamTiming:
    """Time ``stream_series(folder)`` from the call to its first yielded slice and to the end."""
    from workstation.dicom import stream_series

    t0 = time.perf_counter()
    with stream_series(folder) as stream:
        it = iter(stream)
        indices = [next(it)]
        first = time.perf_counter() - t0
        indices.extend(it)
        full = time.perf_counter() - t0
        slices = int(stream.volume.array.shape[0])
    each_once = sorted(indices) == list(range(slices))
    return StreamTiming(first, full, int(indices[0]), len(indices), slices, each_once)


# -- peak memory -------------------------------------------------------------------------------
def _proc_status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset this process's peak RSS (VmHWM) to its current RSS; Linux ≥ 4.0 only."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5\n")
    except OSError:
        return False
    return True


def _current_rss() -> int:
    kib = _proc_status_kib("VmRSS")
    if kib is not None:
        return kib * 1024
    import psutil

    return int(psutil.Process().memory_info().rss)


def _maxrss() -> int:
    kib = _proc_status_kib("VmHWM")
    if kib is not None:
        return kib * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def _nbytes(result: Any) -> int | None:
    array = getattr(result, "array", result)
    if isinstance(array, np.ndarray):
        return int(array.nbytes)
    try:  # a SimpleITK image
        return int(result.GetNumberOfPixels() * result.GetSizeOfPixelComponent())
    except AttributeError:
        return None


def _memory_child() -> None:
    """Entry point of the measuring subprocess (see :func:`peak_memory`)."""
    spec = json.loads(sys.argv[1])
    for name in spec["preload"]:
        importlib.import_module(name)
    module, _, attr = spec["target"].partition(":")
    fn = importlib.import_module(module)
    for part in attr.split("."):
        fn = getattr(fn, part)
    gc.collect()
    baseline = _current_rss()
    exact = _reset_peak_rss()
    before = _maxrss()
    result = fn(*spec["args"])
    peak = _maxrss()
    out = {
        "baseline_rss": baseline,
        "peak_rss": peak,
        "increase": peak - baseline,
        "exact": exact or peak > before,
        "result_nbytes": _nbytes(result),
    }
    print(json.dumps(out))


@dataclass
class Memory:
    """Peak RSS of one call in a fresh process, relative to the RSS just before the call."""

    baseline_rss: int
    peak_rss: int
    increase: int
    result_nbytes: int | None
    exact: bool

    @property
    def ratio(self) -> float | None:
        """Peak increase over the size of the returned array (``None`` if there is none)."""
        return self.increase / self.result_nbytes if self.result_nbytes else None


def peak_memory(
    target: str, *args: Any, preload: Iterable[str] = (), timeout: float = 600
) -> Memory:
    """Run ``target(*args)`` (``"module:function"``, JSON-able args) in a fresh subprocess.

    The child imports ``preload`` and the target's module, records its RSS, resets its peak
    RSS (``/proc/self/clear_refs``; where that is impossible the peak since start-up is used, an
    upper bound), calls the target while keeping the result alive, and reports the peak. The
    increase therefore includes the returned array itself plus every transient copy.
    """
    spec = {"target": target, "args": list(args), "preload": list(preload)}
    code = (
        "import sys; "
        f"sys.path[:0] = [{str(BENCH_DIR)!r}, {str(REPO_ROOT)!r}]; "
        "import _common; _common._memory_child()"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"memory child for {target} failed:\n{proc.stderr[-4000:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return Memory(
        baseline_rss=data["baseline_rss"],
        peak_rss=data["peak_rss"],
        increase=data["increase"],
        result_nbytes=data["result_nbytes"],
        exact=data["exact"],
    )


# -- reference loaders (importable by the memory child) ----------------------------------------
def sitk_series_names(folder: str) -> list[str]:
    """File names of the (first) series in ``folder`` as SimpleITK's GDCM discovery sorts them."""
    import SimpleITK as sitk

    return list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder)))


def sitk_read_files(names: Sequence[str]) -> Any:
    """``ImageSeriesReader.Execute`` on given file names."""
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(list(names))
    return reader.Execute()


def sitk_load_series(folder: str) -> Any:
    """Discover the series with GDCM and read it: what a SimpleITK viewer does."""
    return sitk_read_files(sitk_series_names(folder))


# -- output ------------------------------------------------------------------------------------
def log(message: str) -> None:
    """Progress text, on stderr so stdout stays table + JSON."""
    print(message, file=sys.stderr, flush=True)


def ms(seconds: float | None) -> str:
    """Seconds as milliseconds text."""
    return "-" if seconds is None else f"{seconds * 1e3:,.1f}"


def mib(nbytes: float | None) -> str:
    """Bytes as MiB text."""
    return "-" if nbytes is None else f"{nbytes / 2**20:,.1f}"


def goal_text(met: bool | None) -> str:
    """``ok`` / ``MISSED`` / ``-`` for a goal column."""
    return "-" if met is None else ("ok" if met else "MISSED")


def print_table(title: str, headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Print an aligned text table; the first column is left-aligned, the others right."""
    body = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        parts = [c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(cells)]
        return "  ".join(parts).rstrip()

    print(f"\n{title}")
    print(line(headers))
    print(line(["-" * w for w in widths]))
    for row in body:
        print(line(row))
    print(flush=True)


def environment() -> dict[str, Any]:
    """Versions and machine facts recorded with each result."""
    import platform

    import pydicom
    import SimpleITK as sitk

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pydicom": pydicom.__version__,
        "simpleitk": sitk.Version.VersionString(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
    }


def emit(result: dict[str, Any]) -> None:
    """Print ``result`` as one JSON object on the last line of stdout."""
    sys.stdout.flush()
    print(json.dumps(result, sort_keys=False, default=float), flush=True)

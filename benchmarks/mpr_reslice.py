"""MPR reslicing: ``reslice`` of axial/coronal/sagittal planes vs SimpleITK ``Resample``.

On a 300 × 512² int16 CT (the benchmarks' synthetic torso phantom, in HU; ``--quick``: 60 × 256²),
at random crosshair points, the mean time of one call:

- ``ours``: :func:`workstation.render.reslice` on the axis-aligned volume (identity direction):
  the zero-copy path. Goal: < 16 ms (one frame at 60 Hz).
- ``reference``: ``SimpleITK.Resample`` (linear, int16 output) of the same volume onto the same
  output grid (origin, spacing, direction taken from our slice's geometry); the SimpleITK image
  is built once, outside the timing.
- ``oblique``: the same array with a rotated direction (20°, 10°, 5°), so every plane takes the
  sampled path (scipy trilinear, single-threaded), against ``Resample`` of the same grid
  (multithreaded; a one-thread run is reported too). Reported, no goal.
- ``window``: :func:`apply_window` of a 512² int16 slice (lookup table) against the plain numpy
  float formula ``clip((x - low) * 255 / (high - low), 0, 255)`` cast to uint8. Reported.

Along the way each plane is checked against ``Resample`` with float32 output: equal within
rounding (0.5) where both are inside the volume (``same_as_reference``).
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

import _common as c
import numpy as np

NAME = "mpr_reslice"
GOAL_S = 0.016
FILL = -1024


def make_volumes(shape: tuple[int, int, int]) -> tuple[Any, Any]:
    """The axis-aligned CT and the same voxels with an oblique direction."""
    from scipy.spatial.transform import Rotation

    from workstation.core.volume import Volume

    array = c.synthetic_ct(shape)
    array -= 1024  # stored values -> HU (int16)
    meta = {"modality": "CT", "window": (40.0, 400.0)}
    geometry = {"spacing": (0.7, 0.7, 1.0), "origin": (-180.0, -180.0, -150.0)}
    aligned = Volume(array, metadata=meta, **geometry)  # type: ignore[arg-type]
    tilt = Rotation.from_euler("xyz", [20.0, 10.0, 5.0], degrees=True).as_matrix()
    oblique = Volume(array, direction=tilt, metadata=meta, **geometry)  # type: ignore[arg-type]
    return aligned, oblique


def reference_grid(s: Any, pixel_type: int) -> Any:
    """An empty SimpleITK image with the output grid of slice ``s``."""
    import SimpleITK as sitk

    rows, cols = s.shape
    col, row = s.col_vector / s.col_spacing, s.row_vector / s.row_spacing
    image = sitk.Image(cols, rows, 1, pixel_type)
    image.SetOrigin(tuple(float(v) for v in s.origin))
    image.SetSpacing((s.col_spacing, s.row_spacing, 1.0))
    image.SetDirection(
        tuple(float(v) for v in np.column_stack([col, row, np.cross(col, row)]).ravel())
    )
    return image


def sitk_resample(source: Any, grid: Any, pixel_type: int) -> Any:
    import SimpleITK as sitk

    return sitk.Resample(source, grid, sitk.Transform(), sitk.sitkLinear, float(FILL), pixel_type)


def agrees(s: Any, source: Any) -> tuple[bool, float]:
    """Our slice vs float32 ``Resample`` of its grid: within 0.5 inside, same outside."""
    import SimpleITK as sitk

    grid = reference_grid(s, sitk.sitkFloat32)
    reference = sitk.GetArrayFromImage(sitk_resample(source, grid, sitk.sitkFloat32))[0]
    ours = np.asarray(s.image, dtype=np.float64)
    inside = (reference != FILL) & (ours != FILL)
    diff = float(np.abs(ours - reference)[inside].max()) if inside.any() else 0.0
    mask_mismatch = float(np.mean((reference == FILL) != (ours == FILL)))
    return diff <= 0.5 + 1e-3 and mask_mismatch < 1e-3, diff


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def time_planes(volume: Any, points: np.ndarray, repeat: int) -> dict[str, dict[str, list[float]]]:
    """Per plane: our and SimpleITK's times over ``repeat`` × ``points``, interleaved."""
    import SimpleITK as sitk

    from workstation.render import ViewPlane, reslice

    source = volume.to_sitk()
    times: dict[str, dict[str, list[float]]] = {}
    for plane in ViewPlane:
        grids = [reference_grid(reslice(volume, plane, p), sitk.sitkInt16) for p in points]
        reslice(volume, plane, points[0])  # warm-up: lazy imports, volume minimum
        sitk_resample(source, grids[0], sitk.sitkInt16)
        ours: list[float] = []
        ref: list[float] = []
        for _ in range(repeat):
            for p, grid in zip(points, grids, strict=True):
                gc.collect()
                ours.append(timed(lambda p=p, q=plane: reslice(volume, q, p)))
                ref.append(timed(lambda g=grid: sitk_resample(source, g, sitk.sitkInt16)))
        times[plane.value] = {"ours": ours, "reference": ref}
    return times


def check_planes(volume: Any, points: np.ndarray) -> tuple[bool, float]:
    from workstation.render import ViewPlane, reslice

    source = volume.to_sitk()
    results = [agrees(reslice(volume, plane, p), source) for plane in ViewPlane for p in points]
    return all(ok for ok, _ in results), max(diff for _, diff in results)


def mean(values: list[float]) -> float:
    return statistics.fmean(values)


def main() -> None:
    args = c.parse_args(__doc__.splitlines()[0], repeat=5, quick_repeat=2)
    import SimpleITK as sitk

    from workstation.render import Window, apply_window

    shape = (60, 256, 256) if args.quick else (300, 512, 512)
    n_points = 5 if args.quick else 12
    c.log(f"{NAME}: generating a {'x'.join(map(str, shape))} int16 CT in memory ...")
    aligned, oblique = make_volumes(shape)
    rng = np.random.default_rng(0)
    fractions = rng.uniform(0.1, 0.9, size=(n_points, 3))
    points = aligned.index_to_lps(fractions * (np.asarray(aligned.size) - 1))

    c.log(f"{NAME}: axis-aligned planes, {args.repeat} x {n_points} points ...")
    fast = time_planes(aligned, points, args.repeat)
    c.log(f"{NAME}: oblique volume ...")
    slow = time_planes(oblique, points, args.repeat)
    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    try:
        slow_1 = time_planes(oblique, points[:3], 1)
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
    c.log(f"{NAME}: checking against SimpleITK ...")
    aligned_ok, aligned_diff = check_planes(aligned, points[:3])
    oblique_ok, oblique_diff = check_planes(oblique, points[:3])

    # Windowing: a full-size axial slice (512² in the full run).
    window = Window(40, 400)
    low, high = window.bounds
    k = shape[0] // 2
    axial = aligned.array[k]
    coronal = aligned.array[::-1, shape[1] // 2, :]

    def numpy_window(x: np.ndarray) -> np.ndarray:
        y = (x.astype(np.float32) - np.float32(low)) * np.float32(255.0 / (high - low))
        return np.clip(y, 0, 255).astype(np.uint8)

    window_times = c.measure(
        {
            "ours": lambda: apply_window(axial, window),
            "numpy": lambda: numpy_window(axial),
            "ours_coronal": lambda: apply_window(coronal, window),
            "numpy_coronal": lambda: numpy_window(coronal),
        },
        max(args.repeat * 20, 20),
    )
    window_same = int(np.max(np.abs(apply_window(axial, window).astype(int) - numpy_window(axial))))

    def plane_rows(times: dict[str, dict[str, list[float]]]) -> list[list[str]]:
        rows = []
        for plane, t in times.items():
            rows.append(
                [
                    plane,
                    c.ms(mean(t["ours"])),
                    c.ms(statistics.median(t["ours"])),
                    c.ms(mean(t["reference"])),
                    f"{mean(t['ours']) / mean(t['reference']):.3f}",
                ]
            )
        return rows

    headers = ["plane", "ours mean ms", "ours median ms", "SimpleITK mean ms", "ours / ref"]
    print(f"{NAME}: {'x'.join(map(str, shape))} int16, {n_points} random points x {args.repeat}")
    c.print_table("Axis-aligned volume (zero-copy path)", headers, plane_rows(fast))
    c.print_table(
        f"Oblique volume (sampled path; SimpleITK with {threads} threads)",
        headers,
        plane_rows(slow),
    )
    c.print_table("Oblique, SimpleITK with 1 thread (3 points)", headers, plane_rows(slow_1))
    c.print_table(
        f"apply_window of a {axial.shape[0]}x{axial.shape[1]} int16 slice (best of N)",
        ["", "ours ms", "numpy float ms", "ours / numpy"],
        [
            [
                "axial (contiguous)",
                c.ms(window_times["ours"].best),
                c.ms(window_times["numpy"].best),
                f"{window_times['ours'].best / window_times['numpy'].best:.2f}",
            ],
            [
                "coronal (strided view)",
                c.ms(window_times["ours_coronal"].best),
                c.ms(window_times["numpy_coronal"].best),
                f"{window_times['ours_coronal'].best / window_times['numpy_coronal'].best:.2f}",
            ],
        ],
    )
    print(f"same as SimpleITK (within 0.5): aligned {aligned_ok} (max {aligned_diff:.3f}),"
          f" oblique {oblique_ok} (max {oblique_diff:.3f})")  # fmt: skip

    all_ours = [v for t in fast.values() for v in t["ours"]]
    all_ref = [v for t in fast.values() for v in t["reference"]]
    obl_ours = [v for t in slow.values() for v in t["ours"]]
    obl_ref = [v for t in slow.values() for v in t["reference"]]
    obl_ref_1 = [v for t in slow_1.values() for v in t["reference"]]
    obl_ours_1 = [v for t in slow_1.values() for v in t["ours"]]
    ours_mean, ref_mean = mean(all_ours), mean(all_ref)
    c.emit(
        {
            "benchmark": NAME,
            "ours": ours_mean,
            "reference": ref_mean,
            "reference_name": "SimpleITK.Resample (linear, int16) onto the same plane grid",
            "ratio": ours_mean / ref_mean,
            "statistic": "mean",
            "ours_max": max(all_ours),
            "per_plane_ours": {p: mean(t["ours"]) for p, t in fast.items()},
            "per_plane_reference": {p: mean(t["reference"]) for p, t in fast.items()},
            "oblique_ours": mean(obl_ours),
            "oblique_reference": mean(obl_ref),
            "oblique_ratio": mean(obl_ours) / mean(obl_ref),
            "oblique_per_plane_ours": {p: mean(t["ours"]) for p, t in slow.items()},
            "oblique_reference_1thread": mean(obl_ref_1),
            "oblique_ratio_1thread": mean(obl_ours_1) / mean(obl_ref_1),
            "sitk_threads": threads,
            "window_ours": window_times["ours"].best,
            "window_reference": window_times["numpy"].best,
            "window_reference_name": "numpy float32 (x - low) * scale, clip, astype(uint8)",
            "window_ratio": window_times["ours"].best / window_times["numpy"].best,
            "window_strided_ours": window_times["ours_coronal"].best,
            "window_strided_reference": window_times["numpy_coronal"].best,
            "window_max_level_difference": window_same,
            "same_as_reference": aligned_ok and oblique_ok,
            "max_abs_diff_aligned": aligned_diff,
            "max_abs_diff_oblique": oblique_diff,
            "goal": f"axis-aligned mean < {GOAL_S * 1e3:.0f} ms",
            "goal_met": ours_mean < GOAL_S and aligned_ok and oblique_ok,
            "shape": list(shape),
            "points": n_points,
            "quick": args.quick,
            "repeat": args.repeat,
            "environment": c.environment(),
        }
    )


if __name__ == "__main__":
    main()

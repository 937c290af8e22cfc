"""Full load of a 300-slice CT: ``load_series(folder)`` vs SimpleITK's ImageSeriesReader.

Warm page cache. The JSON reference is SimpleITK with GDCM file discovery plus ``Execute``
(our load discovers the files too); ``Execute`` alone on given names is printed and reported as
``vs_reader_only``. Checks that both give the same voxels and geometry. Peak memory of our load
is measured in a fresh subprocess. Goals: load ≤ 0.3× SimpleITK, peak memory ≤ 1.3× volume.
"""

from __future__ import annotations

from typing import Any

import _common as c
import numpy as np

NAME = "load_series"
GOAL_RATIO = 0.3
GOAL_MEMORY = 1.3
GEOMETRY_MM = 1e-3
DIRECTION_TOL = 1e-4


def check_same(volume: Any, image: Any) -> list[str]:
    """Differences between our volume and SimpleITK's image (empty when equal)."""
    import SimpleITK as sitk

    problems = []
    ref = sitk.GetArrayFromImage(image)
    ours = volume.array
    if ours.shape != ref.shape:
        return [f"shape {ours.shape} != SimpleITK {ref.shape}"]
    common = np.promote_types(ours.dtype, ref.dtype)
    if not np.array_equal(ours.astype(common, copy=False), ref.astype(common, copy=False)):
        diff = np.abs(ours.astype(np.float64) - ref.astype(np.float64))
        problems.append(f"voxels differ: {np.count_nonzero(diff)} voxels, max |diff| {diff.max()}")
    for label, a, b, tol in (
        ("spacing", volume.spacing, image.GetSpacing(), GEOMETRY_MM),
        ("origin", volume.origin, image.GetOrigin(), GEOMETRY_MM),
        ("direction", volume.direction, np.reshape(image.GetDirection(), (3, 3)), DIRECTION_TOL),
    ):
        err = float(np.max(np.abs(np.asarray(a, float) - np.asarray(b, float))))
        if err > tol:
            problems.append(f"{label} differs by {err:.3g} (> {tol:g}): {a} vs {b}")
    return problems


def main() -> None:
    args = c.parse_args(__doc__.splitlines()[0], repeat=5, quick_repeat=3)
    shape, folder = c.standard_ct(quick=args.quick)

    from workstation.dicom import load_series

    n_files = len(c.dicom_files(folder))
    names = c.sitk_series_names(folder)
    c.log(f"{NAME}: timing {n_files} files, {args.repeat} runs each (warm cache) ...")
    t = c.measure(
        {
            "ours": lambda: load_series(folder),
            "sitk": lambda: c.sitk_load_series(folder),
            "sitk_reader": lambda: c.sitk_read_files(names),
        },
        args.repeat,
    )
    c.stream_timing(folder)  # warm-up
    first_s = min(c.stream_timing(folder).first for _ in range(args.repeat))

    volume = load_series(folder)
    problems = check_same(volume, c.sitk_load_series(folder))
    nbytes = int(volume.array.nbytes)
    dtype = str(volume.array.dtype)
    del volume

    c.log(f"{NAME}: peak memory in subprocesses ...")
    preload = ["numpy", "pydicom", "SimpleITK", "workstation.dicom"]
    mem = c.peak_memory("workstation.dicom:load_series", folder, preload=preload)
    mem_ref = c.peak_memory("_common:sitk_load_series", folder, preload=preload)

    ours, ref, reader = t["ours"], t["sitk"], t["sitk_reader"]
    ratio = ours.best / ref.best
    vs_reader = ours.best / reader.best
    mem_ratio = mem.increase / nbytes
    print(
        f"{NAME}: {n_files} files, {c.mib(c.folder_bytes(folder))} MiB on disk, "
        f"volume {shape} {dtype} = {c.mib(nbytes)} MiB; best / median of {args.repeat}, warm cache"
    )
    c.print_table(
        "Time",
        ["", "best ms", "median ms", "ours / this", "goal", "status"],
        [
            ["ours: load_series(folder)", c.ms(ours.best), c.ms(ours.median), "1.00", "", ""],
            [
                "SimpleITK: names + Execute (reference)",
                c.ms(ref.best),
                c.ms(ref.median),
                f"{ratio:.2f}",
                f"<= {GOAL_RATIO}",
                c.goal_text(ratio <= GOAL_RATIO),
            ],
            [
                "SimpleITK: Execute, names given",
                c.ms(reader.best),
                c.ms(reader.median),
                f"{vs_reader:.2f}",
                "",
                "",
            ],
            ["ours: stream_series first slice", c.ms(first_s), "", "", "< 100 ms", ""],
        ],
    )
    sitk_ratio = mem_ref.increase / nbytes
    c.print_table(
        "Peak RSS increase during the load (fresh process)",
        ["", "MiB", "/ volume bytes", "goal", "status"],
        [
            [
                "ours",
                c.mib(mem.increase),
                f"{mem_ratio:.2f}",
                f"<= {GOAL_MEMORY}",
                c.goal_text(mem_ratio <= GOAL_MEMORY),
            ],
            ["SimpleITK names + Execute", c.mib(mem_ref.increase), f"{sitk_ratio:.2f}", "", ""],
        ],
    )
    print("same voxels and geometry as SimpleITK:", "yes" if not problems else "NO")
    for p in problems:
        print("  " + p)
    c.emit(
        {
            "benchmark": NAME,
            "ours": ours.best,
            "reference": ref.best,
            "reference_name": "SimpleITK ImageSeriesReader (GetGDCMSeriesFileNames + Execute)",
            "ratio": ratio,
            "vs_reader_only": vs_reader,
            "reader_only": reader.best,
            "peak_memory_ratio": mem_ratio,
            "peak_memory_bytes": mem.increase,
            "peak_memory_exact": mem.exact,
            "reference_peak_memory_ratio": sitk_ratio,
            "volume_bytes": nbytes,
            "first_slice_s": first_s,
            "ours_median": ours.median,
            "reference_median": ref.median,
            "statistic": "best",
            "cache": "warm",
            "files": n_files,
            "shape": list(shape),
            "same_as_reference": not problems,
            "goal": f"ratio <= {GOAL_RATIO} and peak_memory_ratio <= {GOAL_MEMORY}",
            "goal_met": ratio <= GOAL_RATIO and mem_ratio <= GOAL_MEMORY and not problems,
            "quick": args.quick,
            "repeat": args.repeat,
            "environment": c.environment(),
        }
    )


if __name__ == "__main__":
    main()

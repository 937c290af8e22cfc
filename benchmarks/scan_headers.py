"""Header scan of 3000 files: ``scan(folder)`` vs pydicom ``dcmread(stop_before_pixels=True)``.

Warm page cache. 10 series × 300 slices of 64×64 in one flat folder keep the data small while
the header count is 3000. The reference reads every file's header with pydicom in a loop
(listing included); SimpleITK's GDCM series discovery is printed for context. Goal: ≥ 5000
files/s.
"""

from __future__ import annotations

from typing import Any

import _common as c

NAME = "scan_headers"
GOAL_FILES_PER_S = 5000


def pydicom_headers(folder: str) -> list[Any]:
    """List the folder and read every header with pydicom (no pixel data)."""
    from pydicom import dcmread

    return [dcmread(path, stop_before_pixels=True) for path in c.dicom_files(folder)]


def sitk_ids(folder: str) -> list[str]:
    """GDCM series discovery: the series UIDs in the folder (one directory scan)."""
    import SimpleITK as sitk

    return list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder))


def sitk_discover(folder: str) -> dict[str, list[str]]:
    """GDCM discovery as a SimpleITK viewer does it: the UIDs, then each series' sorted files."""
    import SimpleITK as sitk

    get_names = sitk.ImageSeriesReader.GetGDCMSeriesFileNames
    return {uid: list(get_names(folder, uid)) for uid in sitk_ids(folder)}


def main() -> None:
    args = c.parse_args(__doc__.splitlines()[0], repeat=5, quick_repeat=3)
    n_series, n_slices, size = (4, 100, 32) if args.quick else (10, 300, 64)
    folder = str(
        c.header_study(f"headers_{n_series}x{n_slices}x{size}x{size}", n_series, n_slices, size)
    )

    from workstation.dicom import scan

    n_files = len(c.dicom_files(folder))
    c.log(f"{NAME}: {n_files} files, {args.repeat} runs each (warm cache) ...")
    t = c.measure(
        {"ours": lambda: scan(folder), "pydicom": lambda: pydicom_headers(folder)}, args.repeat
    )
    sitk_repeat = 1 if args.quick else min(args.repeat, 2)
    c.log(f"{NAME}: SimpleITK discovery (context), {sitk_repeat} run(s) ...")
    ts = c.measure(
        {"ids": lambda: sitk_ids(folder), "all": lambda: sitk_discover(folder)},
        sitk_repeat,
        warmup=False,
    )

    catalog = scan(folder)
    series = list(catalog.series)
    problems = list(getattr(catalog, "problems", []) or [])
    ours, ref = t["ours"], t["pydicom"]
    ratio = ours.best / ref.best
    rate = n_files / ours.best

    def row(label: str, timing: c.Timing, goal: str = "", met: str = "") -> list[str]:
        return [
            label,
            c.ms(timing.best),
            c.ms(timing.median),
            f"{n_files / timing.best:,.0f}",
            f"{ours.best / timing.best:.2f}",
            goal,
            met,
        ]

    print(
        f"{NAME}: {n_files} files ({n_series} series x {n_slices} slices of {size}x{size}, "
        f"{c.mib(c.folder_bytes(folder))} MiB); warm cache; best / median of {args.repeat} "
        f"(SimpleITK: {sitk_repeat})"
    )
    c.print_table(
        "Time",
        ["", "best ms", "median ms", "files/s", "ours / this", "goal", "status"],
        [
            row(
                "ours: scan(folder)",
                ours,
                f">= {GOAL_FILES_PER_S} files/s",
                c.goal_text(rate >= GOAL_FILES_PER_S),
            ),
            row("pydicom dcmread(stop_before_pixels) loop (reference)", ref),
            row("SimpleITK GetGDCMSeriesIDs (context)", ts["ids"]),
            row("SimpleITK IDs + GetGDCMSeriesFileNames each (context)", ts["all"]),
        ],
    )
    print(f"series found: {len(series)} (expected {n_series}); problems: {len(problems)}")
    for problem in problems[:5]:
        print(f"  {problem}")
    c.emit(
        {
            "benchmark": NAME,
            "ours": ours.best,
            "reference": ref.best,
            "reference_name": "pydicom dcmread(stop_before_pixels=True) over every file",
            "ratio": ratio,
            "files": n_files,
            "files_per_s": rate,
            "reference_files_per_s": n_files / ref.best,
            "sitk_series_ids_s": ts["ids"].best,
            "sitk_discovery_s": ts["all"].best,
            "series_found": len(series),
            "series_expected": n_series,
            "problems": len(problems),
            "ours_median": ours.median,
            "reference_median": ref.median,
            "statistic": "best",
            "cache": "warm",
            "goal": f"files_per_s >= {GOAL_FILES_PER_S}",
            "goal_met": rate >= GOAL_FILES_PER_S and len(series) == n_series,
            "quick": args.quick,
            "repeat": args.repeat,
            "environment": c.environment(),
        }
    )


if __name__ == "__main__":
    main()

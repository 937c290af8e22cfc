"""Full load vs reading the same files' raw bytes, cold and warm page cache.

The reference is the faster of two raw reads of every ``.dcm`` file in the folder (listing
included): ``open(f, 'rb').read()`` per file, or ``readinto`` a buffer preallocated once outside
the timing. Cold runs drop the page cache before every run (root only; otherwise cold is
reported as not measured). Goal: load ≤ 1.3× the raw read, cold.
"""

from __future__ import annotations

from typing import Any

import _common as c

NAME = "load_vs_raw"
GOAL_RATIO = 1.3


def read_all(folder: str) -> int:
    """``open(f, 'rb').read()`` over every file; returns the byte count."""
    total = 0
    for path in c.dicom_files(folder):
        with open(path, "rb") as f:
            total += len(f.read())
    return total


def make_readinto(folder: str) -> Any:
    """A callable reading every file into one buffer preallocated here (not timed)."""
    buffer = bytearray(c.folder_bytes(folder) + 1)
    view = memoryview(buffer)

    def readinto_all() -> int:
        offset = 0
        for path in c.dicom_files(folder):
            with open(path, "rb", buffering=0) as f:
                while n := f.readinto(view[offset:]):
                    offset += n
        return offset

    return readinto_all


def main() -> None:
    args = c.parse_args(__doc__.splitlines()[0], repeat=5, quick_repeat=3)
    shape, folder = c.standard_ct(quick=args.quick)

    from workstation.dicom import load_series

    n_files = len(c.dicom_files(folder))
    size = c.folder_bytes(folder)
    readinto_all = make_readinto(folder)
    if readinto_all() != size or read_all(folder) != size:
        raise RuntimeError("raw read returned a different byte count than the files' sizes")
    fns = {
        "ours": lambda: load_series(folder),
        "read": lambda: read_all(folder),
        "readinto": readinto_all,
    }
    cold_ok = c.can_drop_page_cache()
    cold: dict[str, c.Timing] = {}
    if cold_ok:
        c.log(f"{NAME}: cold cache, {args.repeat} runs each ...")
        # Warm-up (lazy imports) happens inside measure; every timed run starts cold.
        cold = c.measure(fns, args.repeat, setup=c.drop_page_cache)
    else:
        c.log(f"{NAME}: cold: not measured (not root)")
    c.log(f"{NAME}: warm cache, {args.repeat} runs each ...")
    warm = c.measure(fns, args.repeat)

    def reference(t: dict[str, c.Timing]) -> tuple[str, c.Timing]:
        name = min(("read", "readinto"), key=lambda k: t[k].best)
        return name, t[name]

    warm_ref_name, warm_ref = reference(warm)
    warm_ratio = warm["ours"].best / warm_ref.best
    rows = []
    for label, t in (("cold", cold), ("warm", warm)):
        if not t:
            rows.append([f"{label}: not measured (not root)", "", "", "", "", "", ""])
            continue
        ref_name, ref = reference(t)
        ratio = t["ours"].best / ref.best
        goal = f"<= {GOAL_RATIO}" if label == "cold" else ""
        met = c.goal_text(ratio <= GOAL_RATIO) if label == "cold" else ""
        for key, name in (
            ("ours", "ours: load_series(folder)"),
            ("read", "raw: open().read()"),
            ("readinto", "raw: readinto(preallocated)"),
        ):
            is_ref = key == ref_name
            rows.append(
                [
                    f"{label}: {name}{' (reference)' if is_ref else ''}",
                    c.ms(t[key].best),
                    c.ms(t[key].median),
                    f"{size / t[key].best / 2**20:,.0f}",
                    f"{ratio:.2f}" if is_ref else "",
                    goal if is_ref else "",
                    met if is_ref else "",
                ]
            )
    print(
        f"{NAME}: {n_files} files, {c.mib(size)} MiB on disk; best / median of {args.repeat}; "
        f"cold = page cache dropped before each run"
    )
    c.print_table(
        "Time",
        ["", "best ms", "median ms", "MiB/s", "ours / ref", "goal", "status"],
        rows,
    )
    result: dict[str, Any] = {"benchmark": NAME}
    if cold:
        ref_name, ref = reference(cold)
        ratio = cold["ours"].best / ref.best
        result.update(
            ours=cold["ours"].best,
            reference=ref.best,
            reference_name=f"raw read of the files' bytes, cold cache ({_label(ref_name)})",
            ratio=ratio,
            cold="measured",
            goal_met=ratio <= GOAL_RATIO,
        )
    else:
        result.update(
            ours=None,
            reference=None,
            reference_name="raw read of the files' bytes, cold cache",
            ratio=None,
            cold="not measured (not root)",
            goal_met=None,
        )
    result.update(
        warm_ours=warm["ours"].best,
        warm_reference=warm_ref.best,
        warm_reference_name=_label(warm_ref_name),
        warm_ratio=warm_ratio,
        ours_median=cold["ours"].median if cold else None,
        reference_median=reference(cold)[1].median if cold else None,
        statistic="best",
        goal=f"ratio (cold) <= {GOAL_RATIO}",
        files=n_files,
        bytes=size,
        shape=list(shape),
        quick=args.quick,
        repeat=args.repeat,
        environment=c.environment(),
    )
    c.emit(result)


def _label(key: str) -> str:
    return {"read": "open(f, 'rb').read()", "readinto": "readinto a preallocated buffer"}[key]


if __name__ == "__main__":
    main()

"""``workstation plugins run progression/progression --input BASE --input FU1 ... --out DIR``."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mw_progression.analysis import DISCLAIMER, analyse, years_between
from workstation.core.tasks import CancelToken, ProgressFn, check_cancel, throttled
from workstation.core.volume import Volume

__all__ = ["ProgressionPipeline", "load_timepoint", "parse_parameters"]


def parse_parameters(parameters: Mapping[str, str]) -> dict[str, Any]:
    """Check and convert ``bspline``, ``effect``, ``horizon`` and ``times``."""
    unknown = set(parameters) - {"bspline", "effect", "horizon", "times"}
    if unknown:
        raise ValueError(f"unknown parameter(s): {', '.join(sorted(unknown))}")
    bspline = parameters.get("bspline", "0").strip().lower()
    if bspline not in {"0", "1", "false", "true", "no", "yes"}:
        raise ValueError(f"bspline must be 0 or 1, got {bspline!r}")
    effect = float(parameters.get("effect", "0.5"))
    horizon = float(parameters.get("horizon", "5"))
    if not 0.0 <= effect <= 1.0:
        raise ValueError(f"effect must be within 0..1, got {effect}")
    if not 0.0 <= horizon <= 50.0:
        raise ValueError(f"horizon must be within 0..50 years, got {horizon}")
    times = None
    if parameters.get("times"):
        times = [float(t) for t in parameters["times"].split(",")]
    return {
        "bspline": bspline in {"1", "true", "yes"},
        "effect": effect,
        "horizon": horizon,
        "times": times,
    }


def load_timepoint(
    path: Path, *, progress: ProgressFn | None = None, cancel: CancelToken | None = None
) -> tuple[Volume, str]:
    """The one series under ``path`` and its StudyDate (``""`` when unknown)."""
    from workstation.dicom import load_series, scan

    catalog = scan(path)
    series = catalog.find(None)
    date = next((st.date for p in catalog.patients for st in p.studies if series in st.series), "")
    return load_series(series, progress=progress, cancel=cancel), date or ""


class ProgressionPipeline:
    """Regional volume change across timepoints, its rate, and a what-if simulation."""

    title = "Disease progression and treatment simulation"
    description = (
        "Registers follow-ups to the baseline (first input), measures parenchyma, ventricles "
        "and lesion volumes, fits rates with 95 % intervals and simulates an assumed treatment "
        "effect. Parameters: bspline=0|1, effect=0..1, horizon=YEARS, times=0,1,2 (when the "
        "StudyDates are missing). Demonstration, not for clinical use."
    )

    def run(
        self,
        inputs: Sequence[Path],
        out: Path,
        parameters: Mapping[str, str],
        *,
        progress: ProgressFn | None = None,
        cancel: CancelToken | None = None,
    ) -> Mapping[str, Any]:
        """Write ``progression.json``, ``change_map.nii.gz`` and ``trend.png`` into ``out``."""
        from mw_progression.plot import trend_figure
        from workstation.dicom import export_volume

        options = parse_parameters(parameters)
        if len(inputs) < 2:
            raise ValueError("give the baseline and at least one follow-up (--input, in order)")
        report = throttled(progress)
        start = time.perf_counter()
        volumes, dates = [], []
        for n, path in enumerate(inputs):
            check_cancel(cancel)
            report(n, len(inputs) + 3, f"loading {Path(path).name}")
            volume, date = load_timepoint(Path(path), cancel=cancel)
            volumes.append(volume)
            dates.append(date)
        times = options["times"] or years_between(dates)
        if times is None:
            raise ValueError("StudyDate missing: give the times, e.g. --param times=0,1,2")
        if len(times) != len(volumes):
            raise ValueError(f"{len(times)} times for {len(volumes)} inputs")

        def inner(done: int, total: int, message: str = "") -> None:
            report(len(inputs) + (done * 2) // max(total, 1), len(inputs) + 3, message)

        analysis = analyse(
            volumes,
            times,
            bspline=options["bspline"],
            effect=options["effect"],
            horizon=options["horizon"],
            progress=inner,
            cancel=cancel,
        )
        check_cancel(cancel)
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        export_volume(analysis.change, out / "change_map.nii.gz")
        files = ["progression.json", "change_map.nii.gz", "trend.png"]
        if analysis.log_jacobian is not None:
            export_volume(analysis.log_jacobian, out / "log_jacobian.nii.gz")
            files.append("log_jacobian.nii.gz")
        trend_figure(analysis.fits, analysis.simulations).savefig(out / "trend.png", dpi=110)
        summary = analysis.to_json()
        summary.update(
            {
                "inputs": [str(p) for p in inputs],
                "study_dates": dates,
                "parameters": {k: v for k, v in options.items() if k != "times"},
                "seconds": round(time.perf_counter() - start, 2),
                "files": files,
                "disclaimer": DISCLAIMER,
            }
        )
        (out / "progression.json").write_text(json.dumps(summary, indent=2) + "\n")
        report(len(inputs) + 3, len(inputs) + 3, "done")
        return summary

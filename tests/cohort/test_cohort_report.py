"""The cohort HTML report: plots, flagged studies with thumbnails, failures, escaping."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image

from workstation.cohort.outliers import flag_outliers
from workstation.cohort.qc import thumbnail_png
from workstation.cohort.report import write_report
from workstation.core.volume import Volume

PLOTS = (
    "findings_count.png",
    "finding_volume.png",
    "volume_by_group.png",
    "qc_scatter.png",
    "seconds.png",
)
EVIL = "<script>alert('x')</script>"


def _cohort(out: Path, n: int = 30) -> None:
    """A small finished run: cohort.json, summary.csv (2 failures, 1 outlier) and thumbnails."""
    rng = np.random.default_rng(3)
    (out / "thumbs").mkdir(parents=True)
    meta = {
        "model": f"demo-lesion-seg {EVIL}",
        "explain": "gradcam",
        "source": "/data",
        "started": "2026-01-01T00:00:00Z",
        "finished": "2026-01-01T00:10:00Z",
        "counts": {"ok": n - 2, "failed": 2},
        "scheduler": "local",
        "dashboard": None,
    }
    (out / "cohort.json").write_text(json.dumps(meta), encoding="utf-8")
    columns = [
        "study_key",
        "source",
        "status",
        "error",
        "attempts",
        "seconds",
        "worker",
        "result_id",
        "model",
        "explain",
        "in_modality",
        "in_spacing_k",
        "in_p99",
        "in_snr",
        "out_n_findings",
        "out_total_volume_ml",
    ]
    with (out / "summary.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        for index in range(n):
            key = f"study-{index:02d}"
            row = {
                "study_key": key,
                "source": f"/data/{key}",
                "status": "ok",
                "error": "",
                "attempts": 1,
                "seconds": round(float(rng.uniform(1, 3)), 2),
                "worker": "w",
                "result_id": key,
                "model": "demo",
                "explain": "gradcam",
                "in_modality": "MR",
                "in_spacing_k": 1.0 if index % 2 else 3.0,
                "in_p99": round(float(rng.normal(800, 15)), 1),
                "in_snr": round(float(rng.normal(40, 3)), 1),
                "out_n_findings": index % 3,
                "out_total_volume_ml": round((index % 3) * float(rng.uniform(1, 2)), 2),
            }
            if index == 5:
                row["in_p99"] = 4000.0
            if index in (8, 9):
                row.update({k: "" for k in columns[10:]})
                row.update(status="failed", error=f"decode error {EVIL}", attempts=3)
            writer.writerow(row)
            array = np.zeros((4, 16, 16), np.float32)
            array[:, 4:12, 4:12] = index + 1
            (out / "thumbs" / f"{key}.png").write_bytes(thumbnail_png(Volume(array), 32))


def test_report_written_with_plots_thumbnails_and_escaping(tmp_path: Path) -> None:
    out = tmp_path / "run"
    _cohort(out)
    index = write_report(out)
    assert index == out / "report" / "index.html"
    text = index.read_text(encoding="utf-8")
    for name in PLOTS:
        assert f'src="{name}"' in text
        with Image.open(out / "report" / name) as image:
            assert image.format == "PNG" and image.size[0] > 100
    # the outlier, with its reason and its thumbnail copied next to the report
    assert "study-05" in text and "in_p99 z=+" in text
    assert 'src="thumbs/study-05.png"' in text and (out / "report/thumbs/study-05.png").is_file()
    # the failures, with their errors, escaped
    assert "study-08" in text and "study-09" in text and "decode error" in text
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "demo-lesion-seg" in text and "local" in text
    assert not (out / "qc_flags.json").exists()  # the report does not write the engine's file


def test_report_reads_qc_flags_json(tmp_path: Path) -> None:
    out = tmp_path / "run"
    _cohort(out)
    flags = flag_outliers(out / "summary.csv")
    flags["study-01"] = ["hand-made reason <b>"]
    (out / "qc_flags.json").write_text(json.dumps(flags), encoding="utf-8")
    text = write_report(out).read_text(encoding="utf-8")
    assert "hand-made reason &lt;b&gt;" in text and 'src="thumbs/study-01.png"' in text


def test_report_of_an_empty_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "summary.csv").write_text("study_key,status,error,seconds\n", encoding="utf-8")
    text = write_report(out).read_text(encoding="utf-8")
    assert "No cohort.json" in text and "no data" not in text  # plots are PNGs, not text
    assert all((out / "report" / name).is_file() for name in PLOTS)

"""``workstation analyze``: run a verified model on one study, explain it, save and export it.

::

    workstation analyze PATH [--series UID] --model NAME [--explain gradcam|ig|occlusion|none]
                        [--confirm-with MODEL] [--truth MASK.nii.gz] --out DIR [--json]
                        [--no-store] [--stow URL] [--device auto|cpu|cuda]

The model is verified from its signed bundle before use. The result is saved encrypted in the
result store (audited; the key store must be unlocked: ``$WORKSTATION_PASSPHRASE`` or a keyring
key store; ``--no-store`` skips it) and written to ``DIR`` (see
:mod:`workstation.workflow.analysis_outputs`: DICOM SEG, SR and parametric map, NIfTI, FHIR,
``summary.json``); ``--stow URL`` also stores the DICOM objects on a DICOMweb server (STOW-RS,
normally the PACS the study came from: they reference its study). Saving, the models used and
every export are in the audit trail (no PHI). ``--truth`` is a known lesion mask on the series'
grid (synthetic data): the explanation's pointing game is scored against it and Dice reported.

Exit codes: 0 done, 1 failed (nothing half written: files are replaced atomically, the store
commits in one transaction), 2 usage. ``--json`` prints ``summary.json`` plus ``result_id``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add the ``analyze`` command to the top-level subparsers."""
    p = commands.add_parser(
        "analyze",
        help="run a model on a study: findings, explanation, SEG/SR/FHIR (demonstration models)",
        description="Run a verified model on one series, explain its top finding, save the "
        "result encrypted and write DICOM SEG/SR/parametric map, NIfTI and FHIR into DIR.",
    )
    add = p.add_argument
    add("path", metavar="PATH", help="a folder or file of DICOM")
    add("--series", metavar="UID", help="the series to analyse (default: the only / largest)")
    add("--model", required=True, help="model name, name@version or a .mwb bundle")
    add(
        "--explain",
        default="gradcam",
        type=_method,
        metavar="METHOD",
        help="gradcam (default), ig, occlusion, none, or a plugin's explainer "
        "plugin:PLUGIN/NAME (see 'workstation plugins list')",
    )
    add("--confirm-with", metavar="MODEL", help="a classifier that confirms each candidate")
    add("--truth", metavar="MASK", help="known lesion mask (.nii/.nii.gz) on the series' grid")
    add("--out", metavar="DIR", required=True, help="folder for the output files")
    add("--device", default="auto", help="auto (CUDA when present), cuda, mps or cpu")
    add("--no-store", action="store_true", help="do not save into the encrypted result store")
    add("--stow", metavar="URL", help="also send SEG/SR/parametric map to this DICOMweb server")
    add("--json", action="store_true", help="print the summary as JSON")


def _method(text: str) -> str:
    if text in ("gradcam", "ig", "occlusion", "none") or text.startswith("plugin:"):
        return text
    raise argparse.ArgumentTypeError(
        f"{text!r}: choose gradcam, ig, occlusion, none or plugin:PLUGIN/NAME"
    )


def _largest_series(path: str) -> str:
    from workstation.dicom import scan

    catalog = scan(path)
    if not catalog.series:
        from workstation.dicom import SeriesNotFoundError

        raise SeriesNotFoundError(f"no loadable DICOM series under {path}")
    return max(catalog.series, key=lambda s: s.slice_count).uid


def _truth(path: str | None, volume: Any) -> Any:
    if path is None:
        return None
    import numpy as np

    from workstation.outputs.nifti import read_nifti

    mask = read_nifti(path)
    if mask.shape != volume.shape or not np.allclose(mask.affine, volume.affine, atol=1e-3):
        raise ValueError(f"--truth {path} is not on the series' voxel grid")
    return np.asarray(mask.array) > 0


def run(args: argparse.Namespace) -> int:
    """Run ``workstation analyze``; returns the exit code."""
    from workstation.cli_format import ProgressBar
    from workstation.dicom import load_series
    from workstation.workflow.analyze import AnalysisRequest

    if not Path(args.path).exists():
        sys.stderr.write(f"workstation analyze: error: {args.path} does not exist\n")
        return EXIT_USAGE
    series_uid = args.series or _largest_series(args.path)
    volume = load_series(args.path, series_uid, progress=ProgressBar())
    try:
        truth = _truth(args.truth, volume)
    except ValueError as e:
        sys.stderr.write(f"workstation analyze: error: {e}\n")
        return EXIT_USAGE
    request = AnalysisRequest(
        model=args.model,
        explain=None if args.explain == "none" else args.explain,
        confirm_with=args.confirm_with,
        device=args.device,
        truth=truth,
    )
    store = None
    if not args.no_store:  # unlock first: a wrong passphrase fails before minutes of work
        from workstation.workflow.analysis_store import open_default_store

        store = open_default_store(actor=f"cli:{_user()}")
    try:
        return _analyze_and_write(args, volume, series_uid, request, truth, store)
    finally:
        if store is not None:
            store.close()


def _user() -> str:
    import getpass

    return getpass.getuser()


def _analyze_and_write(
    args: argparse.Namespace, volume: Any, series_uid: str, request: Any, truth: Any, store: Any
) -> int:
    from workstation.cli_format import ProgressBar
    from workstation.workflow.analysis_outputs import source_headers, write_outputs
    from workstation.workflow.analysis_store import save_analysis
    from workstation.workflow.analyze import analyze

    routed = _routed(volume, request, store)
    if routed is None:
        analysis = analyze(volume, request, progress=ProgressBar())
    else:
        analysis = routed.analysis
    result_id = None
    notes = []
    if store is not None:
        for name in filter(None, (request.model, request.confirm_with)):
            _audit(store, "model.use", "model", name, None, {"task": "analyze"})
        from workstation.sync.state import is_enrolled

        # Enrolled workstations queue the result for the registry in the same transaction.
        result_id = save_analysis(analysis, store=store, sync=is_enrolled())
    try:
        headers = source_headers(args.path, series_uid, volume)
    except ValueError as e:
        headers = None
        notes.append(f"no DICOM SEG/SR/parametric map: {e}")
    written = write_outputs(analysis, args.out, source=headers, result_id=result_id)
    summary = json.loads(written["summary"].read_text(encoding="utf-8"))
    if store is not None and result_id is not None:
        details = {"destination": "folder", "files": ",".join(sorted(written))}
        _audit(store, "result.export", "result", result_id, None, details)
    if args.stow:
        dicom = [written[k] for k in ("seg", "sr", "parametric_map") if k in written]
        summary["stow"] = _stow(args.stow, dicom, volume.metadata.get("study_uid"))
        if store is not None and result_id is not None:
            details = {"destination": "dicomweb", "instances": len(dicom)}
            _audit(store, "result.export", "result", result_id, None, details)
    if routed is not None:
        summary["routing"] = routed.summary()
    summary["notes"] = notes + summary.get("notes", [])
    if truth is not None and analysis.labels is not None:
        summary["truth"] = _against_truth(analysis, truth)
    written["summary"].write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    if args.json:
        json.dump(summary, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(_table(summary, args.out))
    return EXIT_OK


def _routed(volume: Any, request: Any, store: Any) -> Any:
    """The analysis routed by the model lifecycle (active, canary, shadow) when it manages
    ``request.model``; ``None`` otherwise (the shipped catalogue model is used as before)."""
    from workstation.cli_format import ProgressBar
    from workstation.config import paths
    from workstation.models.lifecycle import ModelLifecycle
    from workstation.models.routing import analyze_routed, manages

    lifecycle = ModelLifecycle(paths().models, audit=store)
    if not manages(lifecycle, request.model):
        return None
    return analyze_routed(volume, request, lifecycle, progress=ProgressBar())


def _audit(
    store: Any, action: str, kind: str, object_id: str, study: str | None, details: dict
) -> None:
    store.audit.record(
        actor=store.actor,
        action=action,
        object_type=kind,
        object_id=object_id,
        study=study,
        details=details,
    )


def _stow(url: str, files: list[Path], study_uid: str | None) -> dict[str, Any]:
    """STOW-RS the DICOM outputs; what the server stored and refused."""
    from workstation.dicom.dicomweb.errors import DicomwebError
    from workstation.workflow.remote import connect, server_from_url

    if not files:
        return {"stored": 0, "failed": [], "error": "no DICOM objects to send"}
    try:
        with connect(server_from_url(url)) as client:
            result = client.store_instances(files, study_uid=study_uid)
    except DicomwebError as e:
        return {"stored": 0, "failed": [], "error": str(e)}
    return {"stored": len(result.stored), "failed": [list(f) for f in result.failed]}


def _against_truth(analysis: Any, truth: Any) -> dict[str, Any]:
    import numpy as np

    predicted = np.asarray(analysis.labels.array) > 0
    overlap = int((predicted & truth).sum())
    total = int(predicted.sum() + truth.sum())
    voxel_ml = float(np.prod(analysis.source.spacing)) / 1000.0
    return {
        "dice": round(2 * overlap / total, 4) if total else 1.0,
        "truth_volume_ml": round(float(truth.sum()) * voxel_ml, 3),
        "found_volume_ml": round(float(predicted.sum()) * voxel_ml, 3),
    }


def _table(summary: dict[str, Any], out: str) -> str:
    model = summary["model"]
    lines = [f"{model['name']} {model['version']} — {model['disclaimer']}"]
    findings = summary["findings"]
    if not findings:
        lines.append("No finding.")
    for f in findings:
        volume = "" if f["volume_ml"] is None else f"  {f['volume_ml']:7.2f} mL"
        centre = ", ".join(f"{c:.0f}" for c in f["centroid_lps_mm"])
        lines.append(f"  {f['name']:<24}{volume}  confidence {f['confidence']:.2f}  LPS ({centre})")
    if summary["rejected_candidates"]:
        lines.append(f"  ({len(summary['rejected_candidates'])} candidates rejected)")
    if summary.get("lesion_probability") is not None:
        lines.append(f"Lesion probability (study): {summary['lesion_probability']:.2f}")
    explanation = summary.get("explanation")
    if explanation and explanation.get("faithfulness"):
        f = explanation["faithfulness"]
        pointing = f.get("pointing_game")
        lines.append(
            f"Explanation {explanation['method']} ({explanation['seconds']:.2f} s): deletion AUC "
            f"{f['deletion_auc']:.3f} (random {f['deletion_auc_random']:.3f}), insertion AUC "
            f"{f['insertion_auc']:.3f} (random {f['insertion_auc_random']:.3f})"
            + ("" if pointing is None else f", pointing game {'hit' if pointing else 'miss'}")
        )
    if "routing" in summary:
        r = summary["routing"]
        line = f"Model version {r['version']} ({r['role']})"
        if r["shadow_agree"] is not None:
            line += f", shadow {'agreed' if r['shadow_agree'] else 'disagreed'}"
        if r["canary_decision"] is not None:
            line += f", canary monitor: {r['canary_decision']}"
        lines.append(line)
    if "stow" in summary:
        stow = summary["stow"]
        sent = f"STOW-RS: {stow['stored']} stored, {len(stow['failed'])} refused"
        lines.append(sent + (f" ({stow['error']})" if stow.get("error") else ""))
    if "truth" in summary:
        t = summary["truth"]
        lines.append(f"Against the truth: Dice {t['dice']:.2f}, {t['truth_volume_ml']:.2f} mL true")
    lines.extend(f"QC: {w}" for w in summary["warnings"])
    lines.extend(f"Note: {n}" for n in summary.get("notes", []))
    if summary.get("result_id"):
        lines.append(f"Saved encrypted as result {summary['result_id']}")
    lines.append(f"Files in {out}: {', '.join(sorted(summary['files'].values()))}")
    return "\n".join(lines) + "\n"

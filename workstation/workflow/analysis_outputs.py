"""Write an analysis as files: DICOM SEG / SR / parametric map, NIfTI, FHIR and a summary.

``write_outputs(analysis, out_dir, source=headers)`` writes, as far as the analysis has them:

==============================  ==========================================================
``summary.json``                findings, QC warnings, explanation + faithfulness, provenance
``findings.nii.gz``             finding labels (uint8) on the input grid
``probability.nii.gz``          the segmentation's lesion probability (float32; < 1 % → 0)
``explanation-<method>.nii.gz`` the explanation map (float32), for research tools
``findings-seg.dcm``            DICOM SEG of the findings (highdicom), referencing the source
``findings-sr.dcm``             DICOM Comprehensive 3D SR, TID 1500: volume, confidence, model
``explanation-<method>.dcm``    DICOM parametric map of the explanation
``report.fhir.json``            FHIR R4 DiagnosticReport + Observations (validated)
==============================  ==========================================================

The DICOM objects need the source slices' headers in the volume's slice order (they copy the
patient and study modules, so they belong back in the PACS the study came from). The FHIR
report is built for leaving the workstation: it names the patient only by the site's
pseudonym and the study by its remapped UID.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from workstation.core.files import write_atomic

if TYPE_CHECKING:
    import pydicom

    from workstation.workflow.analyze import Analysis

__all__ = ["source_headers", "write_outputs"]


def source_headers(path: str | Path, series_uid: str, volume: Any) -> list[pydicom.Dataset]:
    """The headers of ``series_uid``'s slices under ``path``, in ``volume``'s slice order.

    Raises ``ValueError`` when the series is not single-frame slices whose positions match the
    volume's geometry (then SEG/SR/parametric maps cannot reference them slice by slice).
    """
    import pydicom

    from workstation.dicom import scan

    catalog = scan(path)
    series = next((s for s in catalog.series if s.uid == series_uid), None)
    if series is None:
        raise ValueError("the analysed series is not in the source folder any more")
    slices = series.stack.slices
    if any(s.number_of_frames > 1 for s in slices) or len(slices) != volume.shape[0]:
        raise ValueError("the source is not one single-frame file per slice")
    headers = [pydicom.dcmread(s.path, stop_before_pixels=True) for s in slices]
    for k, header in enumerate(headers):
        expected = volume.index_to_lps((0, 0, k))
        position = np.asarray(header.ImagePositionPatient, dtype=float)
        if np.abs(position - expected).max() > 0.05 * max(min(volume.spacing), 1e-3) + 1e-3:
            raise ValueError(f"slice {k} of the source does not lie where the volume's does")
    return headers


def _algorithm(analysis: Analysis) -> Any:
    from workstation.outputs._dicom_common import AlgorithmInfo

    return AlgorithmInfo(name=str(analysis.model["name"]), version=str(analysis.model["version"]))


def write_outputs(
    analysis: Analysis,
    out_dir: str | Path,
    *,
    source: Sequence[pydicom.Dataset] | None = None,
    secret: bytes | None = None,
    result_id: str | None = None,
) -> dict[str, Path]:
    """Write the files of the module docstring into ``out_dir``; returns ``{kind: path}``.

    Without ``source`` the DICOM objects are skipped (the summary says why). ``secret`` is the
    site's de-identification secret (default: :func:`~workstation.dicom._deid_secret.
    site_secret`); ``result_id`` the store's id, which makes the FHIR ids stable.
    """
    from workstation.outputs.nifti import write_nifti

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    method = (analysis.explanation_info or {}).get("method")
    stem = method_file_stem(method)
    model = f"{analysis.model['name']} {analysis.model['version']}"
    if analysis.labels is not None:
        written["findings_nifti"] = write_nifti(
            analysis.labels, out / "findings.nii.gz", description=f"findings {model}"
        )
    if analysis.probability is not None:
        # Below 1 % is background: zeroing it lets gzip shrink the map thirty-fold.
        sparse = np.where(analysis.probability.array >= 0.01, analysis.probability.array, 0.0)
        written["probability_nifti"] = write_nifti(
            analysis.probability.with_array(sparse.astype(np.float32)),
            out / "probability.nii.gz",
            description=f"probability {model}",
        )
    if analysis.explanation is not None:
        written["explanation_nifti"] = write_nifti(
            analysis.explanation,
            out / f"explanation-{stem}.nii.gz",
            description=f"explanation {method} {model}",
        )
    notes: list[str] = []
    if source is not None:
        written.update(_write_dicom(analysis, out, source, method))
    else:
        notes.append("no DICOM SEG/SR/parametric map: the source slices' headers were not given")
    written["fhir"] = _write_fhir(analysis, out, secret, result_id)
    summary = {
        **analysis.summary(),
        "result_id": result_id,
        "files": {k: p.name for k, p in written.items()},
        "notes": notes,
    }
    write_atomic(
        out / "summary.json",
        (json.dumps(summary, indent=2, ensure_ascii=False) + "\n").encode("utf-8"),
    )
    written["summary"] = out / "summary.json"
    return written


def method_file_stem(method: object) -> str:
    """A method name as a file name part: ``plugin:mw-x/name`` → ``plugin-mw-x-name``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(method)).strip("-")


def _write_dicom(
    analysis: Analysis, out: Path, source: Sequence[pydicom.Dataset], method: str | None
) -> dict[str, Path]:
    from workstation.outputs.dicom_seg import SegmentInfo, write_segmentation
    from workstation.outputs.dicom_sr import LesionMeasurement, write_lesion_report
    from workstation.outputs.parametric_map import write_parametric_map

    algorithm = _algorithm(analysis)
    written: dict[str, Path] = {}
    if analysis.labels is not None:
        labelled = [f for f in analysis.findings if f.label > 0]
        segments = [SegmentInfo(label=f.label, name=f.name) for f in labelled]
        if not segments:  # a valid, empty SEG still says "nothing found" to a PACS viewer
            segments = [SegmentInfo(label=1, name="lesion")]
        seg = write_segmentation(
            source, analysis.labels.array, segments, algorithm, out / "findings-seg.dcm"
        )
        written["seg"] = out / "findings-seg.dcm"
        measurements = [
            LesionMeasurement(
                segment_number=n + 1,
                name=f.name,
                volume_ml=float(f.volume_ml) if f.volume_ml is not None else 0.0,
                confidence=float(f.confidence),
                centroid_lps_mm=f.centroid_lps,
            )
            for n, f in enumerate(labelled)
            if f.volume_ml is not None
        ]
        write_lesion_report(source, seg, measurements, algorithm, out / "findings-sr.dcm")
        written["sr"] = out / "findings-sr.dcm"
    if analysis.explanation is not None:
        write_parametric_map(
            source,
            np.asarray(analysis.explanation.array, dtype=np.float32),
            algorithm,
            out / f"explanation-{method_file_stem(method)}.dcm",
            name=f"{method} heatmap",
        )
        written["parametric_map"] = out / f"explanation-{method_file_stem(method)}.dcm"
    return written


def _write_fhir(analysis: Analysis, out: Path, secret: bytes | None, result_id: str | None) -> Path:
    import uuid

    from workstation.outputs.fhir import (
        FhirExplanation,
        FhirFinding,
        FhirReportInput,
        write_report_bundle,
    )
    from workstation.workflow.analysis_store import study_pseudonym

    if secret is None:
        from workstation.dicom._deid_secret import site_secret

        secret = site_secret()
    from workstation.dicom._deid_values import pseudonym

    meta = analysis.source.metadata
    study_uid = str(meta.get("study_uid") or "")
    explanations = []
    info = analysis.explanation_info
    if info and info.get("faithfulness"):
        f = info["faithfulness"]
        explanations.append(
            FhirExplanation(
                method=str(info["method"]),
                deletion_auc=f.get("deletion_auc"),
                insertion_auc=f.get("insertion_auc"),
                random_deletion_auc=f.get("deletion_auc_random"),
                random_insertion_auc=f.get("insertion_auc_random"),
                pointing_game=f.get("pointing_game"),
            )
        )
    issued = datetime.fromisoformat(str(analysis.provenance["created"]))
    data = FhirReportInput(
        result_id=result_id or uuid.uuid4().hex,
        # The volume carries no patient ID; the study's keyed pseudonym stands in for the subject.
        patient_pseudonym=pseudonym(study_uid or "unknown", secret),
        study_uid=study_pseudonym(study_uid, secret) if study_uid else "2.25.0",
        model_name=str(analysis.model["name"]),
        model_version=str(analysis.model["version"]),
        disclaimer=str(analysis.model.get("disclaimer", "")),
        issued=issued if issued.tzinfo else issued.replace(tzinfo=UTC),
        findings=[
            FhirFinding(
                name=f.name,
                volume_ml=f.volume_ml,
                probability=float(f.confidence),
                centroid_lps_mm=f.centroid_lps,
            )
            for f in analysis.findings
        ],
        lesion_probability=analysis.lesion_probability,
        explanations=explanations,
        qc_warnings=list(analysis.warnings),
        conclusion=_conclusion(analysis),
    )
    return write_report_bundle(data, out / "report.fhir.json")


def _conclusion(analysis: Analysis) -> str:
    disclaimer = str(analysis.model.get("disclaimer", ""))
    if not analysis.findings:
        return f"No lesion found by {analysis.model['name']} ({disclaimer})."
    parts = []
    for f in analysis.findings:
        volume = "" if f.volume_ml is None else f", {f.volume_ml:.1f} mL"
        parts.append(f"{f.name}{volume}, confidence {f.confidence:.2f}")
    return f"{'; '.join(parts)} ({analysis.model['name']}; {disclaimer})."

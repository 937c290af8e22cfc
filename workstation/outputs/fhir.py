"""One AI result as a FHIR R4 ``Bundle`` (type ``collection``) around a ``DiagnosticReport``.

The bundle is validated with the R4B models of ``fhir.resources``; for the resources used here
(Bundle, DiagnosticReport, Observation, Device, Patient, ImagingStudy) R4B is structurally the
same as R4. Contents:

- ``Patient``: only an id and an identifier (system ``urn:medws:pseudonym``) holding the caller's
  pseudonym. The input has no field for a name, birth date or real ID, so none can leak.
- ``Device``: the model (name, version, type "AI model", the disclaimer as a note).
- ``ImagingStudy``: minimal (status, subject, the de-identified Study Instance UID as
  ``urn:oid:``); referenced by ``DiagnosticReport.imagingStudy`` and ``Observation.derivedFrom``.
- ``Observation`` s, all ``preliminary`` (AI output awaiting a human's review), with ``device``,
  ``method`` (model + version) and the disclaimer and QC warnings as notes: one per finding
  (SNOMED CT 52988006 "Lesion"; components volume in mL and confidence), one for the study-level
  lesion probability, one per explanation (faithfulness metrics), one per QC warning.
- ``DiagnosticReport``: ``preliminary``, category RAD, LOINC 18748-4, results, conclusion, and a
  generated narrative with the disclaimer and QC warnings (R4 DiagnosticReport has no ``note``).
  ``performer`` is left out: R4 allows only Practitioner/Organization/CareTeam there, not Device;
  the model is linked through each Observation's ``device``.

Probabilities and AUCs are ``valueQuantity`` values between 0 and 1 with the UCUM unity code
``"1"``; local codes live in the code system ``urn:medws:codes``. Resource ids are UUIDv5 derived
from the result id (the same input gives the same bundle); references use ``urn:uuid:`` fullUrls.
"""

from __future__ import annotations

import copy
import html
import json
import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from workstation.core.errors import WorkstationError
from workstation.core.files import write_atomic

LOCAL_SYSTEM = "urn:medws:codes"
PSEUDONYM_SYSTEM = "urn:medws:pseudonym"
_SNOMED = "http://snomed.info/sct"
_LOINC = "http://loinc.org"
_UCUM = "http://unitsofmeasure.org"
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:medws:fhir")
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_DICOM_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
# Codes of the required value sets the R4B models do not check themselves.
_REQUIRED_CODES: dict[tuple[str, str], str] = {
    ("Bundle", "type"): "document message transaction transaction-response batch "
    "batch-response history searchset collection",
    ("Observation", "status"): "registered preliminary final amended corrected cancelled "
    "entered-in-error unknown",
    ("DiagnosticReport", "status"): "registered partial preliminary final amended corrected "
    "appended cancelled entered-in-error unknown",
    ("Device", "status"): "active inactive entered-in-error unknown",
    ("ImagingStudy", "status"): "registered available cancelled entered-in-error unknown",
}
_METRICS = (  # explanation component code, display, FhirExplanation attribute
    ("deletion-auc", "Deletion AUC (lower is more faithful)", "deletion_auc"),
    ("insertion-auc", "Insertion AUC (higher is more faithful)", "insertion_auc"),
    ("random-deletion-auc", "Deletion AUC of a random saliency baseline", "random_deletion_auc"),
    ("random-insertion-auc", "Insertion AUC of a random saliency baseline", "random_insertion_auc"),
)
_AXES = (("x", "right→left"), ("y", "anterior→posterior"), ("z", "inferior→superior"))


class FhirError(WorkstationError):
    """A FHIR report could not be built, or does not validate."""


@dataclass(frozen=True)
class FhirFinding:
    """One detected lesion: ``name`` ("lesion 1"), volume (mL), confidence (0..1), centroid."""

    name: str
    volume_ml: float | None
    probability: float | None
    centroid_lps_mm: tuple[float, float, float] | None = None


@dataclass(frozen=True)
class FhirExplanation:
    """Faithfulness metrics of one saliency method ("gradcam", "ig", "occlusion")."""

    method: str
    deletion_auc: float | None
    insertion_auc: float | None
    random_deletion_auc: float | None
    random_insertion_auc: float | None
    pointing_game: bool | None


@dataclass(frozen=True)
class FhirReportInput:
    """Everything the report says; identifiers are already pseudonymous / de-identified.

    ``result_id`` (the store's id) seeds the resource ids; ``issued`` must be timezone-aware.
    """

    result_id: str
    patient_pseudonym: str
    study_uid: str
    model_name: str
    model_version: str
    disclaimer: str
    issued: datetime
    findings: Sequence[FhirFinding]
    lesion_probability: float | None
    explanations: Sequence[FhirExplanation] = ()
    qc_warnings: Sequence[str] = ()
    conclusion: str | None = None


# -- small builders -------------------------------------------------------------------------
def _coding(system: str, code: str, display: str) -> dict[str, Any]:
    return {"system": system, "code": code, "display": display}


def _concept(system: str, code: str, display: str, text: str | None = None) -> dict[str, Any]:
    return {"coding": [_coding(system, code, display)], "text": text or display}


def _local(code: str, display: str, text: str | None = None) -> dict[str, Any]:
    return _concept(LOCAL_SYSTEM, code, display, text)


_IMAGING = _concept(
    "http://terminology.hl7.org/CodeSystem/observation-category", "imaging", "Imaging"
)
_RADIOLOGY = _concept("http://terminology.hl7.org/CodeSystem/v2-0074", "RAD", "Radiology")


def _quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": _UCUM, "code": unit}


def _number(
    value: float, what: str, *, low: float | None = None, high: float | None = None
) -> float:
    number = float(value)
    if not math.isfinite(number) or (low is not None and number < low):
        raise FhirError(f"{what} must be a finite number >= {low}, got {value!r}")
    if high is not None and number > high:
        raise FhirError(f"{what} must be at most {high}, got {value!r}")
    return number


def _fraction(value: float, what: str) -> dict[str, Any]:
    return _quantity(_number(value, what, low=0.0, high=1.0), "1")


def _instant(moment: datetime) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise FhirError("issued must be a timezone-aware datetime")
    return moment.isoformat()


def _finding_components(finding: FhirFinding, index: int) -> list[dict[str, Any]]:
    what = f"finding {index + 1}"
    components = []
    if finding.volume_ml is not None:
        volume = _quantity(_number(finding.volume_ml, f"{what} volume", low=0.0), "mL")
        code = _concept(_SNOMED, "118565006", "Volume")
        components.append({"code": code, "valueQuantity": volume})
    if finding.probability is not None:
        code = _local("finding-probability", "AI confidence for this finding (0 to 1)")
        quantity = _fraction(finding.probability, f"{what} probability")
        components.append({"code": code, "valueQuantity": quantity})
    if finding.centroid_lps_mm is not None:
        if len(finding.centroid_lps_mm) != 3:
            raise FhirError(f"{what} centroid needs three coordinates")
        for (axis, label), value in zip(_AXES, finding.centroid_lps_mm, strict=True):
            code = _local(f"centroid-lps-{axis}", f"Centroid, DICOM LPS {axis} ({label}) in mm")
            quantity = _quantity(_number(value, f"{what} centroid {axis}"), "mm")
            components.append({"code": code, "valueQuantity": quantity})
    return components


def _explanation_components(explanation: FhirExplanation) -> list[dict[str, Any]]:
    method = _local("explanation-method", "Explanation method")
    components = [{"code": method, "valueString": explanation.method}]
    for code, display, attribute in _METRICS:
        value = getattr(explanation, attribute)
        if value is not None:
            quantity = _fraction(value, f"explanation {explanation.method} {code}")
            components.append({"code": _local(code, display), "valueQuantity": quantity})
    if explanation.pointing_game is not None:
        code = _local("pointing-game", "Pointing game hit (saliency peak inside the finding)")
        components.append({"code": code, "valueBoolean": bool(explanation.pointing_game)})
    return components


def _narrative(data: FhirReportInput) -> dict[str, str]:
    paragraphs = [f"<p><b>{html.escape(data.disclaimer)}</b></p>"]
    if data.conclusion:
        paragraphs.append(f"<p>{html.escape(data.conclusion)}</p>")
    paragraphs.extend(f"<p>QC warning: {html.escape(w)}</p>" for w in data.qc_warnings)
    div = '<div xmlns="http://www.w3.org/1999/xhtml">' + "".join(paragraphs) + "</div>"
    return {"status": "generated", "div": div}


# -- the bundle -----------------------------------------------------------------------------
def build_report_bundle(data: FhirReportInput) -> dict[str, Any]:
    """The JSON-ready FHIR ``Bundle`` (type ``collection``) for one AI result.

    Raises
    ------
    FhirError
        An input is out of range (probability outside 0..1, negative volume, naive datetime,
        a study UID that is not a DICOM UID, an empty result id or pseudonym).
    """
    if not data.result_id.strip():
        raise FhirError("result_id must not be empty")
    issued = _instant(data.issued)
    if not _DICOM_UID.match(data.study_uid) or len(data.study_uid) > 64:
        raise FhirError("study_uid must be a DICOM UID (digits and dots, at most 64 characters)")
    pseudonym = data.patient_pseudonym.strip()
    if not pseudonym:
        raise FhirError("patient_pseudonym must not be empty")

    def uid(name: str) -> str:  # deterministic: the same result id gives the same ids
        return str(uuid.uuid5(_NAMESPACE, f"{data.result_id}/{name}"))

    def ref(name: str, resource_type: str) -> dict[str, str]:
        return {"reference": f"urn:uuid:{uid(name)}", "type": resource_type}

    subject, device, study = (
        ref("patient", "Patient"),
        ref("device", "Device"),
        ref("study", "ImagingStudy"),
    )
    notes = [{"text": data.disclaimer}] + [{"text": f"QC warning: {w}"} for w in data.qc_warnings]

    def observation(name: str, code: dict[str, Any], **fields: Any) -> tuple[str, dict[str, Any]]:
        resource = {"resourceType": "Observation", "id": uid(name), "status": "preliminary"}
        resource |= {"category": [_IMAGING], "code": code, "subject": subject}
        resource |= {"effectiveDateTime": issued, "issued": issued, "device": device}
        resource |= {"method": {"text": f"{data.model_name} {data.model_version}"}}
        return name, {**resource, "derivedFrom": [study], **fields}

    observations = []
    for index, finding in enumerate(data.findings):
        code = _concept(_SNOMED, "52988006", "Lesion", finding.name)
        components = _finding_components(finding, index)
        fields: dict[str, Any] = {"component": components} if components else {}
        observations.append(observation(f"finding/{index}", code, note=notes, **fields))
    if data.lesion_probability is not None:
        code = _local("lesion-probability", "AI-estimated probability of a lesion (0 to 1)")
        quantity = _fraction(data.lesion_probability, "lesion probability")
        observations.append(observation("probability", code, valueQuantity=quantity, note=notes))
    for index, explanation in enumerate(data.explanations):
        text = f"Explanation faithfulness ({explanation.method})"
        code = _local("explanation-quality", "Explanation faithfulness metrics", text)
        components = _explanation_components(explanation)
        observations.append(
            observation(f"explanation/{index}", code, component=components, note=notes[:1])
        )
    for index, warning in enumerate(data.qc_warnings):
        fields = {"valueString": warning, "note": notes[:1]}
        if "distribution" in warning.lower():
            fields["interpretation"] = [{"text": "out of distribution"}]
        code = _local("qc-warning", "Quality-control warning")
        observations.append(observation(f"qc/{index}", code, **fields))

    report = {"resourceType": "DiagnosticReport", "id": uid("report"), "text": _narrative(data)}
    report |= {"status": "preliminary", "category": [_RADIOLOGY], "subject": subject}
    report |= {"code": _concept(_LOINC, "18748-4", "Diagnostic imaging study")}
    report |= {"effectiveDateTime": issued, "issued": issued, "imagingStudy": [study]}
    report["result"] = [ref(name, "Observation") for name, _ in observations]
    if data.conclusion:
        report["conclusion"] = data.conclusion
    # The pseudonym is the Patient id when it is a valid FHIR id, else a UUIDv5 of it.
    patient_id = pseudonym if _FHIR_ID.match(pseudonym) else str(uuid.uuid5(_NAMESPACE, pseudonym))
    patient = {"resourceType": "Patient", "id": patient_id}
    patient["identifier"] = [{"system": PSEUDONYM_SYSTEM, "value": pseudonym}]
    model = {"resourceType": "Device", "id": uid("device"), "status": "active"}
    model |= {"deviceName": [{"name": data.model_name, "type": "model-name"}]}
    model |= {"type": {"text": "AI model"}, "version": [{"value": data.model_version}]}
    model["note"] = [{"text": data.disclaimer}]
    imaging = {"resourceType": "ImagingStudy", "id": uid("study"), "status": "available"}
    imaging["identifier"] = [{"system": "urn:dicom:uid", "value": f"urn:oid:{data.study_uid}"}]
    imaging["subject"] = subject
    resources = [("report", report), ("patient", patient), ("device", model), ("study", imaging)]
    entries = [
        {"fullUrl": f"urn:uuid:{uid(name)}", "resource": resource}
        for name, resource in resources + observations
    ]
    bundle = {"resourceType": "Bundle", "id": uid("bundle"), "type": "collection"}
    # A deep copy: shared pieces (subject, notes, codes) become independent objects.
    return copy.deepcopy({**bundle, "timestamp": issued, "entry": entries})


# -- validation and writing -----------------------------------------------------------------
def _describe(error: Any, prefix: str) -> str:
    """A pydantic ValidationError as ``field: message`` lines, without the input values."""
    lines = [
        f"{prefix}.{'.'.join(str(part) for part in item['loc'])}: {item['msg']}"
        for item in error.errors(include_input=False, include_url=False)
    ]
    return "; ".join(lines) or str(error)


def _references(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        found = [node] if isinstance(node.get("reference"), str) else []
        return found + [ref for value in node.values() for ref in _references(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _references(value)]
    return []


def _model_check(model: Any, resource: dict[str, Any], where: str) -> None:
    from pydantic import ValidationError

    try:
        model.model_validate(resource)
    except ValidationError as error:
        raise FhirError(f"invalid {where}: {_describe(error, where)}") from error
    except (ValueError, KeyError, TypeError) as error:  # e.g. an unknown nested resourceType
        raise FhirError(f"invalid {where}: {error}") from error


def validate_bundle(bundle: dict[str, Any]) -> None:
    """Check ``bundle`` against the FHIR R4B models, required codes and its own references.

    Raises
    ------
    FhirError
        With the failing field(s), e.g. ``Observation.status`` or ``...valueQuantity.value``.
    """
    from fhir.resources.R4B import get_fhir_model_class
    from fhir.resources.R4B.bundle import Bundle

    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise FhirError("not a FHIR Bundle (resourceType must be 'Bundle')")
    entries = bundle.get("entry") or []
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise FhirError("Bundle.entry must be a list of objects")
    targets: dict[str, str] = {}
    for index, entry in enumerate(entries):
        resource = entry.get("resource")
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            raise FhirError(f"Bundle.entry[{index}].resource needs a resourceType")
        kind = resource["resourceType"]
        try:
            model = get_fhir_model_class(kind)
        except ValueError as error:
            raise FhirError(f"Bundle.entry[{index}]: unknown resourceType {kind!r}") from error
        _model_check(model, resource, kind)
        url = entry.get("fullUrl")
        if isinstance(url, str):
            if url in targets:
                raise FhirError(f"Bundle.entry[{index}].fullUrl {url} is repeated")
            targets[url] = kind
    for resource in [bundle, *(entry["resource"] for entry in entries)]:
        kind = resource["resourceType"]
        for (resource_type, field), codes in _REQUIRED_CODES.items():
            value = resource.get(field)
            if resource_type == kind and value is not None and value not in codes.split():
                raise FhirError(f"{kind}.{field} {value!r} is not one of: {codes}")
    _model_check(Bundle, bundle, "Bundle")
    for reference in _references(entries):
        target = reference["reference"]
        if not target.startswith("urn:uuid:"):
            continue
        if target not in targets:
            raise FhirError(f"reference {target} does not resolve inside the Bundle")
        expected = reference.get("type")
        if expected is not None and expected != targets[target]:
            raise FhirError(f"reference {target} is typed {expected} but is {targets[target]}")


def write_report_bundle(data: FhirReportInput, path: str | Path) -> Path:
    """Build, validate and write the bundle as pretty UTF-8 JSON, atomically.

    Raises
    ------
    FhirError
        The input is out of range or the bundle does not validate (nothing is written).
    """
    bundle = build_report_bundle(data)
    validate_bundle(bundle)
    target = Path(path)
    text = json.dumps(bundle, indent=2, ensure_ascii=False) + "\n"
    write_atomic(target, text.encode("utf-8"))
    return target

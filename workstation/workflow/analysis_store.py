"""Save an :class:`~workstation.workflow.analyze.Analysis` into the encrypted result store.

One transaction (:meth:`~workstation.store.results.ResultStore.save_result`): the analysis
(model, version, input hash, parameters), one finding per finding (values: volume, confidence,
centroid, QC warnings, faithfulness), and the maps — finding labels, the explanation and the
segmentation probability — zlib-compressed then encrypted (most voxels are 0; a 35 MB float32
map shrinks to a few MB). The study is stored under its pseudonym (the site's keyed remap of the
StudyInstanceUID, as in de-identified exports), its real UIDs only encrypted. The store audits
the save (``result.create``) without PHI.
"""

from __future__ import annotations

import getpass
import zlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from workstation.core.volume import Volume
from workstation.store.default import STORE_URL_ENV

if TYPE_CHECKING:
    from workstation.store.results import ResultStore
    from workstation.workflow.analyze import Analysis

__all__ = ["STORE_URL_ENV", "decode_map", "open_default_store", "save_analysis", "study_pseudonym"]


def study_pseudonym(study_uid: str | None, secret: bytes) -> str:
    """The study's pseudonym: the site-keyed remap of its StudyInstanceUID."""
    from workstation.dicom._deid_values import remap_uid

    if not study_uid:
        raise ValueError("the volume has no StudyInstanceUID to file the result under")
    return remap_uid(study_uid, secret)


def open_default_store(*, actor: str | None = None, url: str | None = None) -> ResultStore:
    """The workstation's result store, unlocked with the key store (no prompt).

    Raises :class:`~workstation.security.errors.KeyStoreError` without a key store or
    passphrase (``$WORKSTATION_PASSPHRASE``, or a keyring-protected key store).
    """
    from workstation.store.default import open_default

    return open_default(actor=actor or f"workstation:{getpass.getuser()}", url=url)[0]


def _encode_map(kind: str, volume: Volume, extra: Mapping[str, Any]) -> tuple[bytes, dict]:
    array = np.ascontiguousarray(volume.array)
    meta = {
        "kind": kind,
        "encoding": "zlib",
        "dtype": array.dtype.str,
        "shape": list(array.shape),
        "spacing": list(volume.spacing),
        "origin": list(volume.origin),
        "direction": np.asarray(volume.direction).tolist(),
        **extra,
    }
    return zlib.compress(array.tobytes(), 1), meta


def decode_map(data: bytes, meta: Mapping[str, Any]) -> Volume:
    """A stored map back as a Volume (the inverse of what :func:`save_analysis` stores)."""
    raw = zlib.decompress(data) if meta.get("encoding") == "zlib" else bytes(data)
    array = np.frombuffer(raw, dtype=np.dtype(meta["dtype"])).reshape(meta["shape"]).copy()
    return Volume(
        array,
        tuple(meta["spacing"]),
        tuple(meta["origin"]),
        np.asarray(meta["direction"], dtype=float),
        metadata={"kind": meta.get("kind")},
    )


def save_analysis(
    analysis: Analysis,
    *,
    store: ResultStore | None = None,
    secret: bytes | None = None,
    sync: bool = False,
) -> str:
    """Save ``analysis`` (see the module docstring); returns the result id.

    ``store`` defaults to :func:`open_default_store` (closed again afterwards); ``secret``
    to the site's de-identification secret.
    """
    from workstation.store import NewFinding, NewMap, NewResult, StudyRef

    if secret is None:
        from workstation.dicom._deid_secret import site_secret

        secret = site_secret()
    meta = analysis.source.metadata
    study = StudyRef(
        study_pseudonym(meta.get("study_uid"), secret),
        identifiers={key: str(meta[key]) for key in ("study_uid", "series_uid") if meta.get(key)},
    )
    explanation = dict(analysis.explanation_info or {})
    findings = [
        NewFinding(
            label=f.name,
            text=_finding_text(f, analysis),
            values={**f.to_json(), "warnings": list(analysis.warnings)},
        )
        for f in analysis.findings
    ]
    maps = []
    for kind, volume in (
        ("labels", analysis.labels),
        ("explanation", analysis.explanation),
        ("probability", analysis.probability),
    ):
        if volume is None:
            continue
        extra = {"method": explanation.get("method")} if kind == "explanation" else {}
        data, map_meta = _encode_map(kind, volume, extra)
        method = explanation.get("method", kind) if kind == "explanation" else kind
        maps.append(NewMap(method=str(method), data=data, meta=map_meta))
    result = NewResult(
        study=study,
        model_name=str(analysis.model["name"]),
        model_version=str(analysis.model["version"]),
        input_hash=str(analysis.provenance["input_hash"]),
        parameters={
            "summary": analysis.summary(),
            "explanation": explanation,
        },
        findings=findings,
        maps=maps,
    )
    if store is not None:
        return store.save_result(result, sync=sync)
    with open_default_store() as opened:
        return opened.save_result(result, sync=sync)


def _finding_text(finding: Any, analysis: Analysis) -> str:
    parts = [f"{finding.name}: confidence {finding.confidence:.2f}"]
    if finding.volume_ml is not None:
        parts.append(f"volume {finding.volume_ml:.2f} mL")
    parts.append(f"{analysis.model['name']} {analysis.model['version']}")
    parts.append(str(analysis.model.get("disclaimer", "")))
    return "; ".join(p for p in parts if p)

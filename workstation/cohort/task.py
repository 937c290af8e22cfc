"""What a worker does with one study of a cohort; never raises: a failure is a row.

:func:`process_study` loads the study (a local folder or file; a DICOMweb study is first
retrieved into a temporary folder, removed afterwards), computes the input QC features and a
thumbnail, runs the model (:func:`~workstation.workflow.analyze.analyze`), the output QC
features, and saves the analysis into the encrypted result store. It returns a flat row
(``study_key, source, status, error, stage, seconds, worker, result_id, model, explain, in_*,
out_*``) and the thumbnail's PNG bytes, which the driver writes (so workers need no shared
folder with the driver).

A study is refused (a failed row) when it has no loadable series or when any of its DICOM files
is corrupt: a truncated file, a slice that does not decode. Analysing what is left would hide
the damage in a cohort's statistics.

Idempotent: Dask runs a task again when its worker dies, and a driver may be interrupted after
a save but before it wrote the row. Before saving, the worker looks for a result of the same
study (pseudonym), model, version, input hash and explanation in the store and reuses its id
(``reused_result``), so a study is stored once however often it runs.

Each worker process opens the default store and loads the model once (module-level caches).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from workstation.cohort.sources import StudyItem, looks_like_dicom

if TYPE_CHECKING:
    from workstation.core.volume import Volume
    from workstation.store.results import ResultStore
    from workstation.workflow.analyze import Analysis

__all__ = ["TaskConfig", "process_study"]

_ERROR_CHARS = 500
_STORE: dict[str, Any] = {}
_MODELS: dict[str, Any] = {}


@dataclass(frozen=True)
class TaskConfig:
    """The options every study of a run shares (picklable)."""

    model: str
    explain: str | None = None
    store: bool = True
    device: str = "auto"
    thumbnail_size: int = 128
    actor: str = "cohort"


def _worker_name() -> str:
    name = f"{socket.gethostname()}:{os.getpid()}"
    try:
        from distributed import get_worker

        return f"{get_worker().name}@{name}"
    except (ImportError, ValueError):
        return name


class CorruptStudyError(Exception):
    """A DICOM file of the study is truncated or does not decode."""


def _load(path: str) -> Volume:
    from workstation.dicom import SeriesNotFoundError, load_series, scan

    catalog = scan(path)
    damaged = [p for p in catalog.problems if looks_like_dicom(_Named(p.path))]
    if damaged:
        first = damaged[0]
        more = f" (and {len(damaged) - 1} more)" if len(damaged) > 1 else ""
        raise CorruptStudyError(f"{os.path.basename(first.path)}: {first.reason}{more}")
    if not catalog.series:
        raise SeriesNotFoundError(f"no loadable DICOM series ({len(catalog.problems)} problems)")
    series = max(catalog.series, key=lambda s: s.slice_count)
    volume = load_series(path, series.uid)
    blank = [w for w in getattr(volume, "warnings", ()) if "left blank" in w]
    if blank:
        raise CorruptStudyError(blank[0] + (f" (and {len(blank) - 1} more)" if blank[1:] else ""))
    return volume


class _Named:
    """A path with a ``name``, for :func:`looks_like_dicom`."""

    def __init__(self, path: str) -> None:
        self.path = str(path)
        self.name = os.path.basename(self.path)

    def __fspath__(self) -> str:
        return self.path


def _retrieve(item: StudyItem, folder: str) -> None:
    """A DICOMweb study into ``folder`` (WADO-RS; the caller removes it)."""
    from workstation.dicom.dicomweb import fetch_study
    from workstation.workflow.remote import connect

    assert item.server is not None and item.study_uid is not None
    with connect(item.server) as client:
        report = fetch_study(client, item.study_uid, folder, connections=2)
    if report.failed:
        _uid, reason = report.failed[0]
        raise CorruptStudyError(f"{len(report.failed)} instance(s) not retrieved: {reason}")


def _where() -> tuple[str | None, ...]:
    """Which home and store the environment names (the caches are per place)."""
    from workstation.workflow.analysis_store import STORE_URL_ENV

    return tuple(os.environ.get(n) for n in ("WORKSTATION_HOME", STORE_URL_ENV))


def _store(config: TaskConfig) -> ResultStore:
    key = ("store", config.actor, *_where())
    if key not in _STORE:
        from workstation.workflow.analysis_store import open_default_store

        _STORE[key] = open_default_store(actor=config.actor)
    return _STORE[key]


def _secret() -> bytes:
    key = ("secret", *_where())
    if key not in _STORE:
        from workstation.dicom._deid_secret import site_secret

        _STORE[key] = site_secret()
    return _STORE[key]


def _models(name: str) -> dict[str, Any]:
    if name not in _MODELS:
        from workstation.inference.catalogue import load_model

        _MODELS[name] = load_model(name)
    return {name: _MODELS[name]}


def _existing(store: ResultStore, pseudonym: str, analysis: Analysis) -> str | None:
    """The id of an equal result already saved (same study, model, input, explanation)."""
    name, version = str(analysis.model["name"]), str(analysis.model["version"])
    method = (analysis.explanation_info or {}).get("method")
    for summary in store.list_results(study=pseudonym):
        if summary.model_name != name or summary.model_version != version:
            continue
        stored = store.get_result(summary.id)
        same_input = stored.input_hash == analysis.provenance["input_hash"]
        if same_input and (stored.parameters.get("explanation") or {}).get("method") == method:
            return summary.id
    return None


def _save(analysis: Analysis, config: TaskConfig) -> tuple[str, bool]:
    from workstation.sync.state import is_enrolled
    from workstation.workflow.analysis_store import save_analysis, study_pseudonym

    store, secret = _store(config), _secret()
    pseudonym = study_pseudonym(analysis.source.metadata.get("study_uid"), secret)
    found = _existing(store, pseudonym, analysis)
    if found is not None:
        return found, True
    # Queued for the registry like any other analysis when this workstation is enrolled.
    return save_analysis(analysis, store=store, secret=secret, sync=is_enrolled()), False


def _error(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".replace("\n", " ")
    return text if len(text) <= _ERROR_CHARS else text[: _ERROR_CHARS - 1] + "…"


def process_study(item: StudyItem, config: TaskConfig) -> dict[str, Any]:
    """Run one study; ``{"row": {...}, "thumbnail": PNG bytes or None}`` (never raises)."""
    from workstation.cohort import qc

    started = time.perf_counter()
    row: dict[str, Any] = {
        "study_key": item.key,
        "source": item.source,
        "status": "failed",
        "error": "",
        "stage": "",
        "worker": _worker_name(),
        "result_id": None,
        "reused_result": False,
        "model": config.model,
        "explain": config.explain or "none",
    }
    thumbnail = None
    stage = "retrieve" if item.server is not None else "load"
    temporary = None
    try:
        if item.server is not None:
            temporary = path = tempfile.mkdtemp(prefix="medws-cohort-")
            _retrieve(item, path)
            stage = "load"
        else:
            assert item.path is not None
            path = item.path
        volume = _load(path)
        stage = "qc"
        row.update(qc.input_features(volume))
        thumbnail = qc.thumbnail_png(volume, config.thumbnail_size)
        stage = "analyze"
        analysis = _analyze(volume, config)
        row["model_version"] = str(analysis.model.get("version", ""))
        stage = "qc"
        row.update(qc.output_features(analysis))
        if config.store:
            stage = "store"
            row["result_id"], row["reused_result"] = _save(analysis, config)
        row["status"], stage = "ok", ""
    except Exception as error:  # noqa: BLE001 - one study's failure never stops the cohort
        row["error"] = _error(error)
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
    row["stage"] = stage
    row["seconds"] = round(time.perf_counter() - started, 3)
    row["finished"] = datetime.now(UTC).isoformat(timespec="milliseconds")
    return {"row": row, "thumbnail": thumbnail}


def _analyze(volume: Volume, config: TaskConfig) -> Analysis:
    from workstation.workflow.analyze import AnalysisRequest, analyze

    request = AnalysisRequest(model=config.model, explain=config.explain, device=config.device)
    return analyze(volume, request, models=_models(config.model))

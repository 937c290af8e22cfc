"""``analyze``: verified demonstration models find the demo's synthetic lesion, explain it
faithfully, stay quiet on the healthy template, and stop when cancelled."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from demo_lesion import DEMO, LESION_CENTRE_LPS

from workstation.core.errors import Cancelled, WorkstationError
from workstation.core.tasks import CancelToken
from workstation.core.volume import Volume
from workstation.inference.catalogue import ModelError, find_models, load_model, shipped_models_dir
from workstation.workflow.analyze import Analysis, AnalysisRequest, analyze

DISCLAIMER = "demonstration model — not for clinical use"


def test_the_catalogue_lists_both_demo_models_verified() -> None:
    models, refused = find_models()
    names = {(m.name, m.task, m.trusted_by) for m in models}
    assert ("demo-lesion-seg", "segmentation", "trust root") in names
    assert ("demo-lesion-cls", "classification", "trust root") in names
    assert not [r for r in refused if r[0].parent == shipped_models_dir()]
    assert all(DISCLAIMER in m.disclaimer for m in models)


def test_a_tampered_or_unknown_model_is_refused(tmp_path: Path) -> None:
    raw = bytearray((shipped_models_dir() / "demo-lesion-seg-0.1.0.mwb").read_bytes())
    raw[len(raw) // 3] ^= 0x40  # inside the weights
    (tmp_path / "demo-lesion-seg-0.1.0.mwb").write_bytes(bytes(raw))
    with pytest.raises(WorkstationError):
        load_model(tmp_path / "demo-lesion-seg-0.1.0.mwb")
    models, refused = find_models(dirs=[tmp_path])
    assert models == [] and len(refused) == 1
    with pytest.raises(ModelError, match=r"available: demo-lesion-cls-0\.1\.0"):
        load_model("no-such-model")
    shutil.copy(shipped_models_dir() / "demo-lesion-cls-0.1.0.mwb", tmp_path / "x.mwb")
    assert load_model(tmp_path / "x.mwb").info.task == "classification"


def test_segmentation_finds_the_lesion_and_explains_it(
    lesion_analysis: Analysis, lesion_volume: Volume, lesion_truth: np.ndarray
) -> None:
    a = lesion_analysis
    assert a.findings, a.summary()
    top = a.findings[0]
    assert np.linalg.norm(np.asarray(top.centroid_lps) - LESION_CENTRE_LPS) < 5.0
    assert top.confidence >= 0.5 and top.volume_ml is not None
    assert a.labels is not None and a.labels.shape == lesion_volume.shape
    assert np.allclose(a.labels.affine, lesion_volume.affine)
    found = a.labels.array == top.label
    dice = 2 * (found & lesion_truth).sum() / (found.sum() + lesion_truth.sum())
    assert dice >= 0.4  # the manifest's held-out Dice is 0.44 (mean), 0.54 (pooled)
    assert all(f.label == 0 and f.confidence < 0.5 for f in a.rejected)
    assert a.warnings == ()  # the demo series is in distribution
    info = a.explanation_info
    assert info is not None and info["method"] == "gradcam"
    f = info["faithfulness"]
    assert f["pointing_game"] is True
    assert f["deletion_auc"] < f["deletion_auc_random"]
    assert a.explanation is not None and a.explanation.shape == lesion_volume.shape
    peak = np.unravel_index(np.argmax(a.explanation.array), a.explanation.shape)
    k, j, i = peak
    assert np.linalg.norm(lesion_volume.index_to_lps((i, j, k)) - LESION_CENTRE_LPS) < 15.0
    assert a.model["name"] == "demo-lesion-seg" and DISCLAIMER in a.model["disclaimer"]


@pytest.fixture(scope="module")
def healthy() -> Volume:
    from workstation.dicom import load_series

    return load_series(DEMO / "brain_mr")


def test_the_healthy_template_gives_no_confirmed_finding(healthy: Volume) -> None:
    request = AnalysisRequest(model="demo-lesion-seg", confirm_with="demo-lesion-cls")
    a = analyze(healthy, request)
    assert a.findings == () and a.rejected  # candidates are kept aside, not lost
    assert a.labels is not None and not a.labels.array.any()
    assert "no finding: there is nothing to explain" in a.warnings


def test_the_classifier_scores_the_lesion_series_higher(
    healthy: Volume, lesion_volume: Volume
) -> None:
    request = AnalysisRequest(model="demo-lesion-cls", explain="gradcam")
    lesion = analyze(lesion_volume, request)
    clean = analyze(healthy, request)
    assert lesion.lesion_probability is not None and clean.lesion_probability is not None
    assert lesion.lesion_probability > clean.lesion_probability
    assert lesion.findings and lesion.findings[0].source == "classification"
    # the scored 64 mm patch holds the lesion centre
    assert np.abs(np.asarray(lesion.findings[0].centroid_lps) - LESION_CENTRE_LPS).max() < 32


def test_cancel_stops_the_analysis(lesion_volume: Volume) -> None:
    token = CancelToken()
    seen: list[str] = []

    def progress(done: int, total: int, message: str = "") -> None:
        seen.append(message)
        if "window" in message or len(seen) > 4:
            token.cancel()

    with pytest.raises(Cancelled):
        analyze(
            lesion_volume, AnalysisRequest(model="demo-lesion-seg"), progress=progress, cancel=token
        )


def test_an_unknown_explanation_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="gradcam"):
        AnalysisRequest(model="demo-lesion-seg", explain="shap")


def test_a_model_signed_by_an_untrusted_key_is_refused(tmp_path: Path) -> None:
    """Re-signing the genuine model files with a key the trust root does not know fails."""
    from workstation.security.bundle import write_bundle
    from workstation.security.sign import HybridSigningKey

    folder = shipped_models_dir() / "demo-lesion-seg"
    bundle = tmp_path / "demo-lesion-seg-0.1.0.mwb"
    write_bundle(
        folder,
        bundle,
        kind="model",
        name="demo-lesion-seg",
        version="0.1.0",
        signing_keys=[HybridSigningKey.generate()],
    )
    with pytest.raises(WorkstationError, match=r"trust|sign"):
        load_model(bundle)

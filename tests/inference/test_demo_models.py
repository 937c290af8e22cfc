"""The shipped demonstration models meet their manifests' held-out metrics on fresh seeds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from workstation.config import demo_study_path
from workstation.dicom import load_series
from workstation.inference.architectures import build
from workstation.inference.synthetic import TemplateBrain, case_for_seed, prepare_template

MODELS = Path(__file__).resolve().parents[2] / "resources" / "models"
DISCLAIMER = "demonstration model — not for clinical use"


@pytest.fixture(scope="module")
def template() -> TemplateBrain:
    series = demo_study_path()
    labels = sitk.GetArrayFromImage(
        sitk.ReadImage(str(series.parent / "brain_tissue_labels.nii.gz"))
    )
    return prepare_template(load_series(series), labels)


def _load(name: str) -> tuple[torch.nn.Module, dict[str, Any]]:
    manifest = json.loads((MODELS / name / "manifest.json").read_text(encoding="utf-8"))
    model = build(manifest["architecture"]["name"], **manifest["architecture"]["config"])
    state = torch.load(MODELS / name / "weights.pt", map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval(), manifest


@pytest.mark.parametrize("name", ["demo-lesion-seg", "demo-lesion-cls"])
def test_manifest_states_what_it_is(name: str) -> None:
    manifest = json.loads((MODELS / name / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["name"] == name and manifest["version"] == "0.1.0"
    assert DISCLAIMER in manifest["disclaimer"] and DISCLAIMER in manifest["intended_use"]
    assert "no patient data" in manifest["training_data"]
    assert manifest["input"]["modality"] == "MR"
    assert (MODELS / name / "weights.pt").stat().st_size < 2_000_000


def test_segmentation_meets_manifest_dice(template: TemplateBrain) -> None:
    model, manifest = _load("demo-lesion-seg")
    scores = []
    with torch.no_grad():
        for seed in range(300_000, 300_016):
            case = case_for_seed(template, seed, n_lesions=1 + seed % 2)
            prediction = model(torch.from_numpy(case.image)[None, None]).argmax(1)[0].numpy()
            truth = case.mask.astype(bool)
            total = int(prediction.sum() + truth.sum())
            scores.append(2 * int((prediction.astype(bool) & truth).sum()) / total)
    expected = manifest["metrics"]["held_out"]["dice_mean"]
    assert float(np.mean(scores)) >= expected - 0.1


def test_classifier_meets_manifest_auc(template: TemplateBrain) -> None:
    model, manifest = _load("demo-lesion-cls")
    cases = [case_for_seed(template, seed) for seed in range(400_000, 400_048)]
    with torch.no_grad():
        x = torch.from_numpy(np.stack([c.image for c in cases]))[:, None]
        scores = torch.sigmoid(model(x))[:, 0].numpy()
    present = np.array([c.present for c in cases])
    positives, negatives = scores[present], scores[~present]
    # AUC = P(score of a lesion case > score of a normal case), ties counting one half
    greater = (positives[:, None] > negatives[None, :]).mean()
    ties = (positives[:, None] == negatives[None, :]).mean()
    held_out = manifest["metrics"]["held_out"]
    assert greater + ties / 2 >= held_out["auc"] - 0.1
    assert ((scores >= 0.5) == present).mean() >= held_out["accuracy"] - 0.15

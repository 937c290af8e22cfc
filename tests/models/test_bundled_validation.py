"""A model bundle carries its reference validation set; the gates use it, and refuse a
candidate that has none (nothing is promoted unvalidated)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from security.bundle_kit import NOW, Publisher

from workstation.config import demo_study_path
from workstation.dicom import load_series
from workstation.inference.catalogue import shipped_models_dir
from workstation.inference.synthetic import prepare_template
from workstation.models.lifecycle import LifecycleError, ModelLifecycle
from workstation.models.update import bundled_validation_set, evaluation_gates
from workstation.models.validation_set import ValidationSet, make_validation_set
from workstation.security.bundle import write_bundle

NAME = "demo-lesion-cls"


def _bundle(tmp: Path, version: str, key: object, validation: ValidationSet | None) -> Path:
    folder = tmp / f"src-{version}"
    shutil.copytree(shipped_models_dir() / NAME, folder)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    manifest["version"] = version
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    if validation is not None:
        validation.save(folder / "validation")
    out = tmp / f"{NAME}-{version}.mwb"
    write_bundle(folder, out, kind="model", name=NAME, version=version, signing_keys=[key])
    return out


@pytest.fixture(scope="module")
def validation() -> ValidationSet:
    series = demo_study_path()
    labels = sitk.GetArrayFromImage(
        sitk.ReadImage(str(series.parent / "brain_tissue_labels.nii.gz"))
    )
    return make_validation_set(prepare_template(load_series(series), labels), n_per_stratum=2)


def test_the_gates_use_the_set_the_candidate_carries(
    tmp_path: Path, validation: ValidationSet
) -> None:
    publisher = Publisher.make()
    roots, key = publisher.roots(NOW), publisher.key("model")
    first = _bundle(tmp_path, "0.1.0", key, None)
    second = _bundle(tmp_path, "0.2.0", key, validation)
    third = _bundle(tmp_path, "0.3.0", key, None)
    assert bundled_validation_set(first, roots) is None
    carried = bundled_validation_set(second, roots)
    assert carried is not None and len(carried.present) == len(validation.present)
    assert np.array_equal(carried.images, validation.images)

    life = ModelLifecycle(tmp_path / "models", trust=roots)
    life.install(first, activate=True)
    life.install(second)
    life.install(third)
    # latency is compared on this (shared, noisy) CPU: only a gross slowdown should fail here
    gates = evaluation_gates(life, trust=roots, max_ratio=5.0)
    report = gates(NAME, "0.2.0")  # the same weights as the active version: every gate passes
    assert report.passed, report.to_json()
    with pytest.raises(LifecycleError, match="carries no validation set"):
        gates(NAME, "0.3.0")
    assert evaluation_gates(life, validation, trust=roots, max_ratio=5.0)(NAME, "0.3.0").passed

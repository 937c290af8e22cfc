"""End to end: a tiny real model on an oblique volume; results on the input's grid."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("SimpleITK")

from scipy.spatial.transform import Rotation  # noqa: E402

from workstation.core.errors import Cancelled  # noqa: E402
from workstation.core.tasks import CancelToken  # noqa: E402
from workstation.core.volume import Volume  # noqa: E402
from workstation.inference.device import DeviceChoice, InferenceError  # noqa: E402
from workstation.inference.preprocess import InputSpec  # noqa: E402
from workstation.inference.qc import TrainingStats  # noqa: E402
from workstation.inference.runtime import run_classification, run_segmentation  # noqa: E402

SPEC = InputSpec.from_manifest(
    {
        "modality": "MR",
        "orientation": "RAS",
        "spacing": [2, 2, 2],
        "normalisation": {"method": "percentile", "low": 0, "high": 100},
        "divisor": 4,
    }
)
CPU = DeviceChoice("cpu", "test", "cpu")
WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def threshold_net() -> torch.nn.Module:
    """A real conv net: lesion logit = 20 · (3×3×3 mean − 0.5), background logit 0."""
    conv = torch.nn.Conv3d(1, 2, 3, padding=1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[1].fill_(20.0 / 27)
        conv.bias.copy_(torch.tensor([0.0, -10.0]))
    return conv


class TinyClassifier(torch.nn.Module):
    def __init__(self, classes: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv3d(1, 4, 3, padding=1)
        self.head = torch.nn.Linear(4, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x).mean(dim=(2, 3, 4)))


@pytest.fixture
def volume() -> Volume:
    """Oblique, anisotropic MR-like volume with a bright sphere (r 9 mm) near the centre."""
    direction = Rotation.from_euler("xyz", [15.0, -8.0, 4.0], degrees=True).as_matrix()
    shape, spacing = (14, 30, 26), (1.2, 1.0, 2.4)
    origin = -(direction * np.asarray(spacing)) @ ((np.array(shape[::-1]) - 1) / 2)
    grid = Volume(np.zeros(shape, np.float32), spacing, tuple(origin), direction)
    k, j, i = np.indices(shape)
    lps = grid.index_to_lps(np.stack([i, j, k], -1))
    sphere = np.linalg.norm(lps - [1.0, -1.0, 1.0], axis=-1) < 9.0
    array = np.where(sphere, 900.0, 100.0).astype(np.float32)
    return grid.with_array(array, metadata={"modality": "MR", "series_uid": "1.2.3"})


def test_segmentation_returns_volumes_on_the_input_grid(volume: Volume) -> None:
    reports: list[tuple[int, int, str]] = []
    model = threshold_net().train()
    probs, labels = run_segmentation(
        model,
        volume,
        SPEC,
        device=CPU,
        progress=lambda d, t, m="": reports.append((d, t, m)),
        patch_size=(8, 8, 8),
        overlap=0.25,
        batch_size=2,
        model_name="demo-lesion-seg",
        model_version="1.0.0",
        clock=lambda: WHEN,
    )
    for out in (probs, labels):
        assert out.shape == volume.shape
        assert out.spacing == volume.spacing and out.origin == volume.origin
        np.testing.assert_array_equal(out.direction, volume.direction)
    assert probs.array.dtype == np.float32 and labels.array.dtype == np.uint8
    assert probs.array.min() >= 0.0 and probs.array.max() <= 1.0
    truth = volume.array > 500
    dice = 2 * np.logical_and(labels.array, truth).sum() / (labels.array.sum() + truth.sum())
    assert dice > 0.8
    prov = probs.metadata["provenance"]
    assert prov["model"] == "demo-lesion-seg" and prov["model_version"] == "1.0.0"
    assert prov["device"] == "cpu" and prov["created"] == WHEN.isoformat()
    assert prov["source_series_uid"] == "1.2.3" and prov["windows"] > 1
    assert prov["classes"] == 2 and prov["input_spec"]["spacing"] == [2.0, 2.0, 2.0]
    assert labels.metadata["kind"] == "labels" and probs.metadata["kind"] == "probability"
    assert reports[-1][0] == reports[-1][1] and reports[-1][2] == "done"
    assert model.training  # the caller's mode is restored


def test_qc_warnings_travel_with_the_result(volume: Volume) -> None:
    ct = Volume(
        volume.array, volume.spacing, volume.origin, volume.direction, metadata={"modality": "CT"}
    )
    stats = TrainingStats(max_obliquity=90.0)
    probs, labels = run_segmentation(
        threshold_net(), ct, SPEC, device=CPU, patch_size=(16, 16, 16), stats=stats
    )
    assert len(probs.warnings) == 1 and "modality CT" in probs.warnings[0]
    assert labels.warnings == probs.warnings


def test_single_logit_segmentation_uses_a_sigmoid(volume: Volume) -> None:
    conv = torch.nn.Conv3d(1, 1, 1)
    with torch.no_grad():
        conv.weight.fill_(20.0)
        conv.bias.fill_(-10.0)
    probs, labels = run_segmentation(conv, volume, SPEC, device="cpu", patch_size=(16, 16, 16))
    assert set(np.unique(labels.array)) == {0, 1}
    np.testing.assert_array_equal(labels.array, (probs.array >= 0.5).astype(np.uint8))


def test_multi_class_segmentation_uses_argmax(volume: Volume) -> None:
    conv = torch.nn.Conv3d(1, 3, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([0.0, 10.0, 30.0]).view(3, 1, 1, 1, 1))
        conv.bias.copy_(torch.tensor([0.0, -3.0, -20.0]))
    probs, labels = run_segmentation(conv, volume, SPEC, device=CPU, patch_size=(16, 16, 16))
    assert set(np.unique(labels.array)) == {0, 1, 2}
    assert probs.metadata["provenance"]["classes"] == 3


def test_cancel_before_inference_raises(volume: Volume) -> None:
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        run_segmentation(threshold_net(), volume, SPEC, device=CPU, cancel=token)


@pytest.mark.parametrize("classes", [1, 2])
def test_classification_probabilities_with_provenance(volume: Volume, classes: int) -> None:
    torch.manual_seed(0)
    result = run_classification(
        TinyClassifier(classes),
        volume,
        SPEC,
        device=CPU,
        patch_size=(16, 16, 16),
        model_name="demo-lesion-cls",
        clock=lambda: WHEN,
    )
    assert result.probabilities.shape == (classes,)
    assert np.all((result.probabilities >= 0) & (result.probabilities <= 1))
    if classes == 2:
        assert result.probabilities.sum() == pytest.approx(1.0, abs=1e-6)
    assert result.provenance["input_shape"] == [16, 16, 16]
    assert result.provenance["model"] == "demo-lesion-cls"
    assert len(result.warnings) == 1 and "oblique" in result.warnings[0]


def test_classifier_with_a_bad_output_shape_is_refused(volume: Volume) -> None:
    with pytest.raises(InferenceError, match=r"\(N, K\)"):
        run_classification(torch.nn.Conv3d(1, 1, 1), volume, SPEC, device=CPU)


def test_shared_architectures_run_end_to_end(volume: Volume) -> None:
    architectures = pytest.importorskip("workstation.inference.architectures")
    torch.manual_seed(0)
    seg = architectures.LesionSegNet3D()
    spec = InputSpec(modality="MR", spacing=(2.0, 2.0, 2.0), divisor=8)
    probs, labels = run_segmentation(seg, volume, spec, device=CPU, patch_size=(16, 16, 16))
    assert probs.shape == labels.shape == volume.shape
    result = run_classification(architectures.LesionClsNet3D(), volume, spec, device=CPU)
    assert result.probabilities.shape == (1,)

"""Explanations of a trained tiny classifier: localisation, faithfulness, no mutation, cancel."""

from __future__ import annotations

import numpy as np
import pytest

from workstation.core.errors import Cancelled
from workstation.core.tasks import CancelToken
from workstation.core.volume import Volume
from workstation.explain import (
    ExplainError,
    auc,
    explain,
    gradcam,
    integrated_gradients,
    occlusion,
    pointing_game,
    region_target,
)

torch = pytest.importorskip("torch")

METHOD_PARAMS = {
    "gradcam": {},
    "ig": {"n_steps": 16, "internal_batch_size": 16},
    "occlusion": {"patch": 4, "stride": 3, "batch_size": 128},
}


def as_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image)[None, None]


def reference(image: np.ndarray) -> Volume:
    return Volume(
        image,
        spacing=(0.8, 0.9, 1.5),
        origin=(-10.0, 5.0, 20.0),
        direction=np.diag([1.0, -1.0, 1.0]),
        metadata={"modality": "MR"},
    )


def snapshot(model: torch.nn.Module) -> dict[str, object]:
    return {
        "params": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grads": [p.grad for p in model.parameters()],
        "training": [m.training for m in model.modules()],
        "hooks": [
            (len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
            for m in model.modules()
        ],
    }


def assert_unchanged(model: torch.nn.Module, before: dict[str, object]) -> None:
    after = snapshot(model)
    for name, value in before["params"].items():
        assert torch.equal(value, after["params"][name]), name  # bit-identical
    for key in ("requires_grad", "training", "hooks"):
        assert after[key] == before[key], key
    assert all(g is None for g in after["grads"])


@pytest.mark.parametrize("method", ["gradcam", "ig", "occlusion"])
def test_pointing_game_on_held_out_cases(trained, method: str) -> None:
    fn = {"gradcam": gradcam, "ig": integrated_gradients, "occlusion": occlusion}[method]
    hits = [
        pointing_game(fn(trained.model, as_tensor(image), 0, **METHOD_PARAMS[method])[0], mask)
        for image, mask in trained.held_out
    ]
    assert np.mean(hits) >= 0.8, hits


@pytest.mark.parametrize("method", ["gradcam", "ig", "occlusion"])
def test_explain_volume_provenance_and_faithfulness(trained, method: str) -> None:
    image, mask = trained.held_out[0]
    ref = reference(image)
    before = snapshot(trained.model)
    result = explain(
        trained.model,
        as_tensor(image),
        method=method,
        target=0,
        reference_volume=ref,
        lesion_mask=mask,
        model_name="tiny-cls",
        model_version="1.0",
        squash="sigmoid",
        **METHOD_PARAMS[method],
    )
    assert_unchanged(trained.model, before)
    vol = result.volume
    assert vol.shape == ref.shape and vol.spacing == ref.spacing and vol.origin == ref.origin
    assert np.array_equal(vol.direction, ref.direction)
    meta = vol.metadata
    assert meta["method"] == method and meta["model_name"] == "tiny-cls"
    assert meta["model_version"] == "1.0" and meta["target"] == 0 and meta["created"]
    assert meta["parameters"] == result.parameters
    assert (meta["layer"] == "block") == (method == "gradcam")
    f = result.faithfulness
    assert f is not None and f.pointing_game is True
    assert meta["faithfulness"]["pointing_game"] is True
    assert f.deletion_auc < f.deletion_auc_random
    assert f.insertion_auc > f.insertion_auc_random
    assert f.deletion_gain > 0 and f.insertion_gain > 0
    assert len(result.curves["deletion"]) == f.n_steps + 1
    if method == "gradcam":
        assert vol.array.min() >= 0.0 and vol.array.max() == pytest.approx(1.0)


def test_faithfulness_beats_random_over_cases(trained) -> None:
    gains = []
    for image, _ in trained.held_out[:3]:
        result = explain(
            trained.model,
            as_tensor(image),
            method="gradcam",
            target=0,
            reference_volume=reference(image),
            faithfulness_random=2,
        )
        gains.append((result.faithfulness.deletion_gain, result.faithfulness.insertion_gain))
    assert all(d > 0 and i > 0 for d, i in gains), gains


@pytest.mark.parametrize("method", ["gradcam", "ig", "occlusion"])
def test_model_untouched_after_exception_in_target(trained, method: str) -> None:
    image, _ = trained.held_out[0]
    before = snapshot(trained.model)
    trained.model.train()  # a mode to restore; eval is used inside
    before["training"] = [m.training for m in trained.model.modules()]

    def broken(output: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        explain(
            trained.model,
            as_tensor(image),
            method=method,
            target=broken,
            reference_volume=reference(image),
            **METHOD_PARAMS[method],
        )
    assert_unchanged(trained.model, before)
    trained.model.eval()


def test_gradcam_with_frozen_parameters_leaves_them_frozen(trained) -> None:
    image, _mask = trained.held_out[1]
    for p in trained.model.parameters():
        p.requires_grad_(False)
    try:
        before = snapshot(trained.model)
        cam = gradcam(trained.model, as_tensor(image), 0)
        assert_unchanged(trained.model, before)
        assert cam.shape == (1, *image.shape)
    finally:
        for p in trained.model.parameters():
            p.requires_grad_(True)


@pytest.mark.parametrize("method", ["ig", "occlusion"])
def test_cancel_stops_attribution(trained, method: str) -> None:
    image, _ = trained.held_out[0]
    token = CancelToken()
    reports: list[tuple[int, int]] = []
    calls = [0]

    def counting(output: torch.Tensor) -> torch.Tensor:
        calls[0] += 1
        if calls[0] == 2:
            token.cancel("stop")
        return output[:, 0]

    def progress(done: int, total: int, message: str = "") -> None:
        reports.append((done, total))

    params = {"ig": {"n_steps": 64, "internal_batch_size": 2}, "occlusion": {"batch_size": 1}}
    fn = integrated_gradients if method == "ig" else occlusion
    with pytest.raises(Cancelled):
        x = as_tensor(image)
        fn(trained.model, x, counting, progress=progress, cancel=token, **params[method])
    assert calls[0] == 2  # stopped before the next batch
    assert reports[0] == (0, reports[0][1]) and reports[0][1] > 10


def test_segmentation_region_target() -> None:
    from torch import nn

    torch.manual_seed(0)
    seg = nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv3d(4, 2, 1))
    x = torch.randn(1, 1, 12, 12, 12)
    region = np.zeros((12, 12, 12), dtype=bool)
    region[4:8, 4:8, 4:8] = True
    target = region_target(region, classes=(1,))
    with torch.no_grad():
        expected = seg(x)[0, 1][torch.from_numpy(region)].sum()
        assert torch.allclose(target(seg(x))[0], expected)
    ref = Volume(np.zeros((12, 12, 12), dtype=np.float32))
    for method in ("gradcam", "ig", "occlusion"):
        params = {"ig": {"n_steps": 4}, "occlusion": {"patch": 4, "stride": 4}}.get(method, {})
        result = explain(
            seg,
            x,
            method=method,
            target=target,
            reference_volume=ref,
            layer="0",
            faithfulness_steps=4,
            faithfulness_random=1,
            **params,
        )
        assert result.volume.shape == (12, 12, 12)
        assert np.isfinite(result.volume.array).all()
        assert result.provenance["target"] == "score"
    with pytest.raises(ExplainError, match="classifier output"):
        gradcam(seg, x, 0, layer="0")


def test_pointing_game_tolerance_and_auc() -> None:
    attribution = np.zeros((5, 5, 5))
    attribution[2, 2, 2] = 1.0
    mask = np.zeros((5, 5, 5), dtype=bool)
    mask[2, 2, 4] = True
    assert not pointing_game(attribution, mask)
    assert not pointing_game(attribution, mask, tolerance=1)
    assert pointing_game(attribution, mask, tolerance=2)
    assert auc(np.array([1.0, 1.0, 1.0])) == pytest.approx(1.0)
    assert auc(np.array([1.0, 0.0])) == pytest.approx(0.5)


def test_bad_requests(trained) -> None:
    image, _ = trained.held_out[0]
    ref = reference(image)
    with pytest.raises(ExplainError, match="unknown method"):
        explain(trained.model, as_tensor(image), method="lime", target=0, reference_volume=ref)
    with pytest.raises(ExplainError, match="no parameter"):
        explain(
            trained.model,
            as_tensor(image),
            method="gradcam",
            target=0,
            reference_volume=ref,
            n_steps=3,
        )
    small = Volume(np.zeros((8, 8, 8), dtype=np.float32))
    with pytest.raises(ExplainError, match="reference grid"):
        explain(trained.model, as_tensor(image), method="gradcam", target=0, reference_volume=small)
    with pytest.raises(ExplainError, match="outside"):
        gradcam(trained.model, as_tensor(image), 3)

"""The demonstration architectures: output shapes, sizes, the registry and the Grad-CAM layer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from workstation.inference.architectures import (
    ARCHITECTURES,
    ConvBlock,
    LesionClsNet3D,
    LesionSegNet3D,
    build,
    parameter_count,
)


def test_segmentation_output_shape_and_size() -> None:
    model = build("lesion-seg-unet3d").eval()
    assert isinstance(model, LesionSegNet3D)
    with torch.no_grad():
        logits = model(torch.zeros(2, 1, 16, 24, 32))
    assert logits.shape == (2, 2, 16, 24, 32)
    assert 100_000 <= parameter_count(model) <= 300_000


def test_classification_output_shape_and_size() -> None:
    model = build("lesion-cls-cnn3d").eval()
    assert isinstance(model, LesionClsNet3D)
    with torch.no_grad():
        logits = model(torch.zeros(3, 1, 32, 16, 24))
    assert logits.shape == (3, 1)
    assert 100_000 <= parameter_count(model) <= 300_000


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_gradcam_layer_is_the_last_conv_block(name: str) -> None:
    model = build(name)
    layer = model.gradcam_layer
    assert isinstance(layer, ConvBlock)
    assert any(isinstance(m, nn.Conv3d) for m in layer.modules())
    blocks = [m for m in model.modules() if isinstance(m, ConvBlock)]
    assert layer is blocks[-1]
    seen: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: seen.append(out))
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 1, 16, 16, 16))
    finally:
        handle.remove()
    assert seen and seen[0].ndim == 5


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_build_round_trips_its_config(name: str) -> None:
    model = build(name)
    again = build(name, **model.config)
    assert again.config == model.config
    again.load_state_dict(model.state_dict())


def test_unknown_architecture_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="lesion-seg-unet3d"):
        build("resnet-9000")


@pytest.mark.parametrize("shape", [(1, 1, 12, 16, 16), (1, 2, 16, 16, 16), (1, 16, 16, 16)])
def test_bad_inputs_are_refused(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="input"):
        build("lesion-seg-unet3d")(torch.zeros(shape))

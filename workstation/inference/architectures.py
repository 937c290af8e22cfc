"""The demonstration models' network architectures and the registry a bundle manifest names.

Both networks take one channel ``[N, 1, K, J, I]`` (axis order of :class:`~workstation.core.
volume.Volume` arrays) whose sides are multiples of :data:`SIZE_MULTIPLE`, and use instance
normalisation, so a whole resampled volume can be run as well as a training patch.

- :class:`LesionSegNet3D` (``"lesion-seg-unet3d"``): a small 3D U-Net, 2 logits per voxel
  (0 background, 1 lesion).
- :class:`LesionClsNet3D` (``"lesion-cls-cnn3d"``): a 3D conv encoder, global average pool and
  one logit (lesion present).

Each exposes ``gradcam_layer``: the last convolutional block, whose output Grad-CAM hooks.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = [
    "ARCHITECTURES",
    "SIZE_MULTIPLE",
    "ConvBlock",
    "LesionClsNet3D",
    "LesionSegNet3D",
    "build",
    "parameter_count",
]

SIZE_MULTIPLE = 8  # three 2× poolings


class ConvBlock(nn.Sequential):
    """Two 3×3×3 convolutions, each followed by instance norm and LeakyReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv3d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.InstanceNorm3d(out_channels, affine=True),
            nn.LeakyReLU(0.01, inplace=True),
            nn.Conv3d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.InstanceNorm3d(out_channels, affine=True),
            nn.LeakyReLU(0.01, inplace=True),
        )


def _check_input(x: torch.Tensor) -> None:
    if x.ndim != 5 or x.shape[1] != 1:
        raise ValueError(f"expected input [N, 1, K, J, I], got {tuple(x.shape)}")
    if any(side % SIZE_MULTIPLE for side in x.shape[2:]):
        raise ValueError(f"input sides must be multiples of {SIZE_MULTIPLE}, got {tuple(x.shape)}")


class LesionSegNet3D(nn.Module):
    """A small 3D U-Net: three 2× downsamplings, skip connections, 2 output logits per voxel.

    Parameters
    ----------
    channels
        Feature channels per level, finest first; the last is the bottleneck.
    out_channels
        Output logits per voxel (background, lesion).
    """

    def __init__(self, channels: tuple[int, ...] = (8, 16, 24, 32), out_channels: int = 2) -> None:
        super().__init__()
        if len(channels) != 4:
            raise ValueError(f"channels needs 4 levels, got {channels}")
        self.config: dict[str, Any] = {"channels": list(channels), "out_channels": out_channels}
        c1, c2, c3, c4 = channels
        self.enc1, self.enc2, self.enc3 = ConvBlock(1, c1), ConvBlock(c1, c2), ConvBlock(c2, c3)
        self.bottleneck = ConvBlock(c3, c4)
        self.pool = nn.MaxPool3d(2)
        self.up3 = nn.ConvTranspose3d(c4, c3, 2, stride=2)
        self.dec3 = ConvBlock(2 * c3, c3)
        self.up2 = nn.ConvTranspose3d(c3, c2, 2, stride=2)
        self.dec2 = ConvBlock(2 * c2, c2)
        self.up1 = nn.ConvTranspose3d(c2, c1, 2, stride=2)
        self.dec1 = ConvBlock(2 * c1, c1)
        self.head = nn.Conv3d(c1, out_channels, 1)

    @property
    def gradcam_layer(self) -> nn.Module:
        """The last convolutional block (full resolution, just before the 1×1 head)."""
        return self.dec1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[N, out_channels, K, J, I]`` for input ``[N, 1, K, J, I]``."""
        _check_input(x)
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        e3 = self.enc3(self.pool(e2))
        b = self.bottleneck(self.pool(e3))
        d3 = self.dec3(torch.cat([self.up3(b), e3], dim=1))
        d2 = self.dec2(torch.cat([self.up2(d3), e2], dim=1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
        return self.head(d1)


class LesionClsNet3D(nn.Module):
    """A 3D conv encoder (four blocks, three 2× poolings), global average pool and one logit.

    Parameters
    ----------
    channels
        Feature channels of the four blocks.
    dropout
        Dropout before the final linear layer (training only).
    """

    def __init__(self, channels: tuple[int, ...] = (8, 16, 32, 64), dropout: float = 0.1) -> None:
        super().__init__()
        if len(channels) != 4:
            raise ValueError(f"channels needs 4 levels, got {channels}")
        self.config: dict[str, Any] = {"channels": list(channels), "dropout": dropout}
        blocks: list[nn.Module] = []
        previous = 1
        for index, width in enumerate(channels):
            if index:
                blocks.append(nn.MaxPool3d(2))
            blocks.append(ConvBlock(previous, width))
            previous = width
        self.encoder = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(previous, 1)

    @property
    def gradcam_layer(self) -> nn.Module:
        """The last convolutional block (the encoder's output, before pooling)."""
        return self.encoder[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One logit per case, ``[N, 1]`` (sigmoid → probability that a lesion is present)."""
        _check_input(x)
        features = self.encoder(x).mean(dim=(2, 3, 4))
        return self.classifier(self.dropout(features))


ARCHITECTURES: dict[str, type[nn.Module]] = {
    "lesion-seg-unet3d": LesionSegNet3D,
    "lesion-cls-cnn3d": LesionClsNet3D,
}


def build(name: str, **config: Any) -> nn.Module:
    """Instantiate the architecture ``name`` of :data:`ARCHITECTURES` with ``config``.

    Raises
    ------
    KeyError
        ``name`` is not a known architecture (the message lists the known ones).
    """
    try:
        cls = ARCHITECTURES[name]
    except KeyError as e:
        known = ", ".join(sorted(ARCHITECTURES))
        raise KeyError(f"unknown architecture {name!r}; known: {known}") from e
    if "channels" in config:
        config["channels"] = tuple(config["channels"])
    return cls(**config)


def parameter_count(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

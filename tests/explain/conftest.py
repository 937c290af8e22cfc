"""A tiny 3D classifier trained in a few seconds on "is there a bright blob?" (fixed seed)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pytest

if TYPE_CHECKING:
    import torch

SIZE = 16


def make_case(rng: np.random.Generator, present: bool) -> tuple[np.ndarray, np.ndarray]:
    """One noisy ``SIZE³`` volume and its blob mask (empty when absent)."""
    image = rng.normal(0.0, 0.3, size=(SIZE,) * 3).astype(np.float32)
    mask = np.zeros((SIZE,) * 3, dtype=bool)
    if present:
        radius = rng.uniform(2.0, 3.0)
        centre = rng.uniform(radius + 1, SIZE - radius - 2, size=3)
        grid = np.indices(mask.shape).transpose(1, 2, 3, 0)
        mask = np.linalg.norm(grid - centre, axis=-1) <= radius
        image[mask] += 1.5
    return image, mask


def make_model() -> torch.nn.Module:
    from torch import nn

    class TinyCls(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.ReLU())
            self.block = nn.Sequential(nn.Conv3d(4, 8, 3, padding=1), nn.ReLU())
            self.head = nn.Linear(8, 1)

        @property
        def gradcam_layer(self) -> nn.Module:
            return self.block

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            features = self.block(self.stem(x))
            return self.head(features.amax(dim=(2, 3, 4)))

    return TinyCls()


@dataclass
class Trained:
    model: torch.nn.Module
    held_out: list[tuple[np.ndarray, np.ndarray]]  # blob-present cases


@pytest.fixture(scope="session")
def trained() -> Trained:
    import torch

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = make_model()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    for _ in range(40):
        labels = rng.random(8) < 0.5
        batch = np.stack([make_case(rng, bool(p))[0] for p in labels])[:, None]
        loss = loss_fn(
            model(torch.from_numpy(batch))[:, 0], torch.from_numpy(labels.astype(np.float32))
        )
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    optimiser.zero_grad(set_to_none=True)
    model.eval()
    test_rng = np.random.default_rng(123)
    held_out = [make_case(test_rng, True) for _ in range(10)]
    with torch.no_grad():
        absent = np.stack([make_case(test_rng, False)[0] for _ in range(10)])[:, None]
        present = np.stack([c[0] for c in held_out])[:, None]
        p = model(torch.from_numpy(present))[:, 0]
        a = model(torch.from_numpy(absent))[:, 0]
    assert (p > 0).float().mean() >= 0.9 and (a < 0).float().mean() >= 0.9, "training failed"
    return Trained(model, held_out)

"""Measured faithfulness: pointing game and deletion / insertion AUC against random order.

- **Pointing game**: is the map's peak inside the known lesion mask (or within ``tolerance``
  voxels of it, Chebyshev distance)?
- **Deletion**: remove the most-attributed voxels first (replace them with the baseline), in
  ``n_steps`` chunks, and record the target score after each; a faithful map makes it fall fast,
  so its area (trapezoid over the removed fraction 0..1) is *small*.
- **Insertion**: start from the baseline and put the most-attributed voxels back; a faithful map
  makes the score rise fast, so its area is *large*.

Both are compared with the mean curve of a few random voxel orders (fixed seed). Scores are in
the target's units (``squash="sigmoid"`` maps logits to probabilities first).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from workstation.core.tasks import CancelToken, ProgressFn, check_cancel, throttled
from workstation.explain._common import ExplainError

if TYPE_CHECKING:
    import torch

__all__ = ["Faithfulness", "auc", "deletion_insertion", "pointing_game"]


def pointing_game(attribution: np.ndarray, mask: np.ndarray, *, tolerance: int = 0) -> bool:
    """True when the peak of ``attribution`` lies in ``mask`` (or within ``tolerance`` voxels)."""
    attribution = np.asarray(attribution)
    mask = np.asarray(mask, dtype=bool)
    if attribution.shape != mask.shape:
        raise ExplainError(f"map {attribution.shape} and mask {mask.shape} differ in shape")
    peak = np.unravel_index(int(np.nanargmax(attribution)), attribution.shape)
    box = tuple(slice(max(p - tolerance, 0), p + tolerance + 1) for p in peak)
    return bool(mask[box].any())


def auc(curve: np.ndarray) -> float:
    """Trapezoid area under ``curve`` sampled evenly over [0, 1]."""
    y = np.asarray(curve, dtype=np.float64)
    if y.size < 2:
        return float(y.sum())
    return float(((y[1:] + y[:-1]) * 0.5).sum() / (y.size - 1))


@dataclass(frozen=True)
class Faithfulness:
    """Deletion / insertion AUC of the map's order and of random orders, and the pointing game."""

    deletion_auc: float
    deletion_auc_random: float
    insertion_auc: float
    insertion_auc_random: float
    n_steps: int
    n_random: int
    pointing_game: bool | None = None
    pointing_tolerance: int | None = None

    @property
    def deletion_gain(self) -> float:
        """Random minus ours: positive when the map deletes the evidence faster than chance."""
        return self.deletion_auc_random - self.deletion_auc

    @property
    def insertion_gain(self) -> float:
        """Ours minus random: positive when the map inserts the evidence faster than chance."""
        return self.insertion_auc - self.insertion_auc_random

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able values, the gains included."""
        return {
            **asdict(self),
            "deletion_gain": self.deletion_gain,
            "insertion_gain": self.insertion_gain,
        }


def _curves(
    score: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    ref: torch.Tensor,
    order: np.ndarray,
    n_steps: int,
    batch_size: int,
    cancel: CancelToken | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Deletion and insertion score curves (``n_steps + 1`` points each) for one voxel order."""
    import torch

    n = order.size
    cuts = np.linspace(0, n, n_steps + 1).round().astype(int)
    flat_x, flat_ref = x.reshape(-1), ref.reshape(-1)
    rank = torch.empty(n, dtype=torch.long, device=x.device)
    rank[torch.as_tensor(order, device=x.device)] = torch.arange(n, device=x.device)
    out: dict[str, list[float]] = {"deletion": [], "insertion": []}
    for mode in out:
        for start in range(0, cuts.size, batch_size):
            check_cancel(cancel)
            k = torch.as_tensor(cuts[start : start + batch_size], device=x.device)
            chosen = rank[None, :] < k[:, None]  # (B, n): voxels removed / inserted so far
            if mode == "deletion":
                batch = torch.where(chosen, flat_ref, flat_x)
            else:
                batch = torch.where(chosen, flat_x, flat_ref)
            out[mode].extend(score(batch.view(-1, *x.shape[1:])).float().cpu().tolist())
    return np.asarray(out["deletion"]), np.asarray(out["insertion"])


def deletion_insertion(
    score: Callable[[torch.Tensor], torch.Tensor],
    tensor: torch.Tensor,
    attribution: np.ndarray,
    *,
    baseline: torch.Tensor,
    n_steps: int = 20,
    n_random: int = 3,
    seed: int = 0,
    batch_size: int = 8,
    squash: str | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
) -> tuple[Faithfulness, dict[str, np.ndarray]]:
    """Deletion / insertion AUCs of ``attribution``'s voxel order against random orders.

    Parameters
    ----------
    score
        ``x (B, 1, D, H, W) -> (B,)`` target score; called under ``torch.no_grad()``.
    tensor
        One input ``(1, 1, D, H, W)``.
    attribution
        ``(D, H, W)`` map; higher means more important.
    baseline
        The replacement values, the shape of ``tensor``.
    squash
        ``None`` (raw scores) or ``"sigmoid"``.

    Returns
    -------
    Faithfulness, dict
        The metrics and the curves (``deletion``, ``insertion``, ``deletion_random``,
        ``insertion_random``).
    """
    import torch

    if tensor.shape[0] != 1 or tuple(tensor.shape[2:]) != np.shape(attribution):
        raise ExplainError(
            f"faithfulness needs one input (1, 1, D, H, W) matching the map "
            f"{np.shape(attribution)}, got {tuple(tensor.shape)}"
        )
    if squash not in (None, "sigmoid"):
        raise ExplainError(f"squash must be None or 'sigmoid', got {squash!r}")

    def scored(batch: torch.Tensor) -> torch.Tensor:
        s = score(batch)
        return torch.sigmoid(s) if squash == "sigmoid" else s

    report = throttled(progress)
    values = np.nan_to_num(np.asarray(attribution, dtype=np.float64).ravel(), nan=-np.inf)
    orders = [np.argsort(-values, kind="stable")]
    rng = np.random.default_rng(seed)
    orders += [rng.permutation(values.size) for _ in range(n_random)]
    curves: list[tuple[np.ndarray, np.ndarray]] = []
    with torch.no_grad():
        for i, order in enumerate(orders):
            report(i, len(orders), "faithfulness")
            curves.append(_curves(scored, tensor, baseline, order, n_steps, batch_size, cancel))
    report(len(orders), len(orders), "faithfulness: done")
    deletion, insertion = curves[0]
    del_random = np.mean([c[0] for c in curves[1:]], axis=0) if n_random else deletion
    ins_random = np.mean([c[1] for c in curves[1:]], axis=0) if n_random else insertion
    metrics = Faithfulness(
        deletion_auc=auc(deletion),
        deletion_auc_random=auc(del_random),
        insertion_auc=auc(insertion),
        insertion_auc_random=auc(ins_random),
        n_steps=n_steps,
        n_random=n_random,
    )
    named = {
        "deletion": deletion,
        "insertion": insertion,
        "deletion_random": del_random,
        "insertion_random": ins_random,
    }
    return metrics, named

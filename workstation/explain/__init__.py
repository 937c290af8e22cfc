"""Explanations for local models: Grad-CAM (3D), integrated gradients, occlusion.

Each map is a :class:`~workstation.core.volume.Volume` on the input's grid with provenance, and
its faithfulness is measured (pointing game, deletion / insertion AUC against random order).
Hooks are scoped and the model is never mutated. torch and captum are imported lazily.
"""

from __future__ import annotations

from workstation.explain._common import ExplainError, Target, region_target, target_fn
from workstation.explain.api import METHODS, Explanation, explain
from workstation.explain.attribution import baseline_like, integrated_gradients, occlusion
from workstation.explain.faithfulness import (
    Faithfulness,
    auc,
    deletion_insertion,
    pointing_game,
)
from workstation.explain.gradcam import capture_activation, gradcam

__all__ = [
    "METHODS",
    "ExplainError",
    "Explanation",
    "Faithfulness",
    "Target",
    "auc",
    "baseline_like",
    "capture_activation",
    "deletion_insertion",
    "explain",
    "gradcam",
    "integrated_gradients",
    "occlusion",
    "pointing_game",
    "region_target",
    "target_fn",
]

"""Train the two demonstration models of issue 8 reproducibly, on synthetic lesions only.

``demo-lesion-seg`` (:class:`~workstation.inference.architectures.LesionSegNet3D`) and
``demo-lesion-cls`` (:class:`~workstation.inference.architectures.LesionClsNet3D`) learn from
cases drawn by :mod:`workstation.inference.synthetic` out of the demo study (the ICBM 2009a
MNI152 template) at 2 mm, as 32³ patches. Seeds are fixed (numpy and torch), torch runs with
deterministic algorithms on the CPU, and held-out metrics come from seeds never used in training.

Usage::

    python resources/models/train_demo_models.py [--out resources/models] [--threads 2]

Writes ``<out>/demo-lesion-seg/{weights.pt,manifest.json}`` and
``<out>/demo-lesion-cls/{weights.pt,manifest.json}``. Takes a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
import torch
from torch import nn
from torch.nn import functional as F

from workstation.config import demo_study_path
from workstation.dicom import load_series
from workstation.inference.architectures import build, parameter_count
from workstation.inference.synthetic import (
    PATCH_SIZE,
    TRAINING_SPACING_MM,
    SyntheticCase,
    SyntheticConfig,
    TemplateBrain,
    case_for_seed,
    prepare_template,
)

OUT = Path(__file__).resolve().parent
VERSION = "0.1.0"
DISCLAIMER = "demonstration model — not for clinical use"
TRAINING_DATA = "synthetic lesions inserted into the ICBM 2009a MNI152 template; no patient data"
SEED = 20260801
TRAIN_SEEDS = range(0, 800)  # the shared training pool
SEG_EVAL_SEEDS = range(100_000, 100_048)  # held out, every case has >= 1 lesion
CLS_EVAL_SEEDS = range(200_000, 200_128)  # held out, lesion present with p = 0.5
CONFIG = SyntheticConfig()
SEG = {"name": "demo-lesion-seg", "architecture": "lesion-seg-unet3d", "steps": 300, "batch": 4}
CLS = {"name": "demo-lesion-cls", "architecture": "lesion-cls-cnn3d", "steps": 400, "batch": 8}
LEARNING_RATE = 2e-3


def load_template() -> TemplateBrain:
    """The demo study and its tissue labels at the training resolution."""
    series = demo_study_path()
    labels = sitk.GetArrayFromImage(
        sitk.ReadImage(str(series.parent / "brain_tissue_labels.nii.gz"))
    )
    return prepare_template(load_series(series), labels, spacing_mm=TRAINING_SPACING_MM)


def dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Dice of two binary masks (1.0 when both are empty)."""
    total = int(prediction.sum()) + int(truth.sum())
    return 1.0 if total == 0 else 2.0 * int((prediction & truth).sum()) / total


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC by ranks (Mann–Whitney U), ties given their mean rank."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool)
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    start = 0
    while start < len(scores):
        stop = start
        while stop + 1 < len(scores) and sorted_scores[stop + 1] == sorted_scores[start]:
            stop += 1
        ranks[order[start : stop + 1]] = (start + stop) / 2 + 1
        start = stop + 1
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if not n_pos or not n_neg:
        raise ValueError("AUC needs both classes")
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def training_distribution(pool: list[SyntheticCase]) -> dict[str, Any]:
    """Statistics of the training patches, for the pre-flight QC's out-of-distribution check."""
    inside = np.concatenate([c.image[c.brain] for c in pool])
    fractions = np.array([c.brain.mean() for c in pool])
    return {
        "brain_intensity_percentiles": {
            str(q): round(float(v), 3)
            for q, v in zip(
                (1, 5, 50, 95, 99), np.percentile(inside, [1, 5, 50, 95, 99]), strict=True
            )
        },
        "brain_intensity_mean": round(float(inside.mean()), 3),
        "brain_intensity_std": round(float(inside.std()), 3),
        "brain_fraction_of_patch": [
            round(float(fractions.min()), 3),
            round(float(fractions.max()), 3),
        ],
        "lesion_present_fraction": round(float(np.mean([c.present for c in pool])), 3),
    }


def _batch(
    pool: list[SyntheticCase], rng: np.random.Generator, size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images, masks and present flags of ``size`` pool cases, randomly flipped left–right."""
    picks = rng.integers(len(pool), size=size)
    images, masks = [], []
    for index in picks:
        image, mask = pool[index].image, pool[index].mask
        if rng.random() < 0.5:  # axis 2 is i (R→L)
            image, mask = image[:, :, ::-1], mask[:, :, ::-1]
        images.append(np.ascontiguousarray(image))
        masks.append(np.ascontiguousarray(mask))
    x = torch.from_numpy(np.stack(images))[:, None]
    y = torch.from_numpy(np.stack(masks)).long()
    return x, y, (y.flatten(1).amax(dim=1) > 0).float()


def seg_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy plus soft Dice of the lesion class (over the batch)."""
    probability = logits.softmax(dim=1)[:, 1]
    lesion = (target == 1).float()
    soft_dice = (2 * (probability * lesion).sum() + 1) / (probability.sum() + lesion.sum() + 1)
    return F.cross_entropy(logits, target) + (1 - soft_dice)


def train(
    spec: dict[str, Any], pool: list[SyntheticCase], seed: int
) -> tuple[nn.Module, float, list[float]]:
    """Train one model on ``pool``; return it, the seconds taken and the loss every 50 steps."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build(spec["architecture"])
    optimiser = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=LEARNING_RATE, total_steps=spec["steps"]
    )
    losses: list[float] = []
    running = 0.0
    started = time.perf_counter()
    model.train()
    for step in range(1, spec["steps"] + 1):
        x, y, present = _batch(pool, rng, spec["batch"])
        logits = model(x)
        if spec["architecture"] == "lesion-seg-unet3d":
            loss = seg_loss(logits, y)
        else:
            loss = F.binary_cross_entropy_with_logits(logits[:, 0], present)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        running += float(loss.detach())
        if step % 50 == 0:
            losses.append(round(running / 50, 4))
            print(f"  {spec['name']} step {step}: loss {running / 50:.4f}", flush=True)
            running = 0.0
    model.eval()
    return model, time.perf_counter() - started, losses


@torch.no_grad()
def evaluate_seg(model: nn.Module, cases: list[SyntheticCase]) -> dict[str, float]:
    """Mean per-case Dice (argmax of the logits) and the Dice pooled over all voxels."""
    scores, inter, total = [], 0, 0
    for case in cases:
        logits = model(torch.from_numpy(case.image)[None, None])
        prediction = logits.argmax(dim=1)[0].numpy().astype(bool)
        truth = case.mask.astype(bool)
        scores.append(dice(prediction, truth))
        inter += int((prediction & truth).sum())
        total += int(prediction.sum() + truth.sum())
    return {"dice_mean": float(np.mean(scores)), "dice_pooled": 2 * inter / max(total, 1)}


@torch.no_grad()
def evaluate_cls(model: nn.Module, cases: list[SyntheticCase]) -> dict[str, float]:
    """AUC and accuracy at probability 0.5."""
    x = torch.from_numpy(np.stack([c.image for c in cases]))[:, None]
    scores = torch.sigmoid(model(x))[:, 0].numpy()
    labels = np.array([c.present for c in cases])
    return {"auc": auc(scores, labels), "accuracy": float(((scores >= 0.5) == labels).mean())}


def manifest(
    spec: dict[str, Any],
    model: nn.Module,
    weights: Path,
    seconds: float,
    losses: list[float],
    metrics: dict[str, Any],
    distribution: dict[str, Any],
) -> dict[str, Any]:
    """The bundle manifest (see the report of issue 8 for the schema)."""
    segmentation = spec["architecture"] == "lesion-seg-unet3d"
    outputs: dict[str, Any] = (
        {
            "kind": "segmentation",
            "activation": "softmax",
            "labels": {"0": "background", "1": "lesion"},
        }
        if segmentation
        else {
            "kind": "classification",
            "activation": "sigmoid",
            "classes": {"0": "lesion absent", "1": "lesion present"},
            "threshold": 0.5,
        }
    )
    return {
        "name": spec["name"],
        "version": VERSION,
        "disclaimer": DISCLAIMER,
        "architecture": {"name": spec["architecture"], "config": model.config},
        "parameters": parameter_count(model),
        "weights": {
            "file": weights.name,
            "format": "torch.save(state_dict), load with weights_only=True",
            "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        },
        "input": {
            "modality": "MR",
            "sequence": "T1-weighted, skull-stripped",
            "orientation": "LPS",
            "axis_order": "kji",
            "spacing_mm": [TRAINING_SPACING_MM] * 3,
            "patch_size": [PATCH_SIZE] * 3,
            "size_multiple": 8,
            "channels": 1,
            "intensity_normalisation": {
                "method": "zscore",
                "mask": "brain: voxels > 0 of the skull-stripped image, after resampling",
                "reference": "workstation.inference.synthetic.zscore_in_brain",
            },
            "training_distribution": distribution,
        },
        "outputs": outputs,
        "intended_use": (
            f"{DISCLAIMER}. Demonstrates local inference and explanations in the Medical "
            "Workstation on brain T1 MR resampled to 2 mm; "
            + (
                "segments focal lesions (3-15 mm radius) in 32³ patches or sliding windows."
                if segmentation
                else "scores whether a 32³ patch (64 mm) contains a focal lesion; over a whole "
                "volume, slide the patch and take the maximum."
            )
        ),
        "training_data": TRAINING_DATA,
        "training": {
            "script": "resources/models/train_demo_models.py",
            "seed": SEED,
            "case_seeds": [TRAIN_SEEDS.start, TRAIN_SEEDS.stop - 1],
            "synthetic_config": {
                k: list(v) if isinstance(v, tuple) else v for k, v in vars(CONFIG).items()
            },
            "steps": spec["steps"],
            "batch": spec["batch"],
            "optimiser": f"AdamW, one-cycle lr max {LEARNING_RATE}",
            "loss_every_50_steps": losses,
            "seconds": round(seconds, 1),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "machine": platform.machine(),
        },
        "metrics": {"held_out": metrics},
    }


def main(argv: list[str] | None = None) -> None:
    """Train both models and write their bundles' weights and manifests."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    started = time.perf_counter()
    template = load_template()
    pool = [case_for_seed(template, seed, CONFIG) for seed in TRAIN_SEEDS]
    generation = time.perf_counter() - started
    print(f"template + {len(pool)} training cases: {generation:.1f} s", flush=True)
    distribution = training_distribution(pool)
    seg_cases = [case_for_seed(template, s, CONFIG, n_lesions=None) for s in SEG_EVAL_SEEDS]
    seg_eval = [
        c if c.present else case_for_seed(template, s, CONFIG, n_lesions=1)
        for c, s in zip(seg_cases, SEG_EVAL_SEEDS, strict=True)
    ]
    cls_eval = [case_for_seed(template, s, CONFIG) for s in CLS_EVAL_SEEDS]
    for spec, seed, evaluate, cases, seeds in (
        (SEG, SEED, evaluate_seg, seg_eval, SEG_EVAL_SEEDS),
        (CLS, SEED + 1, evaluate_cls, cls_eval, CLS_EVAL_SEEDS),
    ):
        model, seconds, losses = train(spec, pool, seed)
        metrics: dict[str, Any] = {k: round(v, 4) for k, v in evaluate(model, cases).items()}
        metrics |= {
            "n_cases": len(cases),
            "n_lesion_present": sum(c.present for c in cases),
            "seeds": [seeds.start, seeds.stop - 1],
        }
        folder = args.out / spec["name"]
        folder.mkdir(parents=True, exist_ok=True)
        weights = folder / "weights.pt"
        torch.save(model.state_dict(), weights)
        text = json.dumps(
            manifest(spec, model, weights, seconds, losses, metrics, distribution),
            indent=2,
            ensure_ascii=False,
        )
        (folder / "manifest.json").write_text(text + "\n", encoding="utf-8")
        print(f"{spec['name']}: {seconds:.1f} s training, held-out {metrics}", flush=True)
    print(f"total {time.perf_counter() - started:.1f} s (case generation {generation:.1f} s)")


if __name__ == "__main__":
    main()

"""Explanations: time of Grad-CAM, integrated gradients and occlusion vs one inference pass.

A small 3D CNN classifier (defined here, random weights with a fixed seed: timing does not
depend on training) on a 96³ input (``--quick``: 64³), CPU (CUDA when available):

- ``reference``: one inference forward pass, ``model(x)`` under ``torch.no_grad()``.
- ``ours``: :func:`workstation.explain.gradcam` on the last conv block (forward + backward
  through the head). Goal: ≤ 1.5× the forward pass.
- ``ig``: :func:`integrated_gradients` with ``n_steps`` and ``internal_batch_size`` as printed;
  ``occlusion``: :func:`occlusion` with the printed patch / stride / batch. Reported, no goal.
- ``faithfulness``: deletion + insertion curves (20 steps, 3 random orders; ``--quick``: 10, 1)
  of the Grad-CAM map, timed once. Reported.

IG and occlusion run once each (untimed warm-up skipped: they take seconds). With random
weights the faithfulness numbers are not meaningful; only their cost is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import _common as c

if TYPE_CHECKING:
    import torch

NAME = "explain"
GOAL = 1.5


def make_model() -> torch.nn.Module:
    """A small 3D CNN: four conv blocks (two strided), global average pool, one logit."""
    import torch
    from torch import nn

    def block(cin: int, cout: int, stride: int) -> nn.Module:
        return nn.Sequential(
            nn.Conv3d(cin, cout, 3, stride=stride, padding=1),
            nn.BatchNorm3d(cout),
            nn.ReLU(inplace=False),
        )

    class SmallCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(
                block(1, 8, 1), block(8, 16, 2), block(16, 32, 2), block(32, 32, 1)
            )
            self.head = nn.Linear(32, 1)

        @property
        def gradcam_layer(self) -> nn.Module:
            return self.features[-1]

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.features(x).mean(dim=(2, 3, 4)))

    torch.manual_seed(0)
    return SmallCNN().eval()


def main() -> None:
    args = c.parse_args(__doc__ or NAME, repeat=5, quick_repeat=3)
    import torch

    from workstation.explain import (
        baseline_like,
        deletion_insertion,
        gradcam,
        integrated_gradients,
        occlusion,
    )
    from workstation.explain._common import scores

    size = 64 if args.quick else 96
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = make_model().to(device)
    x = torch.randn(1, 1, size, size, size, device=device)
    ig_params = {"n_steps": 4 if args.quick else 16, "internal_batch_size": 4}
    patch = size // 2 if args.quick else size // 4
    faith_steps, faith_random = (10, 1) if args.quick else (20, 3)
    occ_params = {"patch": patch, "stride": patch, "batch_size": 8}
    windows = (size // patch) ** 3

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    def forward() -> object:
        with torch.no_grad():
            out = model(x)
        sync()
        return out

    def cam() -> object:
        out = gradcam(model, x, 0)
        sync()
        return out

    c.log(f"timing on {size}^3 ({device}), repeat {args.repeat} ...")
    fast = c.measure({"forward": forward, "gradcam": cam}, args.repeat)
    slow_repeat = 1
    slow = c.measure(
        {
            "ig": lambda: integrated_gradients(model, x, 0, **ig_params),
            "occlusion": lambda: occlusion(model, x, 0, **occ_params),
        },
        slow_repeat,
        warmup=False,
    )
    cam_map = gradcam(model, x, 0)[0]
    import time

    t0 = time.perf_counter()
    metrics, _ = deletion_insertion(
        scores(model, 0),
        x,
        cam_map,
        baseline=baseline_like(x),
        n_steps=faith_steps,
        n_random=faith_random,
    )
    faith_s = time.perf_counter() - t0

    ref = fast["forward"].best
    rows = [
        ("forward (inference)", "-", c.ms(ref), c.ms(fast["forward"].median), "1.00", "-"),
        (
            "Grad-CAM",
            "last conv block",
            c.ms(fast["gradcam"].best),
            c.ms(fast["gradcam"].median),
            f"{fast['gradcam'].best / ref:.2f}",
            c.goal_text(fast["gradcam"].best / ref <= GOAL),
        ),
        (
            "integrated gradients",
            f"{ig_params['n_steps']} steps, batch {ig_params['internal_batch_size']}",
            c.ms(slow["ig"].best),
            c.ms(slow["ig"].median),
            f"{slow['ig'].best / ref:.1f}",
            "-",
        ),
        (
            "occlusion",
            f"patch {patch}^3, stride {patch}, {windows} windows",
            c.ms(slow["occlusion"].best),
            c.ms(slow["occlusion"].median),
            f"{slow['occlusion'].best / ref:.1f}",
            "-",
        ),
        (
            "faithfulness (del+ins)",
            f"{faith_steps} steps, {faith_random} random",
            c.ms(faith_s),
            "-",
            "-",
            "-",
        ),
    ]
    c.print_table(
        f"Explanations on {size}^3, {device} (ratio = time / one forward pass)",
        ["method", "parameters", "best ms", "median ms", "ratio", "goal"],
        rows,
    )
    ratio = fast["gradcam"].best / ref
    c.emit(
        {
            "benchmark": NAME,
            "ours": fast["gradcam"].best,
            "reference": ref,
            "reference_name": f"one forward pass of the same model on {size}^3 ({device})",
            "ratio": ratio,
            "goal": f"Grad-CAM <= {GOAL}x one forward pass",
            "goal_met": ratio <= GOAL,
            "ours_median": fast["gradcam"].median,
            "reference_median": fast["forward"].median,
            "size": size,
            "device": device,
            "ig_s": slow["ig"].best,
            "ig_ratio": slow["ig"].best / ref,
            "ig_params": ig_params,
            "occlusion_s": slow["occlusion"].best,
            "occlusion_ratio": slow["occlusion"].best / ref,
            "occlusion_params": {**occ_params, "windows": windows},
            "faithfulness_s": faith_s,
            "faithfulness_gradcam": metrics.as_dict(),
            "environment": {**c.environment(), "torch": torch.__version__},
        }
    )


if __name__ == "__main__":
    main()

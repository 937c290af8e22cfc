"""Inference runtime: ``run_segmentation`` vs the bare model forward pass on the same tensor.

On a demo-sized MR-like volume (197 × 233 × 189 at 1 mm, the MNI152 grid, slightly oblique;
``--quick``: 98 × 116 × 94) with a small 3D U-Net (the shared ``LesionSegNet3D`` when present,
else the same-shaped net defined here), both on the CPU (CUDA when present):

- ``ours``: :func:`workstation.inference.run_segmentation`: QC, reorient + resample to 2 mm,
  normalise, pad, sliding-window inference (patch 64³, overlap 0.5, Gaussian weighting, batch 2;
  ``--quick``: patch 48³), softmax, mapping probabilities back to the 1 mm input grid, argmax.
- ``reference``: ``model(x)`` once over the whole preprocessed (padded) tensor under
  ``torch.inference_mode()``: the least any pipeline must do.

``ratio`` is the overhead of preprocessing, windowing (overlapping windows recompute voxels) and
mapping back. The stages are timed separately and printed, and two variants for context
(overlap 0.25; one window covering the whole grid: the pure pre/post overhead). Peak memory
(RSS increase of one call in a fresh process, volume and model construction included) is
reported for both.

On a shared, oversubscribed CPU, torch's OpenMP threads spin-wait and timings swing tenfold; run
with ``OMP_NUM_THREADS=1`` there for stable ratios (``torch_threads`` in the JSON says which).
"""

from __future__ import annotations

import time
from typing import Any

import _common as c
import numpy as np

NAME = "inference"
FULL_SIZE = (197, 233, 189)  # i, j, k
QUICK_SIZE = (98, 116, 94)


def make_volume(quick: bool) -> Any:
    """An oblique MR-like head phantom: skull rim, brain, noise, bright lesion."""
    from scipy.spatial.transform import Rotation

    from workstation.core.volume import Volume

    ni, nj, nk = QUICK_SIZE if quick else FULL_SIZE
    rng = np.random.default_rng(0)
    k, j, i = np.meshgrid(
        np.linspace(-1, 1, nk, dtype=np.float32),
        np.linspace(-1, 1, nj, dtype=np.float32),
        np.linspace(-1, 1, ni, dtype=np.float32),
        indexing="ij",
    )
    r = np.sqrt(i**2 + j**2 + k**2)
    array = np.where(r < 0.85, 600.0, 0.0) + np.where((r >= 0.85) & (r < 0.95), 300.0, 0.0)
    array += 150.0 * np.sin(6 * i) * np.cos(4 * j) * (r < 0.85)
    array += np.where(((i - 0.3) ** 2 + (j + 0.2) ** 2 + k**2) < 0.02, 500.0, 0.0)
    array += rng.normal(0, 20, size=array.shape)
    spacing = (1.0, 1.0, 1.0)
    direction = Rotation.from_euler("x", 3.0, degrees=True).as_matrix()
    origin = -(direction * np.asarray(spacing)) @ ((np.array([ni, nj, nk]) - 1) / 2)
    return Volume(
        np.clip(array, 0, None).astype(np.float32),
        spacing,
        tuple(origin),
        direction,
        metadata={"modality": "MR"},
    )


def make_model() -> tuple[Any, str]:
    """The shared demo U-Net when importable, else a local one of the same shape."""
    import torch

    torch.manual_seed(0)
    try:
        from workstation.inference.architectures import LesionSegNet3D
    except ImportError:
        return _local_unet_class()(), "local 3D U-Net (8-16-24-32)"
    return LesionSegNet3D(), "LesionSegNet3D (8-16-24-32)"


def _local_unet_class() -> Any:
    import torch
    from torch import nn

    def block(a: int, b: int) -> nn.Module:
        return nn.Sequential(
            nn.Conv3d(a, b, 3, padding=1),
            nn.InstanceNorm3d(b, affine=True),
            nn.LeakyReLU(0.01),
            nn.Conv3d(b, b, 3, padding=1),
            nn.InstanceNorm3d(b, affine=True),
            nn.LeakyReLU(0.01),
        )

    class LocalUNet(nn.Module):
        def __init__(self, ch: tuple[int, ...] = (8, 16, 24, 32)) -> None:
            super().__init__()
            self.enc = nn.ModuleList([block(1, ch[0]), block(ch[0], ch[1]), block(ch[1], ch[2])])
            self.mid = block(ch[2], ch[3])
            self.up = nn.ModuleList(
                [nn.ConvTranspose3d(ch[n + 1], ch[n], 2, stride=2) for n in (2, 1, 0)]
            )
            self.dec = nn.ModuleList([block(2 * ch[n], ch[n]) for n in (2, 1, 0)])
            self.head = nn.Conv3d(ch[0], 2, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            skips = []
            for enc in self.enc:
                x = enc(x)
                skips.append(x)
                x = nn.functional.max_pool3d(x, 2)
            x = self.mid(x)
            for up, dec, skip in zip(self.up, self.dec, reversed(skips), strict=True):
                x = dec(torch.cat([up(x), skip], 1))
            return self.head(x)

    return LocalUNet


def settings(quick: bool) -> dict[str, Any]:
    from workstation.inference.preprocess import InputSpec

    spec = InputSpec.from_manifest(
        {
            "modality": "MR",
            "orientation": "RAS",
            "spacing": [2, 2, 2],
            "normalisation": {"method": "zscore", "mask": "nonzero"},
            "divisor": 8,
        }
    )
    patch = (48, 48, 48) if quick else (64, 64, 64)
    return {"spec": spec, "patch_size": patch, "overlap": 0.5, "batch_size": 2}


def run_ours(quick: bool) -> Any:
    """Build volume and model, run ``run_segmentation`` (memory-child target)."""
    from workstation.inference.runtime import run_segmentation

    volume, (model, _) = make_volume(quick), make_model()
    s = settings(quick)
    probs, _labels = run_segmentation(model, volume, s.pop("spec"), **s)
    return probs


def run_reference(quick: bool) -> Any:
    """Build volume and model, preprocess, one bare forward pass (memory-child target)."""
    import torch

    from workstation.inference.preprocess import preprocess

    volume, (model, _) = make_volume(quick), make_model()
    prepared = preprocess(volume, settings(quick)["spec"])
    with torch.inference_mode():
        return model.eval()(torch.from_numpy(prepared.array)[None, None]).numpy()


def main() -> None:
    args = c.parse_args(__doc__.splitlines()[0], repeat=3, quick_repeat=2)
    import torch

    from workstation.inference.device import choose_device
    from workstation.inference.preprocess import preprocess, to_original
    from workstation.inference.runtime import run_segmentation
    from workstation.inference.sliding_window import WindowRun, sliding_window_inference

    volume = make_volume(args.quick)
    model, model_name = make_model()
    model.eval()
    s = settings(args.quick)
    spec = s.pop("spec")
    choice = choose_device()
    device = choice.torch_device()
    c.log(f"device: {choice.device} ({choice.reason}); model: {model_name}")
    prepared = preprocess(volume, spec)
    tensor = torch.from_numpy(prepared.array)[None, None]

    def ours() -> Any:
        return run_segmentation(model, volume, spec, device=choice, **s)

    def reference() -> Any:
        with torch.inference_mode():
            out = model.to(device)(tensor.to(device)).float().cpu()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return out

    timings = c.measure({"ours": ours, "reference": reference}, args.repeat)

    # Stage breakdown (one run each).
    stages: dict[str, float] = {}
    t0 = time.perf_counter()
    prepared = preprocess(volume, spec)
    stages["preprocess"] = time.perf_counter() - t0
    run = WindowRun()
    t0 = time.perf_counter()
    with torch.inference_mode():
        logits = sliding_window_inference(
            tensor,
            model,
            s["patch_size"],
            overlap=s["overlap"],
            batch_size=s["batch_size"],
            device=device,
            run=run,
        )
        lesion = torch.softmax(logits, 1)[0, -1].numpy()  # runtime maps back P(lesion) only
    stages["sliding_window"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    to_original(lesion, prepared)
    stages["map_back"] = time.perf_counter() - t0

    # Context, one run each: fewer overlapping windows, and one window covering the whole grid
    # (what remains is the pure overhead of QC, preprocessing, softmax and mapping back).
    variants: dict[str, float] = {}
    whole = tuple(int(n) for n in prepared.array.shape)
    for label, changes in (
        ("overlap 0.25", {"overlap": 0.25}),
        (f"one window ({'×'.join(map(str, whole))})", {"patch_size": whole, "batch_size": 1}),
    ):
        t0 = time.perf_counter()
        run_segmentation(model, volume, spec, device=choice, **{**s, **changes})
        variants[label] = time.perf_counter() - t0

    c.log("peak memory (fresh processes) ...")
    mem_ours = c.peak_memory("inference:run_ours", args.quick)
    mem_ref = c.peak_memory("inference:run_reference", args.quick)

    best, ref = timings["ours"].best, timings["reference"].best
    shape = volume.shape
    c.print_table(
        f"Segmentation of {shape[2]}×{shape[1]}×{shape[0]} (i×j×k) at 1 mm → 2 mm grid "
        f"{'×'.join(map(str, prepared.array.shape[::-1]))}, {model_name}, {choice.device}",
        ["what", "best ms", "median ms", "peak MiB"],
        [
            [
                "ours: run_segmentation",
                c.ms(best),
                c.ms(timings["ours"].median),
                c.mib(mem_ours.increase),
            ],
            [
                "reference: model(x), whole tensor",
                c.ms(ref),
                c.ms(timings["reference"].median),
                c.mib(mem_ref.increase),
            ],
        ],
    )
    c.print_table(
        f"Stages of ours ({run.windows} windows of {s['patch_size'][0]}³, overlap {s['overlap']})",
        ["stage", "ms"],
        [[k, c.ms(v)] for k, v in stages.items()],
    )
    c.print_table(
        "Context: run_segmentation with other window settings (one run each)",
        ["variant", "ms", "× reference"],
        [[k, c.ms(v), f"{v / ref:.2f}"] for k, v in variants.items()],
    )
    c.emit(
        {
            "benchmark": NAME,
            "ours": best,
            "reference": ref,
            "reference_name": "bare model forward pass over the whole preprocessed tensor",
            "ratio": best / ref,
            "ours_median": timings["ours"].median,
            "reference_median": timings["reference"].median,
            "stages_s": stages,
            "variants_s": variants,
            "windows": run.windows,
            "patch_size": list(s["patch_size"]),
            "overlap": s["overlap"],
            "model": model_name,
            "device": choice.device,
            "input_shape": list(shape),
            "model_grid_shape": list(prepared.array.shape),
            "peak_memory_ours_bytes": mem_ours.increase,
            "peak_memory_reference_bytes": mem_ref.increase,
            "peak_memory_exact": mem_ours.exact and mem_ref.exact,
            "quick": args.quick,
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            **c.environment(),
        }
    )


if __name__ == "__main__":
    main()

"""``workstation analyze`` end to end on the demo lesion study vs the bare model forward pass.

On the bundled demo lesion series (189 × 233 × 197 at 1 mm, JPEG-LS; ``--quick``: the same, one
timed run and no explanation):

- ``ours``: what ``workstation analyze resources/demo/brain_mr_lesion --model demo-lesion-seg
  --confirm-with demo-lesion-cls --explain gradcam --out DIR`` does, in-process: verify and load
  both models from their signed bundles, load the DICOM series, QC, preprocess, sliding-window
  segmentation, candidate confirmation, Grad-CAM with deletion/insertion faithfulness, save
  the result encrypted into a store, write SEG, SR, parametric map, NIfTI and FHIR.
- ``reference``: the least any pipeline must do: one forward pass of the same segmentation
  network over the whole preprocessed (2 mm, padded) volume under ``torch.inference_mode()``.

``ratio`` is the overhead of everything around the network: I/O, verification, windowing,
explanation, faithfulness and writing outputs. The stages are printed separately. CPU (CUDA when
present).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import _common as c

NAME = "analyze"
REPO = Path(__file__).resolve().parents[1]
SERIES = REPO / "resources" / "demo" / "brain_mr_lesion"


def main() -> None:
    args = c.parse_args(__doc__ or NAME, repeat=3, quick_repeat=1)
    import torch

    from workstation.dicom import load_series
    from workstation.inference.catalogue import load_model
    from workstation.inference.preprocess import preprocess
    from workstation.security.aead import DataKeyRing
    from workstation.security.sign import HybridSigningKey
    from workstation.store import ResultStore
    from workstation.workflow.analysis_outputs import source_headers, write_outputs
    from workstation.workflow.analysis_store import save_analysis
    from workstation.workflow.analyze import AnalysisRequest, analyze

    explain = None if args.quick else "gradcam"
    secret = b"benchmark-site-secret-0123456789"
    work = Path(tempfile.mkdtemp(prefix="medws-bench-analyze-"))
    store = ResultStore.open(
        f"sqlite:///{work / 'results.db'}",
        keys=DataKeyRing.generate(),
        signer=HybridSigningKey.generate(),
        actor="benchmark",
    )
    stages: dict[str, list[float]] = {}

    def stage(name: str, t0: float) -> float:
        now = time.perf_counter()
        stages.setdefault(name, []).append(now - t0)
        return now

    runs = {"n": 0}

    def end_to_end() -> object:
        runs["n"] += 1
        t = time.perf_counter()
        volume = load_series(SERIES)
        t = stage("load DICOM", t)
        request = AnalysisRequest(
            model="demo-lesion-seg", explain=explain, confirm_with="demo-lesion-cls"
        )
        analysis = analyze(volume, request)
        for name, seconds in analysis.provenance["stage_seconds"].items():
            stages.setdefault(f"analyze: {name}", []).append(seconds)
        t = stage("analyze", t)
        result_id = save_analysis(analysis, store=store, secret=secret)
        t = stage("save encrypted", t)
        headers = source_headers(SERIES, volume.metadata["series_uid"], volume)
        write_outputs(
            analysis, work / f"out{runs['n']}", source=headers, secret=secret, result_id=result_id
        )
        stage("write outputs", t)
        return analysis

    seg = load_model("demo-lesion-seg")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    net = seg.module.to(device)
    prepared = preprocess(load_series(SERIES), seg.info.spec())
    x = torch.from_numpy(prepared.array)[None, None].to(device)

    def forward() -> object:
        with torch.inference_mode():
            out = net(x)
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    c.log(f"analyze end to end vs forward on {tuple(x.shape[2:])} ({device}) ...")
    timings = c.measure({"forward": forward, "analyze": end_to_end}, args.repeat)
    store.close()
    ours, ref = timings["analyze"].best, timings["forward"].best
    rows = [
        (name, c.ms(min(values)), f"{min(values) / ref:.1f}x") for name, values in stages.items()
    ]
    rows.append(("analyze end to end", c.ms(ours), f"{ours / ref:.1f}x"))
    rows.append(("reference: model forward", c.ms(ref), "1.0x"))
    c.print_table(
        f"analyze on the demo lesion series ({device}; best of {args.repeat})",
        ["stage", "time", "vs forward"],
        rows,
    )
    c.emit(
        {
            "benchmark": NAME,
            "ours": ours,
            "reference": ref,
            "reference_name": f"one forward pass of demo-lesion-seg on the preprocessed volume "
            f"{tuple(x.shape[2:])} ({device})",
            "ratio": ours / ref,
            "ours_median": timings["analyze"].median,
            "reference_median": timings["forward"].median,
            "stages_best_s": {name: min(values) for name, values in stages.items()},
            "explain": explain,
            "device": device,
            "environment": {**c.environment(), "torch": torch.__version__},
        }
    )


if __name__ == "__main__":
    main()

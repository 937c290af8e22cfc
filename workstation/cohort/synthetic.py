"""A generated cohort for tests and the demonstration: small studies, broken ones, outliers.

Every study is the demo brain (``resources/demo/brain_mr``, the MNI152 T1 template) resampled
to about 3.5 mm voxels (a few hundred kB of DICOM), with scanner-like variation drawn from one
seeded generator: a global intensity scale (×0.75–1.3), Rician-like noise (1–3 % of the brain
mean) and, in about half of them, one soft-edged ellipsoid lesion (4–10 mm semi-axes, ±40–70 %
contrast) as in :mod:`workstation.inference.synthetic`. Then some are spoilt on purpose:

- **broken** (cannot be analysed): ``corrupt`` (one slice's pixel data cut short among good
  files) and ``empty`` (a folder holding only a truncated DICOM file and an empty one);
- **outliers** (load and analyse, but are not like the rest): ``intensity`` (values ×20),
  ``noise`` (noise at 40 % of the brain mean), ``missing`` (a third of the slices missing) and
  ``modality`` (labelled CT).

``DIR/truth.json`` lists each study's folder, its ``study_key`` when ``DIR`` is the source
(:func:`workstation.cohort.sources.study_key`), its kind and what was planted. Names, UIDs and
dates are synthetic; the same seed gives the same cohort.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from workstation.cohort.sources import study_key
from workstation.core.volume import Volume

__all__ = ["BROKEN_KINDS", "OUTLIER_KINDS", "make_cohort"]

BROKEN_KINDS = ("corrupt", "empty")
OUTLIER_KINDS = ("intensity", "noise", "missing", "modality")
TARGET_SPACING_MM = 3.5
_DEMO = Path(__file__).resolve().parents[2] / "resources" / "demo" / "brain_mr"


def _template(source: Path) -> Volume:
    """The demo brain at about :data:`TARGET_SPACING_MM` (float32, stored values)."""
    from scipy import ndimage

    from workstation.dicom import load_series

    volume = load_series(source)
    array = np.asarray(volume.array, dtype=np.float32)
    factor = volume.spacing[0] / TARGET_SPACING_MM  # isotropic 1 mm source
    small = ndimage.zoom(array, factor, order=1, prefilter=False)
    spacing = tuple(
        float(s * n / m)
        for s, n, m in zip(volume.spacing, array.shape[::-1], small.shape[::-1], strict=True)
    )
    return Volume(small, spacing, volume.origin, volume.direction)  # type: ignore[arg-type]


def _lesion(rng: np.random.Generator, image: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    from scipy import ndimage

    brain = image > 0.1 * image.max()
    inner = ndimage.binary_erosion(brain, iterations=3)
    candidates = np.argwhere(inner if inner.any() else brain)
    centre = candidates[rng.integers(len(candidates))]
    radii_mm = rng.uniform(4.0, 10.0, size=3)
    k, j, i = np.indices(image.shape, dtype=np.float32)
    sk, sj, si = spacing[2], spacing[1], spacing[0]
    distance = np.sqrt(
        ((k - centre[0]) * sk / radii_mm[0]) ** 2
        + ((j - centre[1]) * sj / radii_mm[1]) ** 2
        + ((i - centre[2]) * si / radii_mm[2]) ** 2
    )
    alpha = np.clip((1.15 - distance) / 0.3, 0.0, 1.0) * brain
    contrast = rng.uniform(0.4, 0.7) * rng.choice([-1.0, 1.0])
    target = float(image[brain].mean()) * (1.0 + contrast)
    return image * (1.0 - alpha) + target * alpha


def _noisy(rng: np.random.Generator, image: np.ndarray, sigma: float) -> np.ndarray:
    real = image + rng.normal(0.0, sigma, image.shape)
    imaginary = rng.normal(0.0, sigma, image.shape)
    return np.sqrt(real**2 + imaginary**2)  # Rician, as a magnitude image


def _study(
    rng: np.random.Generator, template: Volume, outlier: str | None
) -> tuple[np.ndarray, bool]:
    image = np.asarray(template.array, dtype=np.float64) * rng.uniform(0.75, 1.3)
    lesion = bool(rng.random() < 0.5)
    if lesion:
        image = _lesion(rng, image, template.spacing)
    mean = float(image[image > 0.1 * image.max()].mean())
    sigma = (0.4 if outlier == "noise" else rng.uniform(0.01, 0.03)) * mean
    image = _noisy(rng, image, sigma)
    if outlier == "intensity":
        image = image * 20.0
    return np.clip(np.rint(image), 0, 65535).astype(np.uint16), lesion


def _spoil(folder: Path, files: list[Path], kind: str, rng: np.random.Generator) -> None:
    if kind == "missing":  # every third slice of the middle two thirds
        n = len(files)
        for path in files[n // 6 : n - n // 6 : 3]:
            path.unlink()
    elif kind == "corrupt":  # a good header, then its pixel data cut short
        victim = files[len(files) // 2 + int(rng.integers(-3, 4))]
        data = victim.read_bytes()
        victim.write_bytes(data[: len(data) - len(data) // 3])
    elif kind == "empty":
        data = files[0].read_bytes()
        for path in files:
            path.unlink()
        (folder / "IM00001.dcm").write_bytes(data[:300])
        (folder / "IM00002.dcm").write_bytes(b"")


def make_cohort(
    out: str | Path,
    *,
    studies: int = 12,
    broken: int = 2,
    outliers: int = 2,
    seed: int = 0,
    source: str | Path = _DEMO,
) -> dict[str, Any]:
    """Write the cohort into ``out`` (``study_0000`` ...) and ``out/truth.json``; returns it."""
    from workstation.dicom.synthetic import SeriesSpec, write_series

    if broken + outliers > studies:
        raise ValueError("broken + outliers must not exceed the number of studies")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    template = _template(Path(source))
    rng = np.random.default_rng(seed)
    order = rng.permutation(studies)
    kinds: dict[int, tuple[str, str]] = {}
    for n, index in enumerate(order[:broken]):
        kinds[int(index)] = ("broken", BROKEN_KINDS[n % len(BROKEN_KINDS)])
    for n, index in enumerate(order[broken : broken + outliers]):
        kinds[int(index)] = ("outlier", OUTLIER_KINDS[n % len(OUTLIER_KINDS)])
    records = []
    for index in range(studies):
        study_rng = np.random.default_rng([seed, index])
        kind, detail = kinds.get(index, ("normal", ""))
        stored, lesion = _study(study_rng, template, detail if kind == "outlier" else None)
        name = f"study_{index:04d}"
        folder = out / name
        for old in folder.glob("*.dcm") if folder.exists() else ():
            old.unlink()
        spec = SeriesSpec(
            modality="CT" if detail == "modality" else "MR",
            patient_name=f"COHORT^SYNTHETIC{index:04d}",
            patient_id=f"COH{seed:04d}{index:05d}",
            study_description="Synthetic cohort study",
            series_description="T1 axial 3.5mm synthetic (demo cohort)",
            accession_number=f"COH-{seed}-{index}",
            uid_prefix=f"medical-workstation-cohort-{seed}-{index}",
            window_center=float(np.percentile(stored, 99) / 2),
            window_width=float(np.percentile(stored, 99)),
        )
        files = write_series(
            folder,
            stored,
            spacing=template.spacing,
            origin=template.origin,
            direction=template.direction,
            spec=spec,
        )
        if detail in ("missing", "corrupt", "empty"):
            _spoil(folder, files, detail, study_rng)
        records.append(
            {
                "folder": name,
                "key": study_key(f"folder:{name}"),
                "kind": kind,
                "detail": detail,
                "lesion": lesion,
            }
        )
    truth = {
        "seed": seed,
        "spacing_mm": [round(s, 3) for s in template.spacing],
        "studies": records,
        "broken": [r["key"] for r in records if r["kind"] == "broken"],
        "outliers": [r["key"] for r in records if r["kind"] == "outlier"],
    }
    (out / "truth.json").write_text(json.dumps(truth, indent=2) + "\n", encoding="utf-8")
    return truth

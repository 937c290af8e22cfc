"""A deterministic synthetic reference validation set with strata, shipped inside model bundles.

:func:`make_validation_set` draws cases with :func:`workstation.inference.synthetic.make_case`
in every cell of three synthetic strata (2 × 2 × 2 = 8 cells, ``n_per_stratum`` cases each):

``scanner``
    ``"A"``: low noise, mild bias field; ``"B"``: high noise, strong bias field (the
    :class:`~workstation.inference.synthetic.SyntheticConfig` ``noise`` / ``bias``).
``sex``
    ``"F"`` / ``"M"``: the template's intensities scaled by 0.98 / 1.02 before normalisation.
    Purely synthetic: a stand-in for a subject covariate, not a model of real sex differences.
``age_group``
    ``"young"`` / ``"old"``: for ``"old"`` the white matter is made 4 % darker (lower grey/white
    contrast, a crude synthetic proxy for ageing), for ``"young"`` it is unchanged.

Paired design: draw ``d`` (one random stream, ``default_rng([seed, d])``: same patch,
deformation, lesions and noise quantiles) is rendered in two complementary cells, e.g.
(A, F, young) and (B, M, old), so every draw appears once on each side of every stratum and a
metric gap across a stratum reflects the strata's effects rather than which cases were drawn.
The four complementary pairs rotate with ``d`` (all 8 cells get ``n_per_stratum`` cases; sex and
age effects balance out across scanners). Draws ``d // 4`` odd have no lesion (for the
classifier's AUC), the others 1 or 2 lesions. Images are stored as float16.

:meth:`ValidationSet.save` writes ``validation_set.npz`` (compressed arrays) and
``validation_set.json`` (the manifest: strata per case, how the set was made, the npz SHA-256),
two files that can travel in a model bundle; :meth:`ValidationSet.load` checks the hash.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workstation.inference.synthetic import SyntheticConfig, TemplateBrain, make_case

__all__ = [
    "MANIFEST_NAME",
    "NPZ_NAME",
    "SCANNERS",
    "STRATA",
    "ValidationSet",
    "ValidationSetError",
    "make_validation_set",
]

FORMAT = "medws-validation-set"
FORMAT_VERSION = 1
NPZ_NAME = "validation_set.npz"
MANIFEST_NAME = "validation_set.json"

STRATA: dict[str, tuple[str, ...]] = {
    "scanner": ("A", "B"),
    "sex": ("F", "M"),
    "age_group": ("young", "old"),
}
SCANNERS: dict[str, dict[str, Any]] = {
    "A": {"noise": (0.01, 0.025), "bias": 0.1},
    "B": {"noise": (0.03, 0.05), "bias": 0.25},
}
INTENSITY_SCALE = {"F": 0.98, "M": 1.02}
WHITE_MATTER_FACTOR = {"young": 1.0, "old": 0.96}
EFFECTS = {
    "scanner": {k: f"noise {v['noise']}, bias {v['bias']}" for k, v in SCANNERS.items()},
    "sex": {
        k: f"template intensity x{v} (synthetic covariate)" for k, v in INTENSITY_SCALE.items()
    },
    "age_group": {
        k: f"white matter intensity x{v} (synthetic)" for k, v in WHITE_MATTER_FACTOR.items()
    },
}


class ValidationSetError(ValueError):
    """A validation set on disk is missing, malformed or does not match its manifest."""


@dataclass(frozen=True)
class ValidationSet:
    """Cases (z-scored 32³ patches), lesion masks, presence flags and strata labels per case."""

    images: np.ndarray  # float16 [n, k, j, i]
    masks: np.ndarray  # uint8 [n, k, j, i]
    present: np.ndarray  # bool [n]
    strata: Mapping[str, tuple[str, ...]]  # stratum name -> label of each case
    seed: int
    n_per_stratum: int
    info: Mapping[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def image(self, index: int) -> np.ndarray:
        """Case ``index`` as float32 (the models' input dtype)."""
        return self.images[index].astype(np.float32)

    def manifest(self) -> dict[str, Any]:
        """The JSON manifest (without the npz hash, which :meth:`save` adds)."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "seed": self.seed,
            "n_per_stratum": self.n_per_stratum,
            "n_cases": len(self),
            "n_lesion_present": int(self.present.sum()),
            "patch_size": list(self.images.shape[1:]),
            "strata": {name: list(values) for name, values in STRATA.items()},
            "effects": EFFECTS,
            "cases": [
                {"index": i, "present": bool(self.present[i])}
                | {name: labels[i] for name, labels in self.strata.items()}
                for i in range(len(self))
            ],
            "data": "synthetic lesions in the ICBM 2009a MNI152 template; no patient data",
            **dict(self.info),
        }

    def save(self, folder: str | Path) -> tuple[Path, Path]:
        """Write ``validation_set.npz`` and ``validation_set.json`` into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        npz = folder / NPZ_NAME
        np.savez_compressed(npz, images=self.images, masks=self.masks, present=self.present)
        manifest = self.manifest() | {"npz_sha256": _sha256(npz)}
        path = folder / MANIFEST_NAME
        path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
        return npz, path

    @classmethod
    def load(cls, folder: str | Path) -> ValidationSet:
        """Read a set written by :meth:`save` (``folder`` or either of its two files)."""
        folder = Path(folder)
        if folder.is_file():
            folder = folder.parent
        npz, path = folder / NPZ_NAME, folder / MANIFEST_NAME
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ValidationSetError(f"cannot read {path}: {e}") from e
        if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
            raise ValidationSetError(f"{path} is not a {FORMAT} v{FORMAT_VERSION} manifest")
        if not npz.is_file() or _sha256(npz) != manifest.get("npz_sha256"):
            raise ValidationSetError(f"{npz} is missing or does not match its manifest")
        with np.load(npz, allow_pickle=False) as data:
            images, masks, present = data["images"], data["masks"], data["present"]
        cases = manifest["cases"]
        if len(cases) != len(images) or not np.array_equal(
            present, [bool(c["present"]) for c in cases]
        ):
            raise ValidationSetError(f"{path}: the cases do not match the arrays")
        strata = {name: tuple(str(c[name]) for c in cases) for name in manifest["strata"]}
        return cls(
            images=images,
            masks=masks,
            present=present.astype(bool),
            strata=strata,
            seed=int(manifest["seed"]),
            n_per_stratum=int(manifest["n_per_stratum"]),
        )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _variant(template: TemplateBrain, scale: float, wm_factor: float) -> TemplateBrain:
    """The template times ``scale``, its white matter times ``wm_factor`` (same geometry)."""
    factor = np.where(template.white_matter, np.float32(scale * wm_factor), np.float32(scale))
    return TemplateBrain(
        image=(template.image * factor).astype(np.float32),
        brain=template.brain,
        white_matter=template.white_matter,
        spacing_mm=template.spacing_mm,
        mean=template.mean,  # normalise with the original template's statistics, like training
        std=template.std,
    )


def _other(stratum: str, value: str) -> str:
    first, second = STRATA[stratum]
    return second if value == first else first


def make_validation_set(
    template: TemplateBrain, *, n_per_stratum: int = 6, seed: int = 20260901
) -> ValidationSet:
    """Draw ``n_per_stratum`` cases in each of the 8 strata cells (deterministic in ``seed``).

    Parameters
    ----------
    template
        From :func:`workstation.inference.synthetic.prepare_template` (the demo study).
    n_per_stratum
        Cases per cell (scanner × sex × age group); each stratum value gets 4 × as many.
    seed
        The set's seed; draw ``d`` uses ``default_rng([seed, d])`` in its two cells.
    """
    if n_per_stratum < 1:
        raise ValueError("n_per_stratum must be >= 1")
    images, masks, present = [], [], []
    labels: dict[str, list[str]] = {name: [] for name in STRATA}
    variants = {
        (sex, age): _variant(template, INTENSITY_SCALE[sex], WHITE_MATTER_FACTOR[age])
        for sex, age in itertools.product(STRATA["sex"], STRATA["age_group"])
    }
    configs = {scanner: SyntheticConfig(**SCANNERS[scanner]) for scanner in STRATA["scanner"]}
    pairs = list(itertools.product(STRATA["sex"], STRATA["age_group"]))
    for d in range(4 * n_per_stratum):
        n_lesions = 0 if (d // 4) % 2 else 1 + (d // 8) % 2
        sex, age = pairs[d % 4]
        other = (_other("sex", sex), _other("age_group", age))
        for scanner, key in (("A", (sex, age)), ("B", other)):
            rng = np.random.default_rng([seed, d])
            case = make_case(variants[key], rng, configs[scanner], n_lesions=n_lesions)
            images.append(case.image.astype(np.float16))
            masks.append(case.mask)
            present.append(case.present)
            for name, value in zip(STRATA, (scanner, *key), strict=True):
                labels[name].append(value)
    return ValidationSet(
        images=np.stack(images),
        masks=np.stack(masks),
        present=np.array(present, dtype=bool),
        strata={name: tuple(values) for name, values in labels.items()},
        seed=seed,
        n_per_stratum=n_per_stratum,
    )

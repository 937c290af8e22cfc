"""Synthetic pathology in the real MNI152 brain: the demonstration models' training data.

The source is the demo study (the ICBM 2009a MNI152 T1 template, skull-stripped, 1 mm) and its
tissue labels. :func:`prepare_template` resamples both to the training resolution
(:data:`TRAINING_SPACING_MM`, 2 mm isotropic) and normalises the intensities;
:func:`make_case` then cuts a patch (:data:`PATCH_SIZE`\\ ³ voxels = 64 mm at 2 mm) and turns it
into one case:

1. a random smooth (elastic-ish) deformation of the patch, up to a few mm;
2. 0–``max_lesions`` lesions: ellipsoids with radii in ``radius_mm`` (3–15 mm by default),
   randomly rotated, with a smooth random deformation of their surface and a soft edge, hyper- or
   hypo-intense, centred inside the brain (white matter preferred) and clipped to the brain mask;
3. a smooth multiplicative bias field and Rician noise;
4. the intensity normalisation every model input gets (:func:`zscore_in_brain`'s statistics).

Everything is drawn from one :class:`numpy.random.Generator`, so a seed gives the same case.
Arrays are ``[k, j, i]`` like :class:`~workstation.core.volume.Volume`, in the template's LPS
orientation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from workstation.core.volume import Volume

__all__ = [
    "PATCH_SIZE",
    "TRAINING_SPACING_MM",
    "Lesion",
    "SyntheticCase",
    "SyntheticConfig",
    "TemplateBrain",
    "case_for_seed",
    "make_case",
    "prepare_template",
    "zscore_in_brain",
]

TRAINING_SPACING_MM = 2.0
PATCH_SIZE = 32
WHITE_MATTER_LABEL = 2  # as in resources/demo/brain_tissue_labels.nii.gz


@dataclass(frozen=True)
class SyntheticConfig:
    """How cases are drawn.

    Parameters
    ----------
    patch_size
        Side of the cubic patch in voxels (a multiple of 8 for the networks).
    radius_mm
        Range of each lesion's semi-axes in mm.
    max_lesions
        Lesions per case when one is present: 1 to ``max_lesions``.
    p_lesion
        Probability that a case has any lesion.
    p_white_matter
        Probability that a lesion is centred in white matter (else anywhere in the brain).
    contrast
        Range of ``|lesion / white matter - 1|``; the sign (hyper/hypo) is random.
    deform_mm
        Standard deviation of the patch's smooth displacement field, in mm.
    bias
        Maximum amplitude of the log bias field (0.2 → ×0.82 to ×1.22).
    noise
        Range of the Rician noise sigma relative to the mean brain intensity.
    """

    patch_size: int = PATCH_SIZE
    radius_mm: tuple[float, float] = (3.0, 15.0)
    max_lesions: int = 3
    p_lesion: float = 0.5
    p_white_matter: float = 0.8
    contrast: tuple[float, float] = (0.25, 0.7)
    deform_mm: float = 1.5
    bias: float = 0.2
    noise: tuple[float, float] = (0.01, 0.05)


@dataclass(frozen=True)
class TemplateBrain:
    """The template at training resolution.

    ``image`` is scaled so that the mean inside ``brain`` is 1; ``mean``/``std`` are the brain
    statistics of that scaled image (used to z-score every case).
    """

    image: np.ndarray  # float32 [k, j, i]
    brain: np.ndarray  # bool
    white_matter: np.ndarray  # bool
    spacing_mm: float
    mean: float
    std: float


@dataclass(frozen=True)
class Lesion:
    """One inserted lesion, in patch voxel coordinates ``(k, j, i)``."""

    center: tuple[float, float, float]
    radii_mm: tuple[float, float, float]
    contrast: float  # signed: > 0 hyper-intense, < 0 hypo-intense
    in_white_matter: bool


@dataclass(frozen=True)
class SyntheticCase:
    """One training/evaluation case: normalised image, lesion mask and present flag."""

    image: np.ndarray  # float32 [k, j, i], z-scored
    mask: np.ndarray  # uint8 [k, j, i], 1 = lesion
    present: bool  # == bool(mask.any())
    brain: np.ndarray  # bool [k, j, i], the (deformed) brain mask
    lesions: tuple[Lesion, ...]
    seed: int | None = None


def zscore_in_brain(array: np.ndarray, brain: np.ndarray | None = None) -> np.ndarray:
    """The models' intensity normalisation: z-score with the mean and std inside the brain.

    ``brain`` defaults to ``array > 0`` (the input is skull-stripped, background 0), computed
    after resampling to the model's spacing.
    """
    values = np.asarray(array, dtype=np.float32)
    mask = values > 0 if brain is None else brain
    inside = values[mask]
    if inside.size == 0:
        raise ValueError("no brain voxels to normalise with")
    std = float(inside.std()) or 1.0
    return (values - float(inside.mean())) / np.float32(std)


def prepare_template(
    volume: Volume,
    labels: np.ndarray | None = None,
    *,
    spacing_mm: float = TRAINING_SPACING_MM,
) -> TemplateBrain:
    """Resample the template (and its tissue labels) to ``spacing_mm`` isotropic.

    Parameters
    ----------
    volume
        The skull-stripped template (the demo study), background 0.
    labels
        Tissue labels on ``volume``'s grid (2 = white matter); without them the brightest
        third of the brain stands in for white matter.
    spacing_mm
        Training resolution.
    """
    factors = [s / spacing_mm for s in reversed(volume.spacing)]  # array axes are k, j, i
    image = ndimage.zoom(np.asarray(volume.array, dtype=np.float32), factors, order=1)
    brain = ndimage.zoom((np.asarray(volume.array) > 0).astype(np.float32), factors, order=1) > 0.5
    image = np.where(brain, np.maximum(image, 0.0), 0.0).astype(np.float32)
    image /= np.float32(image[brain].mean())
    if labels is not None:
        if labels.shape != volume.array.shape:
            raise ValueError(f"labels {labels.shape} are not on the image grid {volume.shape}")
        white = ndimage.zoom((labels == WHITE_MATTER_LABEL).astype(np.float32), factors, order=1)
        white_matter = (white > 0.5) & brain
    else:
        white_matter = brain & (image > np.quantile(image[brain], 2 / 3))
    inside = image[brain]
    return TemplateBrain(
        image=image,
        brain=brain,
        white_matter=white_matter,
        spacing_mm=spacing_mm,
        mean=float(inside.mean()),
        std=float(inside.std()),
    )


def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...], control: int = 4) -> np.ndarray:
    """A smooth random field with unit-ish amplitude: cubic upsampling of a coarse grid."""
    coarse = rng.standard_normal((control,) * len(shape))
    factors = [s / control for s in shape]
    field = ndimage.zoom(coarse, factors, order=3, mode="nearest")
    return field[tuple(slice(0, s) for s in shape)].astype(np.float32)


def _cut(array: np.ndarray, start: np.ndarray, size: int) -> np.ndarray:
    """``array[start : start + size]`` on every axis, zero-padded beyond the edges."""
    out = np.zeros((size,) * 3, dtype=array.dtype)
    src = [slice(max(a, 0), min(a + size, n)) for a, n in zip(start, array.shape, strict=True)]
    dst = [slice(s.start - a, s.stop - a) for s, a in zip(src, start, strict=True)]
    out[tuple(dst)] = array[tuple(src)]
    return out


def _deformed_patch(
    template: TemplateBrain, rng: np.random.Generator, size: int, deform_vox: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A patch centred on a random brain voxel, smoothly deformed: (image, brain, white matter)."""
    candidates = np.argwhere(template.brain)
    center = candidates[rng.integers(len(candidates))]
    margin = 4
    start = center - size // 2 - margin
    full = size + 2 * margin
    image = _cut(template.image, start, full)
    brain = _cut(template.brain.astype(np.float32), start, full)
    white = _cut(template.white_matter.astype(np.float32), start, full)
    grid = np.indices((size,) * 3, dtype=np.float32) + margin
    coords = grid + np.stack([_smooth_field(rng, (size,) * 3) * deform_vox for _ in range(3)])
    warp = lambda a, order: ndimage.map_coordinates(a, coords, order=order, mode="nearest")  # noqa: E731
    return warp(image, 1), warp(brain, 1) > 0.5, warp(white, 1) > 0.5


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    return q * np.sign(np.diag(r))


def _insert_lesion(
    image: np.ndarray,
    brain: np.ndarray,
    white_matter: np.ndarray,
    rng: np.random.Generator,
    config: SyntheticConfig,
    spacing_mm: float,
) -> tuple[Lesion, np.ndarray] | None:
    """Blend one lesion into ``image`` (in place); return it and its mask, or None if no room."""
    size = image.shape[0]
    lo, hi = config.radius_mm
    radii_mm = np.clip(rng.uniform(lo, hi) * rng.uniform(0.75, 1.25, 3), lo, hi)
    margin = int(np.ceil(radii_mm.max() / spacing_mm))
    interior = np.zeros_like(brain)
    if 2 * margin < size:
        interior[margin:-margin, margin:-margin, margin:-margin] = True
    prefer_white = rng.random() < config.p_white_matter
    candidates = np.argwhere(interior & (white_matter if prefer_white else brain))
    if len(candidates) == 0:
        candidates = np.argwhere(interior & brain)
    if len(candidates) == 0:
        return None
    center = candidates[rng.integers(len(candidates))].astype(np.float64)
    rotation = _random_rotation(rng)
    offsets = (np.indices(image.shape).reshape(3, -1).T - center) * spacing_mm
    local = offsets @ rotation / radii_mm
    distance = np.sqrt((local**2).sum(axis=1)).reshape(image.shape)
    distance *= 1.0 + 0.25 * _smooth_field(rng, image.shape, control=5)  # lumpy surface
    alpha = np.clip((1.15 - distance) / 0.3, 0.0, 1.0) * brain  # soft edge, clipped to brain
    mask = (alpha >= 0.5) & brain
    if not mask.any():
        return None
    sign = 1.0 if rng.random() < 0.5 else -1.0
    contrast = sign * rng.uniform(*config.contrast)
    wm_level = float(image[white_matter].mean()) if white_matter.any() else 1.0
    texture = 1.0 + 0.05 * _smooth_field(rng, image.shape, control=6)
    target = wm_level * (1.0 + contrast) * texture
    image[...] = image * (1.0 - alpha) + target * alpha
    lesion = Lesion(
        center=(float(center[0]), float(center[1]), float(center[2])),
        radii_mm=(float(radii_mm[0]), float(radii_mm[1]), float(radii_mm[2])),
        contrast=float(contrast),
        in_white_matter=bool(white_matter[tuple(center.astype(int))]),
    )
    return lesion, mask


def make_case(
    template: TemplateBrain,
    rng: np.random.Generator,
    config: SyntheticConfig | None = None,
    *,
    n_lesions: int | None = None,
) -> SyntheticCase:
    """Draw one case from ``rng``.

    Parameters
    ----------
    template
        From :func:`prepare_template`.
    rng
        The only source of randomness.
    config
        Defaults to :class:`SyntheticConfig()`.
    n_lesions
        Force this many lesions (0 for a normal case); by default drawn from ``config``.
    """
    config = config or SyntheticConfig()
    size = config.patch_size
    image, brain, white_matter = _deformed_patch(
        template, rng, size, config.deform_mm / template.spacing_mm
    )
    if n_lesions is None:
        n_lesions = (
            int(rng.integers(1, config.max_lesions + 1)) if rng.random() < config.p_lesion else 0
        )
    mask = np.zeros(image.shape, dtype=bool)
    lesions: list[Lesion] = []
    for _ in range(n_lesions):
        inserted = _insert_lesion(image, brain, white_matter, rng, config, template.spacing_mm)
        if inserted is not None:
            lesions.append(inserted[0])
            mask |= inserted[1]
    bias = np.exp(config.bias * rng.uniform(-1.0, 1.0) * _smooth_field(rng, image.shape, 3))
    image = image * bias
    sigma = rng.uniform(*config.noise)
    noisy = np.sqrt(
        (image + sigma * rng.standard_normal(image.shape)) ** 2
        + (sigma * rng.standard_normal(image.shape)) ** 2
    )
    normalised = ((noisy - template.mean) / template.std).astype(np.float32)
    return SyntheticCase(
        image=normalised,
        mask=mask.astype(np.uint8),
        present=bool(mask.any()),
        brain=brain,
        lesions=tuple(lesions),
    )


def case_for_seed(
    template: TemplateBrain,
    seed: int,
    config: SyntheticConfig | None = None,
    *,
    n_lesions: int | None = None,
) -> SyntheticCase:
    """:func:`make_case` with ``numpy.random.default_rng(seed)``; the case records its seed."""
    case = make_case(template, np.random.default_rng(seed), config, n_lesions=n_lesions)
    return SyntheticCase(
        image=case.image,
        mask=case.mask,
        present=case.present,
        brain=case.brain,
        lesions=case.lesions,
        seed=seed,
    )

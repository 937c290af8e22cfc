"""Regional volumes (mL) on one T1-weighted brain image: a demonstration method.

1. Brain mask: voxels above 10 % of the 99th intensity percentile, largest component, holes
   filled.
2. Gaussian smoothing (1 mm) against noise.
3. Three-class k-means on the smoothed intensities in the mask (deterministic: histogram-based,
   initialised at fixed percentiles): CSF < grey matter < white matter. Follow-ups reuse the
   baseline's means scaled by the deep white-matter intensity ratio (registered follow-up /
   baseline), so that all timepoints are measured on one scale.
4. **Parenchyma** (GM + WM, lesions included) is a partial-volume sum: each voxel counts
   ``clip((I - mean_CSF) / (mean_GM - mean_CSF), 0, 1)``, so sub-voxel boundary shifts
   (atrophy) register.
5. **Lesion**: voxels brighter than ``1.3 ×`` the white-matter mean, components >= 0.1 mL.
6. **Ventricles**: CSF-class voxels (below the CSF/GM midpoint) inside a central ellipsoid
   (semi-axes 25 % of the brain's extent), components of at least 0.5 mL.

Not a validated segmentation; not for clinical use.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from workstation.core.volume import Volume

__all__ = ["REGIONS", "RegionVolumes", "intensity_scale", "kmeans_1d", "measure"]

REGIONS = ("parenchyma", "ventricles", "lesion")
LESION_RATIO = 1.3  # lesion threshold, × white-matter mean
MIN_LESION_ML = 0.1
MIN_VENTRICLE_ML = 0.5
SMOOTH_MM = 1.0


@dataclass(frozen=True)
class RegionVolumes:
    """Volumes of one timepoint, with the class means they came from."""

    parenchyma_ml: float
    ventricles_ml: float
    lesion_ml: float
    brain_ml: float
    class_means: tuple[float, float, float]  # CSF, GM, WM (smoothed intensities)
    lesion_components: int

    def to_json(self) -> dict:
        """JSON-able dict."""
        return asdict(self)

    def get(self, region: str) -> float:
        """The volume of ``region`` (one of :data:`REGIONS`) in mL."""
        return float(getattr(self, f"{region}_ml"))


def kmeans_1d(values: np.ndarray, k: int = 3, iterations: int = 100) -> np.ndarray:
    """Sorted cluster means of 1D ``values`` (histogram k-means, deterministic)."""
    lo, hi = np.percentile(values, [0.5, 99.5])
    counts, edges = np.histogram(values, bins=512, range=(lo, hi))
    centres = 0.5 * (edges[:-1] + edges[1:])
    means = np.percentile(values, np.linspace(100 / (2 * k), 100 - 100 / (2 * k), k))
    for _ in range(iterations):
        assign = np.argmin(np.abs(centres[:, None] - means[None, :]), axis=1)
        new = np.array(
            [
                np.average(centres[assign == c], weights=counts[assign == c])
                if counts[assign == c].sum() > 0
                else means[c]
                for c in range(k)
            ]
        )
        if np.allclose(new, means, atol=1e-6):
            break
        means = new
    return np.sort(means)


def brain_mask(image: np.ndarray) -> np.ndarray:
    """Foreground: above 10 % of the 99th percentile, largest component, holes filled."""
    positive = image[image > 0]
    if positive.size == 0:
        return np.zeros(image.shape, dtype=bool)
    mask = image > 0.1 * np.percentile(positive, 99)
    labels, n = ndimage.label(mask)
    if n > 1:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        mask = labels == int(np.argmax(sizes))
    return ndimage.binary_fill_holes(mask)


def _components(mask: np.ndarray, min_voxels: float) -> tuple[np.ndarray, int]:
    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    if n == 0:
        return mask, 0
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_voxels
    keep[0] = False
    return keep[labels], int(keep.sum())


def measure(volume: Volume, anchors: tuple[float, float, float] | None = None) -> RegionVolumes:
    """Parenchyma, ventricle and lesion volumes of ``volume`` (a T1-like brain image).

    ``anchors`` (CSF, GM, WM means) replace the k-means fit: pass the baseline's class means,
    scaled by :func:`intensity_scale`, so that every timepoint is measured on the same scale.
    """
    image = np.asarray(volume.array, dtype=np.float32)
    voxel_ml = float(np.prod(volume.spacing)) / 1000.0
    mask = brain_mask(image)
    smooth = _smooth(image, volume.spacing)
    csf, gm, wm = kmeans_1d(smooth[mask]) if anchors is None else anchors
    fraction = np.clip((smooth[mask] - csf) / max(gm - csf, 1e-6), 0.0, 1.0)
    lesion, n_lesions = _components(mask & (smooth > LESION_RATIO * wm), MIN_LESION_ML / voxel_ml)
    ventricles, _ = _components(
        mask & (smooth < 0.5 * (csf + gm)) & _central(mask, volume.spacing),
        MIN_VENTRICLE_ML / voxel_ml,
    )
    return RegionVolumes(
        parenchyma_ml=float(fraction.sum()) * voxel_ml,
        ventricles_ml=float(ventricles.sum()) * voxel_ml,
        lesion_ml=float(lesion.sum()) * voxel_ml,
        brain_ml=float(mask.sum()) * voxel_ml,
        class_means=(float(csf), float(gm), float(wm)),
        lesion_components=n_lesions,
    )


def _smooth(image: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    return ndimage.gaussian_filter(image, [SMOOTH_MM / s for s in spacing[::-1]])


def intensity_scale(
    baseline: Volume, registered: Volume, anchors: tuple[float, float, float]
) -> float:
    """Follow-up / baseline intensity ratio in deep white matter (the baseline's WM class,
    lesions excluded, eroded 4 voxels), which atrophy does not touch; the follow-up must be
    registered onto the baseline grid."""
    base = _smooth(np.asarray(baseline.array, dtype=np.float32), baseline.spacing)
    follow = _smooth(np.asarray(registered.array, dtype=np.float32), registered.spacing)
    _, gm, wm = anchors
    white = (base > 0.5 * (gm + wm)) & (base < LESION_RATIO * wm)
    inner = ndimage.binary_erosion(white, iterations=4) & (follow > 0)
    if inner.sum() < 100:
        return 1.0
    return float(np.median(follow[inner]) / np.median(base[inner]))


def _central(mask: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """An ellipsoid at the mask's centroid, semi-axes 25 % of its extent along each axis."""
    index = np.nonzero(mask)
    centre = [float(np.mean(a)) for a in index]
    extent = [float(a.max() - a.min() + 1) for a in index]
    grids = np.ogrid[tuple(slice(0, n) for n in mask.shape)]
    distance = sum(
        ((g - c) / (0.25 * e)) ** 2 for g, c, e in zip(grids, centre, extent, strict=True)
    )
    return distance <= 1.0

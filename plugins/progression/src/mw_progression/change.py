"""The change map: registered follow-up minus baseline, intensity-normalised, baseline grid."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from mw_progression.regions import brain_mask
from workstation.core.volume import Volume

__all__ = ["change_map", "log_jacobian"]


def change_map(baseline: Volume, registered: Volume, scale: float = 1.0) -> Volume:
    """``registered / scale − baseline``, both divided by the baseline brain's median, in the
    baseline's brain mask (0 outside). Units: fraction of the median brain intensity."""
    base = np.asarray(baseline.array, dtype=np.float32)
    follow = np.asarray(registered.array, dtype=np.float32) / np.float32(scale)
    mask = brain_mask(base)
    reference = float(np.median(base[mask])) if mask.any() else 1.0
    diff = np.where(mask, (follow - base) / reference, 0.0).astype(np.float32)
    return baseline.with_array(
        diff,
        warnings=(),
        metadata={
            "description": "Change since baseline (normalised intensity)",
            "units": "fraction of median brain intensity",
        },
    )


def log_jacobian(transform: sitk.Transform, baseline: Volume) -> Volume:
    """log det(Jacobian) of ``transform`` on the baseline grid (> 0: the follow-up is larger)."""
    reference = baseline.to_sitk()
    field = sitk.TransformToDisplacementField(
        transform,
        sitk.sitkVectorFloat64,
        reference.GetSize(),
        reference.GetOrigin(),
        reference.GetSpacing(),
        reference.GetDirection(),
    )
    jacobian = sitk.GetArrayFromImage(sitk.DisplacementFieldJacobianDeterminant(field))
    values = np.log(np.clip(jacobian, 1e-3, None)).astype(np.float32)
    return baseline.with_array(
        values, warnings=(), metadata={"description": "log-Jacobian (B-spline registration)"}
    )

"""Bring a Volume to a model's input grid and intensities, and map predictions back.

:func:`preprocess` reorients a :class:`~workstation.core.volume.Volume` to the model's axis
order (SimpleITK ``DICOMOrient``: a lossless permutation / flip of the axes; an oblique volume
stays oblique and pre-flight QC warns about it), resamples it to the model's spacing (linear;
the new grid covers the same physical extent), normalises intensities as the spec says and pads
to a multiple of the network's divisor. :func:`to_original` undoes all of it: it crops the
padding and resamples a prediction (per-channel probabilities linearly, labels by nearest
neighbour) onto exactly the original grid (shape, spacing, origin, direction).

SimpleITK is imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workstation.core.volume import Volume
from workstation.inference.device import InferenceError

__all__ = ["InputSpec", "Normalisation", "Prepared", "normalise", "preprocess", "to_original"]

_METHODS = ("zscore", "percentile", "clip", "none")
_ZSCORE_IN_BRAIN = "workstation.inference.synthetic.zscore_in_brain"
_AXES = {"L": 0, "R": 0, "P": 1, "A": 1, "S": 2, "I": 2}


@dataclass(frozen=True)
class Normalisation:
    """Intensity normalisation of a model's input.

    ``zscore``: subtract the mean and divide by the standard deviation computed inside ``mask``
    (``"nonzero"``: voxels ≠ 0; ``"all"``: every voxel). Outside a ``"nonzero"`` mask voxels are
    left at 0 (``outside="zero"``) or scaled like the rest (``outside="scaled"``: the background
    becomes ``-mean / std``, as the demonstration models were trained).
    ``percentile``: clip to the ``low``-th / ``high``-th percentiles and scale to [0, 1].
    ``clip``: clip to the absolute values ``low`` / ``high`` (e.g. HU) and scale to [0, 1].
    """

    method: str = "zscore"
    mask: str = "nonzero"
    low: float = 1.0
    high: float = 99.0
    outside: str = "zero"

    def __post_init__(self) -> None:
        if self.outside not in ("zero", "scaled"):
            raise ValueError(f"unknown 'outside' {self.outside!r}; use 'zero' or 'scaled'")
        if self.method not in _METHODS:
            raise ValueError(f"unknown normalisation {self.method!r}; use one of {_METHODS}")
        if self.mask not in ("nonzero", "all"):
            raise ValueError(f"unknown normalisation mask {self.mask!r}; use 'nonzero' or 'all'")
        if self.method in ("percentile", "clip") and not self.low < self.high:
            raise ValueError(f"normalisation needs low < high, got {self.low}, {self.high}")

    @classmethod
    def from_manifest(cls, data: Mapping[str, Any] | str | None) -> Normalisation:
        """From ``{"method": "zscore", "mask": "nonzero"}`` / ``{"method": "percentile", ...}``.

        A section naming ``"reference": "workstation.inference.synthetic.zscore_in_brain"`` (the
        demonstration models' bundles, which describe the mask in words) means a z-score over
        the voxels > 0 with the background scaled too.
        """
        if data is None:
            return cls(method="none")
        if isinstance(data, str):
            data = {"method": data}
        if data.get("reference") == _ZSCORE_IN_BRAIN:
            return cls(method="zscore", mask="nonzero", outside="scaled")
        method = str(data.get("method", "zscore")).lower()
        if method == "clip" and ("low" not in data or "high" not in data):
            raise ValueError("'clip' normalisation needs absolute 'low' and 'high' values")
        return cls(
            method=method,
            mask=str(data.get("mask", "nonzero")),
            low=float(data.get("low", cls.low)),
            high=float(data.get("high", cls.high)),
            outside=str(data.get("outside", "zero")),
        )


@dataclass(frozen=True)
class InputSpec:
    """What a model expects as input: the ``"input"`` section of its manifest.

    Parameters
    ----------
    modality
        DICOM modality the model was trained on (``"MR"``, ``"CT"``), or ``None`` for any.
    orientation
        Three-letter axis code of the ``(i, j, k)`` axes, e.g. ``"RAS"`` or ``"LPS"`` (the
        direction each axis points *to*, as SimpleITK's ``DICOMOrient`` reads it).
    spacing
        ``(i, j, k)`` voxel size in mm the model expects, or ``None`` to keep the input's.
    normalisation
        Intensity normalisation (:class:`Normalisation`).
    divisor
        Every padded spatial size is a multiple of this (a U-Net's total downsampling).
    """

    modality: str | None = None
    orientation: str = "RAS"
    spacing: tuple[float, float, float] | None = None
    normalisation: Normalisation = field(default_factory=Normalisation)
    divisor: int = 1

    def __post_init__(self) -> None:
        code = self.orientation.upper()
        if len(code) != 3 or sorted(_AXES[c] for c in code if c in _AXES) != [0, 1, 2]:
            raise ValueError(f"orientation must be a code like 'RAS' or 'LPS', got {code!r}")
        object.__setattr__(self, "orientation", code)
        if self.spacing is not None:
            spacing = tuple(float(s) for s in self.spacing)
            if len(spacing) != 3 or not all(s > 0 for s in spacing):
                raise ValueError(f"spacing must be three positive numbers, got {self.spacing}")
            object.__setattr__(self, "spacing", spacing)
        if int(self.divisor) < 1:
            raise ValueError(f"divisor must be ≥ 1, got {self.divisor}")

    @classmethod
    def from_manifest(cls, data: Mapping[str, Any]) -> InputSpec:
        """Build from a manifest's ``"input"`` section (unknown keys are ignored).

        ``spacing_mm``, ``size_multiple`` and ``intensity_normalisation`` (the model bundles'
        names) are read as ``spacing``, ``divisor`` and ``normalisation``.
        """
        spacing = data.get("spacing", data.get("spacing_mm"))
        if isinstance(spacing, (int, float)):
            spacing = (spacing,) * 3
        return cls(
            modality=data.get("modality"),
            orientation=str(data.get("orientation", "RAS")),
            spacing=None if spacing is None else tuple(spacing),  # type: ignore[arg-type]
            normalisation=Normalisation.from_manifest(
                data.get("normalisation", data.get("intensity_normalisation"))
            ),
            divisor=int(data.get("divisor", data.get("size_multiple", 1))),
        )

    def to_dict(self) -> dict[str, Any]:
        """The manifest form (JSON-able), for provenance."""
        n = self.normalisation
        return {
            "modality": self.modality,
            "orientation": self.orientation,
            "spacing": None if self.spacing is None else list(self.spacing),
            "normalisation": {
                "method": n.method,
                "mask": n.mask,
                "low": n.low,
                "high": n.high,
                "outside": n.outside,
            },
            "divisor": self.divisor,
        }


@dataclass(frozen=True, eq=False)
class Prepared:
    """A volume on the model's grid, ready for the network.

    Parameters
    ----------
    array
        Normalised float32 voxels ``[k, j, i]`` on the model grid, padded to the divisor.
    grid
        The model grid before padding (geometry plus the normalised, unpadded voxels).
    crop
        Slices of ``array`` that give back ``grid``'s voxels (the padding removed).
    original
        The input volume, whose grid :func:`to_original` maps predictions back onto.
    pad_value
        The normalised background value the padding used (for any further padding).
    """

    array: np.ndarray
    grid: Volume
    crop: tuple[slice, slice, slice]
    original: Volume
    pad_value: float = 0.0


def _float_image(volume: Volume) -> Any:
    import SimpleITK as sitk

    return sitk.Cast(volume.to_sitk(), sitk.sitkFloat32)


def _resample_to_spec(volume: Volume, spec: InputSpec) -> Any:
    """Reorient (lossless) then resample linearly to ``spec.spacing`` over the same extent."""
    import SimpleITK as sitk

    image = sitk.DICOMOrient(_float_image(volume), spec.orientation)
    if spec.spacing is None:
        return image
    old_spacing = np.asarray(image.GetSpacing())
    new_spacing = np.asarray(spec.spacing)
    if np.allclose(old_spacing, new_spacing, rtol=1e-6, atol=1e-9):
        return image
    old_size = np.asarray(image.GetSize())
    new_size = np.maximum(1, np.round(old_size * old_spacing / new_spacing)).astype(int)
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    # Keep the outer voxel edge where it was: centre of the first voxel moves half the change.
    origin = np.asarray(image.GetOrigin()) + direction @ ((new_spacing - old_spacing) / 2)
    return sitk.Resample(
        image,
        [int(s) for s in new_size],
        sitk.Transform(),
        sitk.sitkLinear,
        [float(v) for v in origin],
        [float(v) for v in new_spacing],
        image.GetDirection(),
        0.0,
        sitk.sitkFloat32,
        True,  # nearest-neighbour extrapolation at the half-voxel rim
    )


def normalise(array: np.ndarray, norm: Normalisation) -> np.ndarray:
    """Normalised float32 copy of ``array`` as ``norm`` says (see :class:`Normalisation`)."""
    data = np.asarray(array, dtype=np.float32)
    if norm.method == "none":
        return data.copy()
    if norm.method == "zscore":
        mask = data != 0 if norm.mask == "nonzero" else np.ones(data.shape, dtype=bool)
        if not mask.any():
            return np.zeros_like(data)
        values = data[mask].astype(np.float64)
        mean, std = float(values.mean()), float(values.std())
        out = (data - np.float32(mean)) / np.float32(max(std, 1e-8))
        if norm.mask == "nonzero" and norm.outside == "zero":
            out[~mask] = 0.0
        return out.astype(np.float32, copy=False)
    if norm.method == "percentile":
        low, high = (float(v) for v in np.percentile(data, [norm.low, norm.high]))
    else:
        low, high = norm.low, norm.high
    scale = np.float32(1.0 / max(high - low, 1e-8))
    return ((np.clip(data, low, high) - np.float32(low)) * scale).astype(np.float32, copy=False)


def _pad_to_divisor(array: np.ndarray, divisor: int, value: float) -> tuple[np.ndarray, tuple]:
    widths, crop = [], []
    for n in array.shape:
        total = (-n) % divisor
        before = total // 2
        widths.append((before, total - before))
        crop.append(slice(before, before + n))
    if not any(sum(w) for w in widths):
        return array, tuple(crop)
    return np.pad(array, widths, mode="constant", constant_values=value), tuple(crop)


def preprocess(volume: Volume, spec: InputSpec) -> Prepared:
    """Reorient, resample, normalise and pad ``volume`` for a model with input ``spec``."""
    image = _resample_to_spec(volume, spec)
    raw = Volume.from_sitk(image)
    data = normalise(raw.array, spec.normalisation)
    n = spec.normalisation
    # Pad with the normalised background: 0 outside a zeroed nonzero mask, else the darkest voxel.
    zeroed = n.method == "zscore" and n.mask == "nonzero" and n.outside == "zero"
    pad_value = 0.0 if zeroed else float(data.min())
    padded, crop = _pad_to_divisor(data, int(spec.divisor), pad_value)
    grid = raw.with_array(data, metadata={"normalisation": n.method})
    return Prepared(np.ascontiguousarray(padded), grid, crop, volume, pad_value)


def to_original(
    prediction: np.ndarray, prepared: Prepared, *, labels: bool = False, fill: float = 0.0
) -> np.ndarray:
    """Map a prediction on the padded model grid back onto the original volume's grid.

    Parameters
    ----------
    prediction
        ``[k, j, i]`` or channels-first ``[c, k, j, i]`` on the grid of ``prepared.array``.
    prepared
        What :func:`preprocess` returned for the volume.
    labels
        Nearest-neighbour interpolation (integer labels) instead of linear (probabilities).
    fill
        Value for original voxels outside the model grid (none when the grid covers the input).

    Returns
    -------
    numpy.ndarray
        ``[k, j, i]`` or ``[c, k, j, i]`` with the original volume's shape.
    """
    import SimpleITK as sitk

    pred = np.asarray(prediction)
    if pred.ndim == 4 and pred.shape[0] == 1:  # SimpleITK has no one-component vector images
        return to_original(pred[0], prepared, labels=labels, fill=fill)[None]
    channels = pred.ndim == 4
    if pred.shape[-3:] != prepared.array.shape or pred.ndim not in (3, 4):
        raise InferenceError(
            f"prediction shape {pred.shape} does not match the model grid {prepared.array.shape}"
        )
    k, j, i = prepared.crop
    pred = pred[..., k, j, i]
    dtype = pred.dtype
    work = pred if labels else pred.astype(np.float32, copy=False)
    if channels:
        image = sitk.GetImageFromArray(np.ascontiguousarray(np.moveaxis(work, 0, -1)), True)
    else:
        image = sitk.GetImageFromArray(np.ascontiguousarray(work))
    grid = prepared.grid
    image.SetSpacing(grid.spacing)
    image.SetOrigin(grid.origin)
    image.SetDirection(tuple(float(v) for v in grid.direction.ravel()))
    original = prepared.original
    out = sitk.Resample(
        image,
        list(original.size),
        sitk.Transform(),
        sitk.sitkNearestNeighbor if labels else sitk.sitkLinear,
        original.origin,
        original.spacing,
        tuple(float(v) for v in original.direction.ravel()),
        float(fill),
        image.GetPixelID(),
        True,
    )
    array = sitk.GetArrayFromImage(out)
    if channels:
        array = np.moveaxis(array, -1, 0)
    return np.ascontiguousarray(array.astype(dtype, copy=False))


def spacing_in_orientation(volume: Volume, orientation: str) -> tuple[float, float, float]:
    """The input's voxel size along each axis of ``orientation`` (after ``DICOMOrient``)."""
    axis_of = np.argmax(np.abs(volume.direction), axis=0)  # LPS axis each of i, j, k follows
    wanted = [_AXES[c] for c in orientation.upper()]
    by_lps = {int(a): s for a, s in zip(axis_of, volume.spacing, strict=True)}
    if len(by_lps) != 3:  # degenerate direction: keep the input's order
        return volume.spacing
    return tuple(by_lps[a] for a in wanted)  # type: ignore[return-value]


def as_sequence3(value: float | Sequence[float]) -> tuple[float, float, float]:
    """``value`` repeated three times, or its three items."""
    if isinstance(value, (int, float)):
        return (float(value),) * 3
    items = tuple(float(v) for v in value)
    if len(items) != 3:
        raise ValueError(f"expected three numbers, got {value!r}")
    return items  # type: ignore[return-value]

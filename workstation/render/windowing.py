"""Grey-level windows: presets, automatic windows, and the DICOM VOI function into ``uint8``.

The mapping is DICOM's linear VOI LUT function, PS3.3 C.11.2.1.2.1 (``VOILUTFunction``
``LINEAR``, the default) with the output range ``ymin = 0``, ``ymax = 255``::

    if   x <= c - 0.5 - (w - 1) / 2:  y = 0
    elif x >  c - 0.5 + (w - 1) / 2:  y = 255
    else: y = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255

and ``LINEAR_EXACT`` (C.11.2.1.3.2: thresholds ``c ∓ w / 2``, ``y = ((x - c) / w + 0.5) * 255``)
for floating-point data, where the half-unit offsets of ``LINEAR`` make no sense. ``y`` is
rounded half up to an integer grey level. ``MONOCHROME1`` images (minimum = white) are shown
with ``invert=True``: the grey level becomes ``255 - y``.

Integer slices of at most 16 bits go through a 256- or 65 536-entry lookup table built once per
window (cached) with the float64 formula; everything else is computed in floating point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from workstation.core.volume import Volume

VOIFunction = Literal["LINEAR", "LINEAR_EXACT"]


@dataclass(frozen=True)
class Window:
    """A grey-level window: ``center`` and ``width`` in the volume's values (HU for CT).

    Parameters
    ----------
    center, width
        DICOM WindowCenter / WindowWidth. ``width >= 1`` for ``LINEAR``, ``> 0`` otherwise.
    function
        DICOM VOI LUT Function: ``"LINEAR"`` (default) or ``"LINEAR_EXACT"``.
    """

    center: float
    width: float
    function: VOIFunction = "LINEAR"

    def __post_init__(self) -> None:
        object.__setattr__(self, "center", float(self.center))
        object.__setattr__(self, "width", float(self.width))
        if not (math.isfinite(self.center) and math.isfinite(self.width)):
            raise ValueError(f"window centre and width must be finite, got {self}")
        if self.function == "LINEAR":
            if self.width < 1.0:
                raise ValueError(f"a LINEAR window needs width >= 1 (PS3.3 C.11.2.1.2), got {self}")
        elif self.function == "LINEAR_EXACT":
            if self.width <= 0.0:
                raise ValueError(f"a LINEAR_EXACT window needs width > 0, got {self}")
        else:
            raise ValueError(f"unsupported VOI LUT function {self.function!r}")

    @property
    def bounds(self) -> tuple[float, float]:
        """``(lower, upper)``: values ``<= lower`` are black, values ``> upper`` are white."""
        if self.function == "LINEAR":
            half = (self.width - 1.0) / 2.0
            return self.center - 0.5 - half, self.center - 0.5 + half
        return self.center - self.width / 2.0, self.center + self.width / 2.0

    @classmethod
    def from_range(cls, low: float, high: float, *, integer: bool = True) -> Window:
        """The window that maps ``low`` to 0 and ``high`` to 255.

        With ``integer`` (integer data), a ``LINEAR`` window with ``c = (low + high + 1) / 2``,
        ``w = high - low + 1``; otherwise a ``LINEAR_EXACT`` window over ``[low, high]``.
        """
        low, high = float(low), float(high)
        if integer:
            high = max(high, low)
            return cls((low + high + 1.0) / 2.0, high - low + 1.0)
        width = high - low if high > low else max(abs(low) * 1e-6, 1e-12)
        return cls((low + high) / 2.0, width, "LINEAR_EXACT")


# -- presets -----------------------------------------------------------------------------------
# CT windows in HU (centre, width). Sources:
# - Radiopaedia, "Windowing (CT)" (radiopaedia.org/articles/windowing-ct): brain W:80 L:40;
#   subdural W:130-300 L:50-100 (we take L:80 W:200, inside that range); temporal bones
#   W:2800 L:600; bones W:1800 L:400; soft tissues W:350-400 L:20-60 (abdomen W:400 L:50);
#   lungs W:1500 L:-600.
# - Stroke: W:40 L:40 as in Turner & Holdsworth, "CT stroke window settings: an unfortunate
#   misleading misnomer?", Br J Radiol 2011;84:1061-1066 (doi:10.1259/bjr/99730184). The
#   narrower W:8 L:32 of Lev et al., Radiology 1999;213:150-155 is a starting point for manual
#   adjustment rather than a reading window.
CT_PRESETS: tuple[tuple[str, Window], ...] = (
    ("brain", Window(40, 80)),
    ("subdural", Window(80, 200)),
    ("stroke", Window(40, 40)),
    ("bone", Window(400, 1800)),
    ("temporal bone", Window(600, 2800)),
    ("soft tissue", Window(50, 400)),
    ("lung", Window(-600, 1500)),
)

_AUTO_SAMPLES = 1 << 20


def auto_window(
    array: np.ndarray,
    percentiles: tuple[float, float] = (1.0, 99.0),
    *,
    max_samples: int = _AUTO_SAMPLES,
) -> Window:
    """A window over the given percentiles of the non-background voxels.

    Background is every voxel equal to the minimum (zero padding, air outside the field of
    view). The percentiles come from a regular strided subsample of at most about
    ``max_samples`` voxels, so a 300 × 512² volume costs a few milliseconds.
    """
    array = np.asarray(array)
    if array.size == 0:
        raise ValueError("auto_window needs a non-empty array")
    step = max(1, math.ceil((array.size / max(max_samples, 1)) ** (1.0 / max(array.ndim, 1))))
    sample = array[(slice(None, None, step),) * array.ndim].ravel()
    if sample.dtype.kind == "f":
        sample = sample[np.isfinite(sample)]
        if sample.size == 0:
            return Window(0.0, 1.0)
    if sample.dtype.kind == "b":
        sample = sample.astype(np.uint8)
    foreground = sample[sample > sample.min()]
    if foreground.size == 0:
        foreground = sample
    low, high = np.percentile(foreground, percentiles)
    return Window.from_range(low, high, integer=sample.dtype.kind in "biu")


def dicom_window(volume: Volume) -> Window | None:
    """The series' own WindowCenter / WindowWidth (``volume.metadata["window"]``), if usable."""
    value = volume.metadata.get("window")
    if not value:
        return None
    try:
        return Window(float(value[0]), float(value[1]))
    except (TypeError, ValueError, IndexError):
        return None


def presets_for(volume: Volume) -> list[tuple[str, Window]]:
    """Named windows for ``volume``, the default first.

    The series' DICOM window ("DICOM") when present; for CT the :data:`CT_PRESETS`; and for
    every modality the percentile window ("auto", :func:`auto_window`).
    """
    presets: list[tuple[str, Window]] = []
    own = dicom_window(volume)
    if own is not None:
        presets.append(("DICOM", own))
    if str(volume.metadata.get("modality", "")).upper() == "CT":
        presets.extend(CT_PRESETS)
    presets.append(("auto", auto_window(volume.array)))
    return presets


def is_inverted(volume: Volume) -> bool:
    """True for ``MONOCHROME1`` data, shown with ``apply_window(..., invert=True)``."""
    return str(volume.metadata.get("photometric", "")).upper() == "MONOCHROME1"


# -- applying a window -------------------------------------------------------------------------
def _grey(x: np.ndarray, low: float, high: float, out: np.ndarray, invert: bool) -> np.ndarray:
    """Grey levels of float array ``x`` (modified in place) into ``out`` (uint8)."""
    if high > low:
        x -= x.dtype.type(low)
        x *= x.dtype.type(255.0 / (high - low))
        # fmax/fmin rather than clip: NaN becomes 0 (black) instead of an undefined cast.
        np.fmax(x, 0.0, out=x)
        np.fmin(x, 255.0, out=x)
        x += x.dtype.type(0.5)
        np.copyto(out, x, casting="unsafe")  # truncation of y + 0.5 >= 0: rounds half up
    else:  # LINEAR with w == 1: a step at c - 0.5
        np.greater(x, low, out=out, casting="unsafe")
        out *= np.uint8(255)
    if invert:
        np.subtract(np.uint8(255), out, out=out)
    return out


@lru_cache(maxsize=32)
def _lut(low: float, high: float, invert: bool, dtype: np.dtype) -> np.ndarray:
    """Grey level of every value of a ≤ 16-bit integer dtype, indexed by its unsigned bits."""
    unsigned = np.dtype(f"u{dtype.itemsize}")
    values = np.arange(1 << (8 * dtype.itemsize), dtype=np.int64).astype(unsigned).view(dtype)
    lut = np.empty(values.shape, dtype=np.uint8)
    _grey(values.astype(np.float64), low, high, lut, invert)
    lut.setflags(write=False)
    return lut


def apply_window(
    slice_2d: np.ndarray,
    window: Window,
    out: np.ndarray | None = None,
    *,
    invert: bool = False,
) -> np.ndarray:
    """Map values to ``uint8`` grey levels through ``window`` (DICOM linear VOI function).

    Parameters
    ----------
    slice_2d
        Any shape and strides (a view from :func:`~workstation.render.reslice.reslice` is
        fine). ``int8``/``uint8``/``int16``/``uint16`` use a cached lookup table; other
        integers use float64; floats use their own precision (float32 for float32 and
        narrower). NaN maps to black (before inversion).
    window
        The window and its VOI function.
    out
        Optional C-contiguous ``uint8`` array of the same shape to write into.
    invert
        ``MONOCHROME1`` display: ``255 - y``.

    Returns
    -------
    numpy.ndarray
        ``uint8`` grey levels, C-contiguous.
    """
    x = np.asarray(slice_2d)
    if out is None:
        out = np.empty(x.shape, dtype=np.uint8)
    elif out.shape != x.shape or out.dtype != np.uint8:
        raise ValueError(f"out must be uint8 of shape {x.shape}, got {out.dtype} {out.shape}")
    low, high = window.bounds
    kind, itemsize = x.dtype.kind, x.dtype.itemsize
    if kind in "iu" and itemsize <= 2:
        if not x.dtype.isnative:
            x = x.astype(x.dtype.newbyteorder("="))
        # Indexing by the unsigned bit pattern needs no arithmetic on the slice at all.
        np.take(_lut(low, high, invert, x.dtype), x.view(f"u{itemsize}"), out=out, mode="clip")
        return out
    if kind == "b":
        return apply_window(x.view(np.uint8), window, out, invert=invert)
    if kind not in "iuf":
        raise TypeError(f"cannot window values of dtype {x.dtype}")
    work = np.float32 if kind == "f" and itemsize <= 4 else np.float64
    return _grey(x.astype(work, copy=True), low, high, out, invert)

"""Named colour maps as ``(256, 4)`` ``uint8`` RGBA lookup tables, and the label palette.

Every map is computed here from a formula or from published control points; matplotlib is not
imported. Tables are built once, cached and returned read-only.

- ``gray``, ``gray_r``: linear ramps (``gray_r`` is the inverted ramp).
- ``hot``: black → red → yellow → white, piecewise-linear red, green and blue ramps with the
  breakpoints of matplotlib's ``hot`` segment data (0.365079 and 0.746032).
- ``viridis``, ``inferno``: linear interpolation between every 8th entry (and the last) of the
  256-entry tables published with matplotlib by Nathaniel Smith and Stéfan van der Walt
  (CC0); within 2 levels of the originals in every channel.
- ``coolwarm``: Kenneth Moreland's diverging map, the same way (for signed maps).
- :func:`label_palette`: label 0 transparent, then distinct colours (a fixed high-contrast set,
  continued by golden-angle hue steps).
"""

from __future__ import annotations

import colorsys
from functools import cache

import numpy as np

__all__ = ["COLORMAPS", "colormap", "label_color", "label_palette"]

_VIRIDIS = (
    "440154 470d60 48186a 482374 472d7b 453781 424086 3e4989 3b528b 375b8d 33638d 2f6b8e "
    "2c728e 297a8e 26828e 23898e 21918c 1f988b 1fa088 22a785 28ae80 32b67a 3fbc73 4ec36b "
    "5ec962 70cf57 84d44b 98d83e addc30 c2df23 d8e219 ece51b fde725"
)
_INFERNO = (
    "000004 040312 0b0724 150b37 210c4a 2f0a5b 3d0965 4a0c6b 57106e 64156e 71196e 7d1e6d "
    "8a226a 972766 a32c61 b0315b bc3754 c73e4c d24644 db503b e45a31 eb6628 f1731d f68013 "
    "f98e09 fb9d07 fcac11 fbbc21 f9cb35 f5db4c f2ea69 f3f68a fcffa4"
)
# Kenneth Moreland's diverging "cool to warm" map (as published with matplotlib as coolwarm),
# every 8th entry and the last: for signed maps such as a change between two timepoints.
_COOLWARM = (
    "3b4cc0 445acc 4e68d8 5875e1 6282ea 6c8ff1 779af7 82a6fb 8db0fe 98b9ff a3c2fe aec9fc "
    "b9d0f9 c3d5f4 ccd9ed d5dbe5 dddcdc e5d8d1 ecd3c5 f1ccb8 f5c4ac f7ba9f f7b093 f6a586 "
    "f4987a f08b6e eb7d62 e46e56 dd5f4b d44e41 ca3b37 be242e b40426"
)
# Table indices of the control points above: 0, 8, ..., 248, then 255.
_CONTROL_INDEX = np.r_[np.arange(0, 256, 8), 255]

# The first label colours: well separated on screen and for common colour-vision deficiencies
# (red, green, blue, yellow, purple, cyan, orange, pink, lime, teal, brown, navy).
_FIRST_LABEL_COLORS = (
    "e6194b 3cb44b 4363d8 ffe119 911eb4 42d4f4 f58231 f032e6 bfef45 469990 9a6324 000075"
)

COLORMAPS: tuple[str, ...] = ("gray", "gray_r", "hot", "inferno", "viridis", "coolwarm")
"""The names :func:`colormap` accepts."""


def _hex_rows(text: str) -> np.ndarray:
    return np.array([[int(h[n : n + 2], 16) for n in (0, 2, 4)] for h in text.split()], float)


def _from_controls(text: str) -> np.ndarray:
    controls = _hex_rows(text)
    index = np.arange(256)
    return np.stack([np.interp(index, _CONTROL_INDEX, controls[:, c]) for c in range(3)], 1)


def _hot() -> np.ndarray:
    t = np.linspace(0.0, 1.0, 256)
    red = np.interp(t, [0.0, 0.365079, 1.0], [0.0416, 1.0, 1.0])
    green = np.interp(t, [0.0, 0.365079, 0.746032, 1.0], [0.0, 0.0, 1.0, 1.0])
    blue = np.interp(t, [0.0, 0.746032, 1.0], [0.0, 0.0, 1.0])
    return np.stack([red, green, blue], 1) * 255.0


def _rgb_table(name: str) -> np.ndarray:
    ramp = np.arange(256, dtype=float)
    if name == "gray":
        return np.repeat(ramp[:, None], 3, axis=1)
    if name == "gray_r":
        return np.repeat(ramp[::-1, None], 3, axis=1)
    if name == "hot":
        return _hot()
    if name == "viridis":
        return _from_controls(_VIRIDIS)
    if name == "coolwarm":
        return _from_controls(_COOLWARM)
    return _from_controls(_INFERNO)


@cache
def colormap(name: str) -> np.ndarray:
    """The ``(256, 4)`` ``uint8`` RGBA table of a named map (opaque; read-only).

    Parameters
    ----------
    name
        One of :data:`COLORMAPS`.

    Raises
    ------
    ValueError
        For an unknown name (the message lists the known ones).
    """
    if name not in COLORMAPS:
        raise ValueError(f"unknown colormap {name!r}; choose one of {', '.join(COLORMAPS)}")
    table = np.empty((256, 4), dtype=np.uint8)
    table[:, :3] = np.clip(np.rint(_rgb_table(name)), 0, 255)
    table[:, 3] = 255
    table.setflags(write=False)
    return table


def label_color(label: int) -> tuple[int, int, int, int]:
    """The default RGBA colour of one label (label 0 is transparent black)."""
    if label == 0:
        return (0, 0, 0, 0)
    first = _FIRST_LABEL_COLORS.split()
    n = abs(int(label)) - 1
    if n < len(first):
        r, g, b = (int(first[n][k : k + 2], 16) for k in (0, 2, 4))
        return (r, g, b, 255)
    # Golden-angle hue steps keep neighbouring labels apart; saturation/value alternate.
    hue = (n * 0.618033988749895) % 1.0
    sat, val = (0.65, 0.95) if n % 2 else (0.9, 0.8)
    r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
    return (round(r * 255), round(g * 255), round(b * 255), 255)


@cache
def label_palette(size: int = 256) -> np.ndarray:
    """A ``(size, 4)`` ``uint8`` RGBA table: entry 0 transparent, then distinct opaque colours."""
    if size < 1:
        raise ValueError(f"a palette needs at least one entry, got {size}")
    table = np.array([label_color(n) for n in range(size)], dtype=np.uint8)
    table.setflags(write=False)
    return table

"""View planes: screen directions, slice positions for scrolling, edge letters, acquisition plane.

Screen conventions (radiological, as in 3D Slicer, Horos and OHIF), as LPS unit vectors of
the screen's +column (right) and +row (down) directions:

========  ======================  ======================  ================================
plane     screen right (+col)     screen down (+row)      slice index grows toward
========  ======================  ======================  ================================
axial     patient Left   (+L)     Posterior (+P)          Superior (normal = col × row)
coronal   patient Left   (+L)     Inferior  (−S)          Posterior
sagittal  Posterior      (+P)     Inferior  (−S)          patient Right
========  ======================  ======================  ================================

So the patient's right is on the screen's left in axial and coronal views. For an
identity-direction volume (i toward L, j toward P, k toward S) the axial view of slice ``k`` is
exactly ``array[k]``, with no flip.

Orientation letters follow DICOM LPS: ``L``/``R`` for ±x, ``P``/``A`` for ±y, ``S``/``I`` for
±z. A direction is named by the letters of its components, largest first, leaving out components
below ``threshold`` (0.2 by default, so a tilt of up to about 11° reads as the main axis alone;
OHIF/Cornerstone's ``getOrientationStringLPS`` keeps every component above 1e-4).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from itertools import product
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from workstation.core.volume import Volume

_LETTERS = (("R", "L"), ("A", "P"), ("I", "S"))
_PLANE_OF_NORMAL = ("sagittal", "coronal", "axial")


class ViewPlane(enum.Enum):
    """The three standard planes with their radiological screen orientation."""

    AXIAL = "axial"
    CORONAL = "coronal"
    SAGITTAL = "sagittal"

    @property
    def col_dir(self) -> np.ndarray:
        """LPS unit vector of the screen's +column (rightward) direction."""
        return np.array(_AXES[self][0], dtype=np.float64)

    @property
    def row_dir(self) -> np.ndarray:
        """LPS unit vector of the screen's +row (downward) direction."""
        return np.array(_AXES[self][1], dtype=np.float64)

    @property
    def normal(self) -> np.ndarray:
        """``col_dir × row_dir``: the direction in which the slice index grows."""
        return np.array(_AXES[self][2], dtype=np.float64)


_AXES = {  # col_dir, row_dir, normal
    ViewPlane.AXIAL: ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    ViewPlane.CORONAL: ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.0, 1.0, 0.0)),
    ViewPlane.SAGITTAL: ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0), (-1.0, 0.0, 0.0)),
}


@dataclass(frozen=True, eq=False)
class ObliquePlane:
    """A plane orientation given by two in-plane LPS directions (the centre is the point).

    ``row_dir`` is made exactly orthogonal to ``col_dir`` (both normalised); they must be
    within about 0.06° of orthogonal to begin with.
    """

    col_dir: np.ndarray
    row_dir: np.ndarray
    name: str = "oblique"
    normal: np.ndarray = field(init=False, repr=False)  # col_dir × row_dir

    def __post_init__(self) -> None:
        col = np.asarray(self.col_dir, dtype=np.float64).reshape(3)
        row = np.asarray(self.row_dir, dtype=np.float64).reshape(3)
        if not (np.all(np.isfinite(col)) and np.all(np.isfinite(row))):
            raise ValueError("plane directions must be finite")
        col_norm, row_norm = np.linalg.norm(col), np.linalg.norm(row)
        if col_norm == 0 or row_norm == 0:
            raise ValueError("plane directions must be non-zero")
        col, row = col / col_norm, row / row_norm
        if abs(col @ row) > 1e-3:
            raise ValueError(f"plane directions are not orthogonal (cos = {col @ row:.4g})")
        row = row - (col @ row) * col
        row /= np.linalg.norm(row)
        normal = np.cross(col, row)
        for name, value in (("col_dir", col), ("row_dir", row), ("normal", normal)):
            value.setflags(write=False)
            object.__setattr__(self, name, value)


Plane = ViewPlane | ObliquePlane


def plane_axes(plane: Plane) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(col_dir, row_dir, normal)`` unit LPS vectors; ``normal = col_dir × row_dir``."""
    return plane.col_dir, plane.row_dir, plane.normal


# -- slice positions along the normal ----------------------------------------------------------
def box_corners(volume: Volume, pad: float = 0.0) -> np.ndarray:
    """LPS of the 8 corners of the index box ``[-pad, n - 1 + pad]`` on each axis."""
    ijk = list(product(*[(-pad, n - 1.0 + pad) for n in volume.size]))
    return volume.index_to_lps(np.array(ijk))


def _stack(volume: Volume, normal: np.ndarray) -> tuple[float, float, int, int]:
    """``(anchor, step, m_min, m_max)``: slice ``m`` lies at ``anchor + m * step`` along normal.

    ``step`` is the largest move along the normal that changes no voxel index by more than one
    (the slice spacing for axis-aligned volumes); the anchor is voxel ``[0, 0, 0]``.
    """
    per_mm = np.linalg.inv(volume.affine[:3, :3]) @ normal
    step = 1.0 / float(np.max(np.abs(per_mm)))
    anchor = float(np.asarray(volume.origin) @ normal)
    along = box_corners(volume) @ normal
    m_min = int(np.ceil((along.min() - anchor) / step - 1e-6))
    m_max = int(np.floor((along.max() - anchor) / step + 1e-6))
    return anchor, step, m_min, m_max


def slice_count(volume: Volume, plane: Plane) -> int:
    """Number of slice positions of ``plane`` across the volume (for a scroll bar)."""
    _, _, m_min, m_max = _stack(volume, plane_axes(plane)[2])
    return m_max - m_min + 1


def slice_index_of(volume: Volume, plane: Plane, point_lps: Any) -> int:
    """Index of the slice position nearest ``point_lps`` (may lie outside ``[0, count)``)."""
    normal = plane_axes(plane)[2]
    anchor, step, m_min, _ = _stack(volume, normal)
    return (
        int(np.floor((np.asarray(point_lps, dtype=np.float64) @ normal - anchor) / step + 0.5))
        - m_min
    )


def point_at_slice(volume: Volume, plane: Plane, point_lps: Any, index: int) -> np.ndarray:
    """``point_lps`` moved along the plane normal onto slice position ``index`` (scrolling)."""
    normal = plane_axes(plane)[2]
    anchor, step, m_min, _ = _stack(volume, normal)
    point = np.asarray(point_lps, dtype=np.float64)
    return point + (anchor + (index + m_min) * step - point @ normal) * normal


# -- orientation letters -----------------------------------------------------------------------
def direction_label(vector: Any, *, threshold: float = 0.2) -> str:
    """Orientation letters of an LPS direction, e.g. ``"L"``, ``"LA"``, ``"SPL"``.

    Parameters
    ----------
    vector
        Any non-zero LPS vector (normalised here).
    threshold
        Components whose magnitude (of the unit vector) is below this are left out; the
        largest component is always named.
    """
    v = np.asarray(vector, dtype=np.float64).reshape(3)
    norm = float(np.linalg.norm(v))
    if not norm > 0:
        raise ValueError("a direction label needs a non-zero vector")
    v = v / norm
    order = np.argsort(-np.abs(v), kind="stable")
    letters = [
        _LETTERS[axis][int(v[axis] > 0)]
        for rank, axis in enumerate(order)
        if rank == 0 or (abs(v[axis]) >= threshold and v[axis] != 0)
    ]
    return "".join(letters)


class EdgeLabels(NamedTuple):
    """The patient direction toward each edge of a view."""

    top: str
    bottom: str
    left: str
    right: str


def edge_labels(col_vector: Any, row_vector: Any, *, threshold: float = 0.2) -> EdgeLabels:
    """Labels for a view whose +column (right) and +row (down) point along the given vectors.

    ``edge_labels(s.col_vector, s.row_vector)`` for a :class:`~workstation.render.Slice2D`;
    an axial view gives ``EdgeLabels(top="A", bottom="P", left="R", right="L")``.
    """
    col = np.asarray(col_vector, dtype=np.float64)
    row = np.asarray(row_vector, dtype=np.float64)
    return EdgeLabels(
        top=direction_label(-row, threshold=threshold),
        bottom=direction_label(row, threshold=threshold),
        left=direction_label(-col, threshold=threshold),
        right=direction_label(col, threshold=threshold),
    )


def orientation_of(direction: Any, *, oblique_degrees: float = 10.0) -> str:
    """The acquisition plane of a volume: ``"axial"``, ``"coronal"``, ``"sagittal"``, or
    ``"oblique"``.

    Taken from the image-plane normal (the cross product of the i and j directions, so a
    reversed slice order does not matter): the patient axis it is nearest to, unless it is
    more than ``oblique_degrees`` away from every axis.
    """
    d = np.asarray(direction, dtype=np.float64).reshape(3, 3)
    normal = np.cross(d[:, 0], d[:, 1])
    norm = float(np.linalg.norm(normal))
    if not norm > 0:
        raise ValueError("the i and j directions are parallel")
    normal = np.abs(normal / norm)
    axis = int(np.argmax(normal))
    if normal[axis] < np.cos(np.radians(oblique_degrees)):
        return "oblique"
    return _PLANE_OF_NORMAL[axis]

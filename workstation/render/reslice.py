"""Multiplanar reformatting (MPR) in patient geometry: Volume + plane + point → 2D image.

Screen conventions (radiological: patient Right on the screen's left) are those of the planes in
:mod:`workstation.render.orientation`, which also numbers the slice positions for scrolling.

Two paths, each reporting its exact geometry in :class:`Slice2D`:

- **Axis-aligned** (the volume's direction is a signed permutation within 1e-5 and the plane is
  axial, coronal or sagittal): the image is a numpy view of the array (transposed and/or
  flipped, never copied), on the voxel plane nearest the point.
- **General** (oblique volume or :class:`ObliquePlane`): trilinear (``order=1``) or nearest
  (``order=0``) sampling with :func:`scipy.ndimage.affine_transform` (``map_coordinates`` on an
  implicit affine grid, in parallel blocks of rows) of the plane exactly through the point, on a
  grid at the volume's finest spacing covering the volume's extent in the plane and anchored on
  the projection of voxel ``[0, 0, 0]`` (so moving the point within the plane does not shift the
  grid). A sample is inside when its continuous voxel index lies in ``[-0.5, n - 0.5]`` on every
  axis, as in ITK; outside samples get ``fill`` (default: the volume's minimum). Integer data is
  rounded to the nearest value; the output keeps the volume's dtype.

The crosshair is one LPS point shared by the views: each view reslices through it, shows it at
``Slice2D.lps_to_pixel(point)``, and scrolls with :func:`point_at_slice`.
"""

from __future__ import annotations

import os
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workstation.core.volume import Volume
from workstation.render.orientation import (
    Plane,
    ViewPlane,
    box_corners,
    plane_axes,
    slice_index_of,
)

_PERMUTATION_TOL = 1e-5
MAX_SIDE = 4096  # pixels per side of a general-path image; the spacing grows beyond that
_CHUNK_ROWS = 64  # rows per parallel block of the general path
_WORKERS = min(8, os.cpu_count() or 1)
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """The shared sampling threads, started on first use."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(_WORKERS, thread_name_prefix="reslice")
        return _POOL


@dataclass(frozen=True, eq=False)
class Slice2D:
    """A 2D image in patient space: ``image[row, col]``, row = screen down, col = right.

    Attributes
    ----------
    image
        The pixels (a view of the volume's array on the axis-aligned path).
    origin
        LPS (mm) of the centre of pixel ``(0, 0)``, the top-left one.
    col_vector, row_vector
        LPS displacement (mm) of one pixel step right (+col) and down (+row).
    plane
        The plane it was cut along.
    index
        Its slice index along the plane normal (see :func:`slice_index_of`).
    """

    image: np.ndarray
    origin: np.ndarray
    col_vector: np.ndarray
    row_vector: np.ndarray
    plane: Plane
    index: int
    _frame: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("origin", "col_vector", "row_vector"):
            value = np.array(getattr(self, name), dtype=np.float64).reshape(3)
            value.setflags(write=False)
            object.__setattr__(self, name, value)
        # Columns (row_vector, col_vector): pixel (row, col) -> LPS offset; its pseudo-inverse
        # (F^T F)^-1 F^T maps back exactly even if the two vectors were not orthogonal.
        frame = np.column_stack([self.row_vector, self.col_vector])
        gram = frame.T @ frame
        det = gram[0, 0] * gram[1, 1] - gram[0, 1] * gram[1, 0]
        inverse = np.array([[gram[1, 1], -gram[0, 1]], [-gram[1, 0], gram[0, 0]]]) / det
        object.__setattr__(self, "_frame", inverse @ frame.T)

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, cols)``."""
        return self.image.shape  # type: ignore[return-value]

    @property
    def col_spacing(self) -> float:
        """Pixel width in mm."""
        return float(np.linalg.norm(self.col_vector))

    @property
    def row_spacing(self) -> float:
        """Pixel height in mm."""
        return float(np.linalg.norm(self.row_vector))

    @property
    def normal(self) -> np.ndarray:
        """Unit LPS normal of the plane, ``col × row`` (the direction the slice index grows)."""
        return self.plane.normal

    def pixel_to_lps(self, pixel: Any) -> np.ndarray:
        """LPS (mm) of continuous pixel position(s) ``(row, col)`` (last axis of length 2)."""
        rc = np.asarray(pixel, dtype=np.float64)
        return self.origin + rc[..., :1] * self.row_vector + rc[..., 1:2] * self.col_vector

    def lps_to_pixel(self, lps: Any) -> np.ndarray:
        """Continuous ``(row, col)`` of LPS point(s), projected onto the plane."""
        offset = np.asarray(lps, dtype=np.float64) - self.origin
        return offset @ self._frame.T

    def distance(self, lps: Any) -> np.ndarray:
        """Signed distance (mm) of LPS point(s) from the plane, along :attr:`normal`."""
        return (np.asarray(lps, dtype=np.float64) - self.origin) @ self.normal


# -- reslicing ---------------------------------------------------------------------------------
_MINIMA: weakref.WeakKeyDictionary[Volume, Any] = weakref.WeakKeyDictionary()


def volume_minimum(volume: Volume) -> Any:
    """The smallest voxel value, computed once per Volume object (the default fill).

    Cached on first use: while a volume is still being filled (progressive loading), pass an
    explicit ``fill`` to :func:`reslice` instead.
    """
    value = _MINIMA.get(volume)
    if value is None:
        array = volume.array
        value = np.nanmin(array) if array.dtype.kind == "f" else array.min()
        _MINIMA[volume] = value
    return value


def _signed_permutation(direction: np.ndarray) -> np.ndarray | None:
    """The signed permutation matrix within tolerance of ``direction``, else None."""
    rounded = np.round(direction)
    if np.max(np.abs(direction - rounded)) > _PERMUTATION_TOL:
        return None
    if not np.array_equal(np.abs(rounded).sum(axis=0), [1, 1, 1]):
        return None
    if not np.array_equal(np.abs(rounded).sum(axis=1), [1, 1, 1]):
        return None
    return rounded


def _axis_of(perm: np.ndarray, vector: np.ndarray) -> tuple[int, int]:
    """``(axis, sign)`` of the volume axis along ±``vector`` (a patient axis)."""
    in_index = perm.T @ vector
    axis = int(np.argmax(np.abs(in_index)))
    return axis, int(np.sign(in_index[axis]))


def reslice(
    volume: Volume,
    plane: Plane,
    point_lps: Any,
    *,
    spacing: float | tuple[float, float] | None = None,
    order: int = 1,
    fill: Any = None,
) -> Slice2D:
    """The 2D image of ``volume`` on ``plane`` through ``point_lps``, with its geometry.

    Parameters
    ----------
    volume
        Any direction; axis-aligned volumes take the zero-copy path.
    plane
        :class:`ViewPlane` or :class:`ObliquePlane`.
    point_lps
        A point of the plane (the crosshair shared by the views), LPS mm.
    spacing
        Pixel size (mm) of the general path, one value or ``(col, row)``; default the volume's
        smallest spacing. Giving it forces the general path.
    order
        1: trilinear, 0: nearest voxel (general path only).
    fill
        Value outside the volume; default :func:`volume_minimum`.

    Returns
    -------
    Slice2D
        ``image[row, col]`` (row = screen down) and the LPS geometry of its pixels.
    """
    if order not in (0, 1):
        raise ValueError(f"order must be 0 or 1, got {order}")
    point = np.asarray(point_lps, dtype=np.float64).reshape(3)
    if spacing is None and isinstance(plane, ViewPlane):
        perm = _signed_permutation(volume.direction)
        if perm is not None:
            return _aligned(volume, plane, point, perm, fill)
    return _general(volume, plane, point, spacing, order, fill)


def _aligned(
    volume: Volume, plane: ViewPlane, point: np.ndarray, perm: np.ndarray, fill: Any
) -> Slice2D:
    """Zero-copy path: the nearest voxel plane, as a transposed/flipped view of the array."""
    col, row, normal = plane_axes(plane)
    col_axis, col_sign = _axis_of(perm, col)
    row_axis, row_sign = _axis_of(perm, row)
    normal_axis, _ = _axis_of(perm, normal)
    size = volume.size
    index = volume.lps_to_index(point)
    k = int(np.floor(index[normal_axis] + 0.5))  # the nearest voxel plane
    inside = 0 <= k < size[normal_axis]
    # numpy axis of index axis a is 2 - a; after removing the normal axis, the remaining two
    # keep their order, so the image is [row, col] when row's numpy axis comes first.
    take: list[Any] = [slice(None)] * 3
    take[2 - normal_axis] = k if inside else 0
    image = volume.array[tuple(take)]
    if 2 - row_axis > 2 - col_axis:
        image = image.T
    image = image[::row_sign, ::col_sign]
    if not inside:  # a plane beyond the volume: all fill, with the same pixel grid
        image = np.full(image.shape, volume_minimum(volume) if fill is None else fill, image.dtype)
    first = np.zeros(3)
    first[normal_axis] = k
    first[col_axis] = 0 if col_sign > 0 else size[col_axis] - 1
    first[row_axis] = 0 if row_sign > 0 else size[row_axis] - 1
    linear = volume.affine[:3, :3]
    return Slice2D(
        image=image,
        origin=volume.index_to_lps(first),
        col_vector=col_sign * linear[:, col_axis],
        row_vector=row_sign * linear[:, row_axis],
        plane=plane,
        index=slice_index_of(volume, plane, volume.index_to_lps(first)),
    )


def _grid(
    volume: Volume,
    plane: Plane,
    point: np.ndarray,
    spacing: float | tuple[float, float] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    """``(origin, col_vector, row_vector, (rows, cols))`` of the general path's pixel grid."""
    col, row, _ = plane_axes(plane)
    if spacing is None:
        spacing = min(volume.spacing)
    steps_in = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (2,))
    col_step, row_step = float(steps_in[0]), float(steps_in[1])
    corners = box_corners(volume, 0.5) - point
    anchor = np.asarray(volume.origin) - point
    starts, counts, steps = [], [], []
    for axis, step in ((col, col_step), (row, row_step)):
        if not step > 0:
            raise ValueError(f"spacing must be positive, got {spacing}")
        along = corners @ axis
        extent = float(along.max() - along.min())
        step = max(step, extent / (MAX_SIDE - 1))
        base = float(anchor @ axis)
        m_lo = int(np.ceil((along.min() - base) / step - 1e-9))
        m_hi = int(np.floor((along.max() - base) / step + 1e-9))
        starts.append(base + m_lo * step)
        counts.append(max(m_hi - m_lo + 1, 1))
        steps.append(step)
    origin = point + starts[0] * col + starts[1] * row
    return origin, steps[0] * col, steps[1] * row, (counts[1], counts[0])


def _outside_mask(
    q0: np.ndarray, q_row: np.ndarray, q_col: np.ndarray, size: np.ndarray, shape: tuple[int, int]
) -> np.ndarray:
    """Pixels whose continuous index ``q0 + r q_row + c q_col`` leaves ``[-0.5, n - 0.5]``.

    Each row's inside part is one interval of columns (a line through a box), found per row.
    """
    rows, cols = shape
    r = np.arange(rows, dtype=np.float64)
    lower = np.full(rows, -np.inf)
    upper = np.full(rows, np.inf)
    for a in range(3):
        base = q0[a] + r * q_row[a]
        lo, hi = -0.5, size[a] - 0.5
        if abs(q_col[a]) < 1e-12:
            bad = (base < lo - 1e-9) | (base > hi + 1e-9)
            lower[bad] = np.inf
            continue
        t1, t2 = (lo - base) / q_col[a], (hi - base) / q_col[a]
        lower = np.maximum(lower, np.minimum(t1, t2))
        upper = np.minimum(upper, np.maximum(t1, t2))
    first = np.ceil(lower - 1e-9)
    last = np.floor(upper + 1e-9)
    c = np.arange(cols, dtype=np.float64)
    return (c[None, :] < first[:, None]) | (c[None, :] > last[:, None])


def _general(
    volume: Volume,
    plane: Plane,
    point: np.ndarray,
    spacing: float | tuple[float, float] | None,
    order: int,
    fill: Any,
) -> Slice2D:
    """Sampled path: any volume direction, any plane."""
    from scipy import ndimage  # lazily: scipy is not needed for the axis-aligned path

    origin, col_vector, row_vector, shape = _grid(volume, plane, point, spacing)
    to_index = np.linalg.inv(volume.affine[:3, :3])
    q0 = to_index @ (origin - np.asarray(volume.origin))
    q_row, q_col = to_index @ row_vector, to_index @ col_vector
    # Output coordinates (0, row, col) -> input (k, j, i): reverse the (i, j, k) order.
    matrix = np.column_stack([np.zeros(3), q_row[::-1], q_col[::-1]])
    array = volume.array
    if array.dtype.kind == "b":
        array = array.view(np.uint8)
    image = np.empty(shape, dtype=array.dtype)

    def sample(first_row: int) -> None:
        rows = image[first_row : first_row + _CHUNK_ROWS]
        ndimage.affine_transform(
            array,
            matrix,
            offset=q0[::-1] + first_row * matrix[:, 1],
            output_shape=(1, *rows.shape),
            output=rows[None],
            order=order,
            mode="nearest",
            prefilter=False,
        )

    # Fixed blocks of rows, so the result does not depend on the thread count; scipy releases
    # the GIL while sampling, so the blocks run in parallel.
    starts = range(0, shape[0], _CHUNK_ROWS)
    if len(starts) > 1 and _WORKERS > 1:
        list(_pool().map(sample, starts))
    else:
        for first_row in starts:
            sample(first_row)
    outside = _outside_mask(q0, q_row, q_col, np.asarray(volume.size, dtype=np.float64), shape)
    if outside.any():
        image[outside] = volume_minimum(volume) if fill is None else fill
    return Slice2D(
        image=image,
        origin=origin,
        col_vector=col_vector,
        row_vector=row_vector,
        plane=plane,
        index=slice_index_of(volume, plane, point),
    )

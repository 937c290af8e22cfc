"""Label maps to triangle meshes: SurfaceNets in one pass for all labels, then a triangle budget.

- :func:`label_mesh` runs ``vtkSurfaceNets3D`` once over a label map. Every boundary between
  two labels, or between a label and the background, becomes one sheet of triangles, smoothed
  jointly under constraints (each point stays within about a voxel of where the boundary
  is), so neighbouring labels share their common boundary exactly, with no gap and no overlap.
- :class:`LabelMesh` holds that mesh in index space (``(i, j, k)`` of the whole volume);
  :meth:`LabelMesh.surface` takes one label's closed surface out of it, faces turned outward.
- :func:`simplify` merges vertices that lie in the same ``bin_size``-voxel bin, face the same
  way (same dominant normal axis and sign) and are connected inside the bin. Each vertex moves
  less than a bin's diagonal, opposite sheets of a thin layer are never merged, and the
  shared boundaries stay shared. :func:`fit_budget` picks the finest bin that brings every
  label under a triangle budget.

Plain numpy and scipy outside :func:`label_mesh`, which imports pyvista and vtk when it runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from workstation.core.tasks import CancelToken, check_cancel

__all__ = [
    "MAX_BIN",
    "LabelMesh",
    "fit_budget",
    "label_mesh",
    "simplify",
    "vtk_orients_faces",
]

MAX_BIN = 4.0
"""The coarsest bin (voxels) :func:`fit_budget` uses; past it, a label keeps more triangles."""


@dataclass(frozen=True, eq=False)
class LabelMesh:
    """Triangles on the boundaries of a label map, in index space.

    ``labels[t] = (a, b)``: triangle ``t`` separates label ``a`` (never the background) from
    ``b`` (0 for the background, else ``b > a``), and its normal (right-hand order) points out
    of ``a`` (with VTK 9.6 or newer: :func:`vtk_orients_faces`; older SurfaceNets leave the
    faces' order as it comes).
    ``bin_size`` is the :func:`simplify` bin in voxels (0: as SurfaceNets made it).
    """

    points: np.ndarray
    triangles: np.ndarray
    labels: np.ndarray
    bin_size: float = 0.0

    def counts(self) -> dict[int, int]:
        """Triangles in each label's closed surface (shared faces count for both labels)."""
        sides = self.labels[self.labels != 0]
        values, counts = np.unique(sides, return_counts=True)
        return {int(v): int(c) for v, c in zip(values, counts, strict=True)}

    def surface(self, value: int) -> tuple[np.ndarray, np.ndarray]:
        """The closed surface of label ``value``: its points and outward triangles, compacted."""
        mine = (self.labels == value).any(axis=1)
        triangles = self.triangles[mine]
        flip = self.labels[mine, 1] == value  # faces whose normal points into ``value``
        triangles[flip] = triangles[flip, ::-1]
        used = np.zeros(len(self.points), bool)
        used[triangles.ravel()] = True
        renumber = np.cumsum(used) - 1
        return self.points[used], renumber[triangles]


def label_mesh(
    labels: np.ndarray,
    values: Sequence[int],
    *,
    smooth_iterations: int = 16,
    corner: Any = (0, 0, 0),
) -> LabelMesh:
    """SurfaceNets of ``labels`` (``[k, j, i]``, non-negative integers, 0 = background).

    Only the labels in ``values`` get surfaces (others count as background). ``corner`` is the
    ``(i, j, k)`` index of ``labels[0, 0, 0]`` in the whole volume (when ``labels`` is a crop):
    the points come out in the whole volume's index space. The map is padded by one voxel of
    background, so every surface is closed. ``smooth_iterations=0``: no smoothing (the surface
    is the voxels' staircase).
    """
    import pyvista as pv
    from vtkmodules.vtkFiltersCore import vtkSurfaceNets3D

    if not len(values):
        return _empty()
    padded = np.pad(np.asarray(labels), 1)
    origin = np.asarray(corner, float) - 1.0
    grid = pv.ImageData(dimensions=padded.shape[::-1], origin=tuple(origin))
    grid.point_data["labels"] = padded.reshape(-1)
    nets = vtkSurfaceNets3D()
    nets.SetInputData(grid)
    nets.SetInputArrayToProcess(0, 0, 0, 0, "labels")  # port 0, connection 0, point data
    nets.SetBackgroundLabel(0)
    for n, value in enumerate(values):
        nets.SetLabel(n, float(value))
    nets.SetOutputMeshTypeToTriangles()
    nets.SetSmoothing(smooth_iterations > 0)
    if smooth_iterations > 0:
        nets.SetNumberOfIterations(int(smooth_iterations))
    nets.Update()
    output = pv.wrap(nets.GetOutput())
    if output.n_cells == 0:
        return _empty()
    points = np.asarray(output.points, np.float64)
    triangles = np.asarray(output.regular_faces, np.int64)
    pairs = np.asarray(output.cell_data["BoundaryLabels"]).reshape(-1, 2).astype(np.int64)
    return LabelMesh(points, triangles, pairs)


def simplify(mesh: LabelMesh, bin_size: float) -> LabelMesh:
    """Merge vertices of ``mesh`` per bin of ``bin_size`` voxels, facing and connectivity.

    Vertices merge when they share a bin, the dominant axis and sign of their normal, and are
    joined by edges inside that group; the merged vertex is their mean. Triangles that lose a
    corner vanish, and a triangle left twice (same corners, same labels) is kept once.
    """
    points, triangles = mesh.points, mesh.triangles
    n = len(points)
    if n == 0 or bin_size <= 1.0:
        return mesh
    corners = [points[triangles[:, c]] for c in range(3)]
    face_normals = np.cross(corners[1] - corners[0], corners[2] - corners[0])
    flat = triangles.ravel()
    normals = np.stack(
        [np.bincount(flat, np.repeat(face_normals[:, a], 3), minlength=n) for a in range(3)], 1
    )
    axis = np.abs(normals).argmax(axis=1)
    facing = 2 * axis + (normals[np.arange(n), axis] > 0)
    cell = np.floor((points - points.min(axis=0)) / bin_size).astype(np.int64)
    dims = cell.max(axis=0) + 1
    key = ((cell[:, 0] * dims[1] + cell[:, 1]) * dims[2] + cell[:, 2]) * 6 + facing
    cluster = _groups(n, triangles, key)
    sizes = np.bincount(cluster)
    merged = np.stack([np.bincount(cluster, points[:, a]) for a in range(3)], 1) / sizes[:, None]
    new = cluster[triangles]
    keep = (new[:, 0] != new[:, 1]) & (new[:, 1] != new[:, 2]) & (new[:, 2] != new[:, 0])
    new, pairs = new[keep], mesh.labels[keep]
    first = _first_unique_rows(np.concatenate([np.sort(new, axis=1), pairs], axis=1))
    return LabelMesh(merged, new[first], pairs[first], float(bin_size))


def fit_budget(
    mesh: LabelMesh,
    max_triangles: int,
    *,
    max_bin: float = MAX_BIN,
    cancel: CancelToken | None = None,
) -> LabelMesh:
    """``mesh`` simplified with the finest bin (steps of 1.25x) that leaves every label at most
    ``max_triangles`` triangles; unchanged when all already fit. Stops at ``max_bin`` voxels
    even if a label is still over the budget (the error stays bounded)."""
    largest = max(mesh.counts().values(), default=0)
    if largest <= max_triangles:
        return mesh
    bin_size = min(max(1.25, float(np.sqrt(largest / max(max_triangles, 1)))), max_bin)
    while True:
        check_cancel(cancel)
        simpler = simplify(mesh, bin_size)
        if max(simpler.counts().values(), default=0) <= max_triangles or bin_size >= max_bin:
            return simpler
        bin_size = min(bin_size * 1.25, max_bin)


def _groups(n: int, triangles: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Connected components of the edges whose two ends have the same ``key``."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    edges = triangles[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    edges = edges[key[edges[:, 0]] == key[edges[:, 1]]]
    graph = coo_matrix((np.ones(len(edges), np.int8), (edges[:, 0], edges[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def _first_unique_rows(rows: np.ndarray) -> np.ndarray:
    """Indices of the first occurrence of each distinct row, in order."""
    rows = np.ascontiguousarray(rows)
    as_bytes = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
    return np.sort(np.unique(as_bytes, return_index=True)[1])


def vtk_orients_faces() -> bool:
    """Whether this VTK's SurfaceNets orients its faces (9.6 or newer)."""
    from vtkmodules.vtkCommonCore import vtkVersion

    return (vtkVersion.GetVTKMajorVersion(), vtkVersion.GetVTKMinorVersion()) >= (9, 6)


def _empty() -> LabelMesh:
    return LabelMesh(np.empty((0, 3)), np.empty((0, 3), np.int64), np.empty((0, 2), np.int64))

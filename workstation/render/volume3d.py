"""3D: a Volume as ``pyvista.ImageData``, transfer functions, brain surfaces, offscreen frames.

- :func:`to_image_data` is *the* conversion Volume -> ``pyvista.ImageData`` (geometry included);
  nothing else re-derives VTK geometry.
- :data:`TRANSFER_PRESETS` / :func:`transfer_function`: opacity and colour for volume rendering,
  in the form ``plotter.add_volume(image, opacity=tf.opacity(), cmap=tf.cmap, clim=tf.clim)``.
- :func:`brain_surface`: mask -> marching cubes -> Taubin smoothing -> normals, in LPS mm.
- :func:`render_offscreen`: one frame with ``pyvista.Plotter(off_screen=True)`` (no display),
  for tests, benchmarks and documentation; the plotter is always closed.

World coordinates are LPS mm throughout: +x = patient left, +y = posterior, +z = superior.
pyvista and vtk are imported inside the functions, so importing this module stays light.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from workstation.core.volume import Volume
from workstation.render.colormaps import label_color

if TYPE_CHECKING:
    import pyvista

__all__ = [
    "PRESET_NAMES",
    "TRANSFER_PRESETS",
    "VIEWS",
    "TransferFunction",
    "brain_surface",
    "fit_scale",
    "render_offscreen",
    "to_image_data",
    "transfer_function",
]

SCALARS = "values"
BACKGROUND = (0, 0, 0)

# view name -> (unit LPS vector from the focal point to the camera, view-up LPS vector).
# "anterior": the camera faces the patient's face, superior up, patient's left on screen right.
# "left": left lateral, the camera at the patient's left, superior up, anterior on screen left.
# "superior": from above, anterior up, patient's left on screen left.
VIEWS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "anterior": ((0.0, -1.0, 0.0), (0.0, 0.0, 1.0)),
    "left": ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    "superior": ((0.0, 0.0, 1.0), (0.0, -1.0, 0.0)),
}


def to_image_data(volume: Volume, *, name: str = SCALARS) -> pyvista.ImageData:
    """The Volume as ``pyvista.ImageData`` in LPS mm: the one conversion.

    Dimensions are ``(i, j, k)``; spacing, origin and ``direction_matrix`` are the volume's, so
    point ``(i, j, k)`` lies at ``volume.index_to_lps((i, j, k))`` and holds ``array[k, j, i]``.
    VTK's point order (i fastest) is the C order of ``array[k, j, i]``: a C-contiguous array
    is shared, not copied (keep it unchanged while the image is in use).
    """
    import pyvista as pv

    image = pv.ImageData(
        dimensions=volume.size,
        spacing=volume.spacing,
        origin=volume.origin,
        direction_matrix=np.asarray(volume.direction),
    )
    image.point_data[name] = np.ascontiguousarray(volume.array).reshape(-1)
    image.point_data.active_scalars_name = name
    return image


# -- transfer functions ------------------------------------------------------------------------
@dataclass(frozen=True)
class TransferFunction:
    """Scalar points -> opacity (piecewise linear) and a matplotlib colour map over ``clim``."""

    name: str
    points: tuple[float, ...]
    opacities: tuple[float, ...]
    cmap: str

    @property
    def clim(self) -> tuple[float, float]:
        return (self.points[0], self.points[-1])

    def opacity(self, n: int = 128) -> np.ndarray:
        """``n`` opacities in [0, 1] sampled evenly over :attr:`clim`, for ``add_volume``.

        Keep ``n`` below ``add_volume``'s ``n_colors`` (256): pyvista interpolates a shorter
        float table, while one of exactly ``n_colors`` entries is read as 0-255 values.
        """
        return np.interp(np.linspace(*self.clim, n), self.points, self.opacities)


# Values: CT presets are in HU (the Volume holds rescaled values). MR presets are fractions of
# the foreground (value > 0) intensity percentiles, resolved per volume: (percentile, opacity).
#   MR brain: transparent below the 5th percentile (noise, CSF edge), 0.05 at the 40th
#             (grey matter), 0.3 at the 90th (white matter), 0.6 at the 99.5th; "bone" grey map.
#   MR glass: the same points at a tenth of the opacity: the brain as a see-through context for
#             findings and label surfaces inside it (which MR brain would hide).
#   CT bone:  transparent to 150 HU, 0.15 at 300 HU (cancellous), 0.6 at 700 HU, 0.85 at
#             1500 HU (cortical), 0.9 at 3000 HU; "bone" map.
#   CT skin:  transparent to -600 HU (air), 0.3 at -300 HU (skin/fat edge), 0.5 from -100 HU
#             on; "copper" map, so the skin surface reads as a solid shell.
_MR_PERCENTILES = {
    "MR brain": ((5.0, 40.0, 90.0, 99.5), (0.0, 0.05, 0.3, 0.6), "bone"),
    "MR glass": ((5.0, 40.0, 90.0, 99.5), (0.0, 0.005, 0.03, 0.06), "bone"),
}
TRANSFER_PRESETS: dict[str, TransferFunction] = {
    "CT bone": TransferFunction(
        "CT bone",
        (-1000.0, 150.0, 300.0, 700.0, 1500.0, 3000.0),
        (0.0, 0.0, 0.15, 0.6, 0.85, 0.9),
        "bone",
    ),
    "CT skin": TransferFunction(
        "CT skin", (-1000.0, -600.0, -300.0, -100.0, 3000.0), (0.0, 0.0, 0.3, 0.5, 0.5), "copper"
    ),
}
PRESET_NAMES = ("MR brain", "MR glass", "CT bone", "CT skin")


def transfer_function(name: str, volume: Volume | None = None) -> TransferFunction:
    """The preset ``name`` (:data:`PRESET_NAMES`); MR presets scale to ``volume``'s intensities."""
    if name in TRANSFER_PRESETS:
        return TRANSFER_PRESETS[name]
    if name not in _MR_PERCENTILES:
        raise ValueError(f"unknown transfer function {name!r}; choose from {PRESET_NAMES}")
    if volume is None:
        raise ValueError(f"{name!r} scales to a volume's intensities: pass the volume")
    percentiles, opacities, cmap = _MR_PERCENTILES[name]
    values = volume.array[volume.array > 0]
    if values.size == 0:
        values = volume.array.ravel()
    points = np.percentile(values[:: max(1, values.size // 1_000_000)], percentiles)
    points = np.maximum.accumulate(points + np.arange(len(points)) * 1e-6)  # strictly rising
    return TransferFunction(name, tuple(float(p) for p in points), opacities, cmap)


# -- surfaces ----------------------------------------------------------------------------------
def brain_surface(
    volume: Volume,
    mask: np.ndarray | Volume | None = None,
    *,
    level: float | None = None,
    smooth_iterations: int = 30,
    decimate: float | None = None,
) -> pyvista.PolyData:
    """A closed, smoothed surface of a (skull-stripped) brain mask, points in LPS mm.

    The mask is ``mask`` (array ``[k, j, i]`` or Volume on ``volume``'s grid, nonzero = inside),
    else ``volume.array > level``, else ``volume.array > 0`` (the demo template is already
    skull-stripped). Marching cubes (flying edges) runs at 0.5 on the mask padded by one voxel,
    so the surface is closed and lies half a voxel outside the boundary voxels' centres; then
    ``smooth_iterations`` of Taubin smoothing (shrink-free), optional ``decimate`` (fraction of
    triangles to remove), and outward point normals (``"Normals"``).
    """
    import pyvista as pv

    if mask is None:
        inside = volume.array > (0 if level is None else level)
    else:
        inside = np.asarray(mask.array if isinstance(mask, Volume) else mask) != 0
        if inside.shape != volume.shape:
            raise ValueError(f"mask shape {inside.shape} differs from the volume's {volume.shape}")
    if not inside.any():
        raise ValueError("the mask is empty: no surface to extract")
    padded = np.pad(inside.astype(np.uint8), 1)
    # Contour in index space (unit spacing, origin -1), then map the points to LPS ourselves:
    # explicit, and independent of which VTK filters honour the direction matrix.
    grid = pv.ImageData(dimensions=padded.shape[::-1], origin=(-1.0, -1.0, -1.0))
    grid.point_data["mask"] = padded.reshape(-1)
    surface = grid.contour([0.5], scalars="mask", method="flying_edges")
    surface.points = volume.index_to_lps(np.asarray(surface.points, dtype=np.float64))
    surface = surface.clean()
    if smooth_iterations > 0:
        surface = surface.smooth_taubin(n_iter=smooth_iterations, pass_band=0.05)
    if decimate:
        surface = surface.triangulate().decimate(decimate)
    return surface.compute_normals(auto_orient_normals=True, split_vertices=False)


# -- offscreen frames --------------------------------------------------------------------------
def fit_scale(bounds: Any) -> float:
    """Half the view height in mm for ``bounds``: 0.6 x the largest extent (fits any axis view)."""
    extent = np.asarray(bounds[1::2], float) - np.asarray(bounds[0::2], float)
    return 0.6 * float(extent.max()) or 1.0


def _set_camera(plotter: Any, bounds: Any, view: str) -> None:
    """A parallel-projection camera looking at the centre of ``bounds`` from ``view``.

    ``parallel_scale`` (half the view height, mm) is :func:`fit_scale`; one pixel is
    ``2 * scale / height`` mm.
    """
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; choose from {tuple(VIEWS)}")
    to_camera, up = VIEWS[view]
    lo, hi = np.asarray(bounds[0::2], float), np.asarray(bounds[1::2], float)
    centre, diagonal = (lo + hi) / 2, float(np.linalg.norm(hi - lo)) or 1.0
    camera = plotter.camera
    camera.focal_point = tuple(centre)
    camera.position = tuple(centre + 2.0 * diagonal * np.asarray(to_camera))
    camera.up = up
    camera.parallel_projection = True
    camera.parallel_scale = fit_scale(bounds)
    plotter.renderer.ResetCameraClippingRange()


def render_offscreen(
    volume: Volume,
    *,
    mode: str = "volume",
    preset: str | None = None,
    size: tuple[int, int] = (512, 512),
    labels: np.ndarray | Volume | None = None,
    view: str = "anterior",
    surface: pyvista.PolyData | None = None,
) -> np.ndarray:
    """One frame ``(height, width, 3)`` ``uint8`` RGB on a black background, no display needed.

    ``mode="volume"``: ray-cast volume rendering with the transfer function ``preset`` (default
    ``"MR brain"``, or ``"CT bone"`` when ``metadata["modality"] == "CT"``). ``mode="surface"``:
    the :func:`brain_surface` of the volume (or ``surface`` if given), bone-white; with
    ``labels`` (``[k, j, i]`` integers on the volume's grid) one surface per label instead,
    coloured by :func:`~workstation.render.colormaps.label_color`. The camera is
    parallel-projection from ``view`` (:data:`VIEWS`; default anterior: patient's left on the
    right of the image, superior up), fitted to the volume's LPS bounds.
    """
    import pyvista as pv

    if mode not in ("volume", "surface"):
        raise ValueError(f"mode must be 'volume' or 'surface', got {mode!r}")
    width, height = size
    plotter = pv.Plotter(off_screen=True, window_size=(width, height))
    try:
        plotter.set_background(BACKGROUND)
        image = to_image_data(volume)
        if mode == "volume":
            ct = str(volume.metadata.get("modality", "")).upper() == "CT"
            tf = transfer_function(preset or ("CT bone" if ct else "MR brain"), volume)
            image.point_data[SCALARS] = image.point_data[SCALARS].astype(np.float32, copy=False)
            plotter.add_volume(
                image,
                scalars=SCALARS,
                opacity=tf.opacity(),
                cmap=tf.cmap,
                clim=tf.clim,
                show_scalar_bar=False,
                shade=False,
            )
        elif labels is not None:
            label_array = np.asarray(labels.array if isinstance(labels, Volume) else labels)
            for value in np.unique(label_array[label_array != 0]):
                mesh = brain_surface(volume, label_array == value, smooth_iterations=15)
                rgba = label_color(int(value))
                plotter.add_mesh(mesh, color=rgba[:3], smooth_shading=True)
        else:
            mesh = surface if surface is not None else brain_surface(volume)
            plotter.add_mesh(mesh, color=(235, 225, 210), smooth_shading=True, specular=0.2)
        _set_camera(plotter, image.bounds, view)
        frame = plotter.screenshot(return_img=True)
    finally:
        plotter.close()
        plotter.deep_clean()
    return np.ascontiguousarray(np.asarray(frame)[..., :3], dtype=np.uint8)

"""3D first frame: a 256³ brain volume rendered offscreen (software rendering, no display).

The demo brain MR (189 × 233 × 197 at 1 mm) is resampled (trilinear) to 256³ (``--quick``:
128³). Each measurement builds a fresh offscreen plotter, so it is a *first* frame:

- ``ours``: :func:`workstation.render.to_image_data` (geometry, direction, no copy) + add the
  volume with the "MR brain" transfer function + the first frame (screenshot), in a 512² window.
- ``reference``: ``pyvista.wrap(array)`` (no geometry at all: the floor) + the same
  ``add_volume`` call and first frame.
- ``surface_extract``: :func:`workstation.render.brain_surface` of the 256³ volume (marching
  cubes, 30 Taubin iterations, normals); ``surface_frame``: first frame of that surface.

- ``still`` / ``interactive``: a re-render (not a first frame) of the same volume through
  :class:`workstation.render.scene3d.VolumeProp` at the 3D view's two quality levels, and
  ``crop_move``: moving the crosshair crop (uniforms only, no upload) plus that re-render.

- ``label_surfaces``: the demo study's three tissue labels (197 x 233 x 189; ``--quick``: the
  superior half) as :func:`workstation.render.scene3d.label_surfaces` makes them (one
  SurfaceNets pass, a triangle budget per label) against the reference, marching cubes per
  label (flying edges on each label's mask in its bounding box, 15 Taubin iterations, normals:
  the previous implementation): build seconds, triangles, and a re-render of the surfaces as
  :class:`~workstation.render.scene3d.SurfaceProp` actors (Phong, as the 3D view draws them).

Also saves one surface render of the demo brain (native grid) to ``/tmp/brain_surface.png``.
No goal: the ratio should be ~1 (the conversion is a view); the absolute numbers document what
software rendering costs here.
"""

from __future__ import annotations

import time
from pathlib import Path

import _common as c
import numpy as np

NAME = "render3d"
PNG = Path("/tmp/brain_surface.png")


def resampled_brain(n: int):
    """The demo brain resampled to ``n³`` voxels over the same LPS extent."""
    from scipy.ndimage import zoom

    from workstation.config import demo_study_path
    from workstation.core.volume import Volume
    from workstation.dicom import load_series

    brain = load_series(demo_study_path())
    factors = [n / s for s in brain.shape]
    array = zoom(brain.array.astype(np.float32), factors, order=1).astype(np.uint16)
    spacing = tuple(s * sz / n for s, sz in zip(brain.spacing, brain.size, strict=True))
    return brain, Volume(array, spacing=spacing, origin=brain.origin, direction=brain.direction)


def first_frame(dataset, tf, size: int) -> np.ndarray:
    import pyvista as pv

    plotter = pv.Plotter(off_screen=True, window_size=(size, size))
    try:
        plotter.add_volume(
            dataset,
            scalars="values",
            opacity=tf.opacity(),
            cmap=tf.cmap,
            clim=tf.clim,
            show_scalar_bar=False,
            shade=False,
        )
        plotter.view_xz()
        return plotter.screenshot(return_img=True)
    finally:
        plotter.close()


def quality_frames(volume, size: int, repeat: int) -> dict:
    """Best re-render times of a :class:`VolumeProp` at still / interactive quality, and of a
    crop move (the 3D view's cursor update) at still quality."""
    import pyvista as pv

    from workstation.render.scene3d import VolumeProp, crosshair_crop, default_camera

    plotter = pv.Plotter(off_screen=True, window_size=(size, size))
    try:
        prop = VolumeProp(volume, "MR brain")
        plotter.renderer.AddVolume(prop.actor)
        pose = default_camera(prop.bounds)
        camera = plotter.camera
        camera.position, camera.focal_point, camera.up = pose.position, pose.focal_point, pose.up
        plotter.screenshot(return_img=True)  # the first frame uploads the voxels
        centre = np.asarray(volume.size, float) / 2
        shifts = iter(range(10**6))

        def still() -> None:
            prop.set_quality("still")
            plotter.render()

        def interactive() -> None:
            prop.set_quality("interactive")
            plotter.render()

        def crop_move() -> None:
            prop.set_quality("still")
            offset = next(shifts) % 5
            prop.set_crop(crosshair_crop(volume, volume.index_to_lps(centre + offset)))
            plotter.render()

        return c.measure(
            {"still": still, "interactive": interactive, "crop_move": crop_move}, repeat
        )
    finally:
        plotter.close()


def tissue_labels(quick: bool):
    """The demo tissue labels (a Volume), or their superior half with ``quick``."""
    from workstation.config import demo_study_path
    from workstation.core.volume import Volume
    from workstation.dicom import load_series
    from workstation.render.tissue import demo_tissue_labels

    labels = demo_tissue_labels(load_series(demo_study_path())).volume
    if not quick:
        return labels
    k0 = labels.shape[0] // 2
    origin = tuple(labels.index_to_lps((0.0, 0.0, float(k0))))
    return Volume(
        labels.array[k0:], spacing=labels.spacing, origin=origin, direction=labels.direction
    )


def marching_cubes_labels(volume) -> list:
    """The reference: per label, marching cubes on its mask in its bounding box, smoothed."""
    from scipy import ndimage

    from workstation.core.volume import Volume
    from workstation.render import brain_surface
    from workstation.render.scene3d import LabelSurface

    labels = volume.array
    surfaces = []
    for n, box in enumerate(ndimage.find_objects(labels)):
        if box is None:
            continue
        corner = np.array([box[2].start, box[1].start, box[0].start], float)
        local = Volume(
            (labels[box] == n + 1).astype(np.uint8),
            spacing=volume.spacing,
            origin=tuple(volume.index_to_lps(corner)),
            direction=volume.direction,
        )
        mesh = brain_surface(local, smooth_iterations=15)
        surfaces.append(LabelSurface(n + 1, (200, 200, 200, 255), mesh))
    return surfaces


def surfaces_frame(surfaces: list, size: int, repeat: int) -> float:
    """Best re-render time of ``surfaces`` as SurfaceProp actors (after an untimed first
    frame), the camera turning a degree between frames."""
    import pyvista as pv

    from workstation.render.scene3d import SurfaceProp, default_camera

    plotter = pv.Plotter(off_screen=True, window_size=(size, size))
    try:
        for surface in surfaces:
            plotter.renderer.AddActor(SurfaceProp(surface.mesh, surface.rgba).actor)
        bounds = np.array([s.mesh.bounds for s in surfaces])
        pose = default_camera(
            np.column_stack([bounds[:, 0::2].min(0), bounds[:, 1::2].max(0)]).ravel()
        )
        camera = plotter.camera
        camera.position, camera.focal_point, camera.up = pose.position, pose.focal_point, pose.up
        plotter.screenshot(return_img=True)
        best = float("inf")
        for _ in range(repeat):
            camera.Azimuth(1.0)
            plotter.renderer.ResetCameraClippingRange()
            t0 = time.perf_counter()
            plotter.render()
            best = min(best, time.perf_counter() - t0)
        return best
    finally:
        plotter.close()


def label_rows(quick: bool, size: int, repeat: int) -> dict:
    """Build time, triangles and frame time of the tissue label surfaces, ours and reference."""
    from workstation.core.volume import Volume
    from workstation.render.scene3d import LABEL_TRIANGLE_BUDGET, label_surfaces

    labels = tissue_labels(quick)
    c.log(f"tissue label surfaces on {'x'.join(map(str, labels.size))} voxels ...")
    toy = Volume(np.pad(np.ones((6, 6, 6), np.uint8), 3))
    label_surfaces(toy), marching_cubes_labels(toy)  # lazy imports, outside the timing
    built: dict[str, list] = {}

    def ours() -> None:
        built["ours"] = label_surfaces(labels)

    def reference() -> None:
        built["reference"] = marching_cubes_labels(labels)

    times = c.measure({"ours": ours, "reference": reference}, repeat, warmup=False)
    triangles = {name: sum(s.mesh.n_cells for s in built[name]) for name in built}
    frames = {name: surfaces_frame(built[name], size, max(repeat, 2)) for name in built}
    return {
        "build": times["ours"].best,
        "build_reference": times["reference"].best,
        "build_ratio": times["ours"].best / times["reference"].best,
        "triangles": triangles["ours"],
        "triangles_reference": triangles["reference"],
        "triangles_ratio": triangles["ours"] / triangles["reference"],
        "triangles_per_label": [s.mesh.n_cells for s in built["ours"]],
        "frame": frames["ours"],
        "frame_reference": frames["reference"],
        "frame_ratio": frames["ours"] / frames["reference"],
        "budget_per_label": LABEL_TRIANGLE_BUDGET,
        "shape": list(labels.size),
        "reference_name": "marching cubes per label (flying edges in its box, 15 Taubin "
        "iterations, normals: the previous label_surfaces)",
    }


def main() -> None:
    args = c.parse_args(__doc__.splitlines()[0], repeat=3, quick_repeat=2)
    import pyvista as pv
    import vtk

    from workstation.render import brain_surface, render_offscreen, to_image_data
    from workstation.render import transfer_function as tf_of

    n, size = (128, 512) if args.quick else (256, 512)
    c.log(f"resampling the demo brain to {n}³ ...")
    brain, volume = resampled_brain(n)
    tf = tf_of("MR brain", volume)
    surfaces: list = []

    def ours() -> np.ndarray:
        return first_frame(to_image_data(volume), tf, size)

    def reference() -> np.ndarray:
        image = pv.wrap(volume.array.transpose())  # (i, j, k) view, unit spacing, no direction
        image.point_data.set_array(image.active_scalars, "values")
        return first_frame(image, tf, size)

    def extract() -> object:
        surfaces.append(brain_surface(volume))
        return surfaces[-1]

    def surface_frame() -> np.ndarray:
        return render_offscreen(volume, mode="surface", surface=surfaces[-1], size=(size, size))

    times = c.measure(
        {"ours": ours, "reference": reference, "extract": extract, "surface": surface_frame},
        args.repeat,
    )
    quality = quality_frames(volume, size, args.repeat)
    triangles = surfaces[-1].n_cells
    labels = label_rows(args.quick, size, 1 if args.quick else args.repeat)
    frame = render_offscreen(brain, mode="surface", size=(size, size))
    from PIL import Image

    Image.fromarray(frame).save(PNG)
    c.print_table(
        f"3D first frame, {n}³ uint16, {size}² window, best of {args.repeat} (ms)",
        ["step", "time"],
        [
            ["ours: to_image_data + volume frame", c.ms(times["ours"].best)],
            ["reference: pv.wrap + volume frame", c.ms(times["reference"].best)],
            ["brain_surface (marching cubes, smooth)", c.ms(times["extract"].best)],
            [f"surface frame ({triangles:,} triangles)", c.ms(times["surface"].best)],
            ["re-render, still quality", c.ms(quality["still"].best)],
            ["re-render, interactive quality", c.ms(quality["interactive"].best)],
            ["crop moved + re-render (still)", c.ms(quality["crop_move"].best)],
        ],
    )
    c.print_table(
        f"demo tissue label surfaces, {'x'.join(map(str, labels['shape']))} voxels, {size}² window",
        ["", "build (ms)", "triangles", "frame (ms)"],
        [
            [
                "ours: SurfaceNets + budget",
                c.ms(labels["build"]),
                f"{labels['triangles']:,}",
                c.ms(labels["frame"]),
            ],
            [
                "reference: marching cubes per label",
                c.ms(labels["build_reference"]),
                f"{labels['triangles_reference']:,}",
                c.ms(labels["frame_reference"]),
            ],
            [
                "ratio",
                f"{labels['build_ratio']:.2f}",
                f"{labels['triangles_ratio']:.2f}",
                f"{labels['frame_ratio']:.2f}",
            ],
        ],
    )
    ours_s, ref_s = times["ours"].best, times["reference"].best
    t0 = time.perf_counter()
    to_image_data(volume)
    convert_s = time.perf_counter() - t0
    c.emit(
        {
            "benchmark": NAME,
            "ours": ours_s,
            "reference": ref_s,
            "reference_name": "pyvista.wrap(array) (no geometry) + the same first volume frame",
            "ratio": ours_s / ref_s,
            "to_image_data": convert_s,
            "surface_extract": times["extract"].best,
            "surface_frame": times["surface"].best,
            "surface_triangles": triangles,
            "frame_still": quality["still"].best,
            "frame_interactive": quality["interactive"].best,
            "frame_crop_move": quality["crop_move"].best,
            "label_surfaces": labels,
            "surface_png": str(PNG),
            "shape": [n, n, n],
            "window": [size, size],
            "quick": args.quick,
            "repeat": args.repeat,
            "environment": {
                **c.environment(),
                "pyvista": pv.__version__,
                "vtk": vtk.vtkVersion.GetVTKVersion(),
            },
        }
    )


if __name__ == "__main__":
    main()

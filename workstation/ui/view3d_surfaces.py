"""The 3D view's surfaces: meshes built on workers, actors added on the GUI thread.

:func:`layer_job` says how a layer becomes surfaces (a worker task and a styler): a labels
layer one surface per label in the layer's colours, a heatmap layer a translucent iso-surface
at its threshold (the middle of its range without one); :func:`brain_task` makes the brain
surface of the base volume.

:class:`SurfaceGroups` keeps one group of :class:`~workstation.render.scene3d.SurfaceProp` per
key (a layer, or :data:`BRAIN` for the brain surface). :meth:`SurfaceGroups.build` runs a plain
``f(*, progress, cancel) -> list[LabelSurface]`` on the key's own
:class:`~workstation.ui.tasks.TaskRunner` (a newer build of the same key cancels the older one),
then swaps the group's actors in the renderer when the meshes arrive;
:meth:`SurfaceGroups.build_layer`, :meth:`~SurfaceGroups.layer_changed` and
:meth:`~SurfaceGroups.show_brain` apply the layers' and the toolbar's changes. Nothing here
touches VTK off the GUI thread: workers only make ``PolyData``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from functools import partial
from typing import Any

from PySide6.QtCore import QObject, Signal

from workstation.core.tasks import CancelToken, ProgressFn
from workstation.core.volume import Volume
from workstation.render.layers import HeatmapLayer, LabelsLayer, Layer
from workstation.render.scene3d import (
    CrosshairCrop,
    LabelSurface,
    SurfaceProp,
    heatmap_surface,
    label_surfaces,
)
from workstation.render.volume3d import brain_surface
from workstation.ui.tasks import TaskRunner

__all__ = [
    "BRAIN",
    "SurfaceGroups",
    "brain_task",
    "has_surfaces",
    "layer_job",
    "rebuild_fields",
]

log = logging.getLogger(__name__)

BRAIN = "brain surface"
"""The key of the base volume's brain surface."""

BRAIN_RGBA = (235, 225, 210, 255)
HEATMAP_OPACITY = 0.5
"""Iso-surfaces stay translucent: this times the layer's opacity."""
LABELS_MIN_OPACITY_3D = 0.8
"""A label surface inside a volume rendering must be nearly opaque to be seen, whatever the 2D
fill opacity (Slicer likewise keeps separate 2D fill and 3D opacities); 0 still hides it."""

Styler = Callable[[list[SurfaceProp]], None]
Task = Callable[..., list[LabelSurface]]


class SurfaceGroups(QObject):
    """Surface actors grouped by key, each group built by its own worker.

    Signals
    -------
    ready(key)
        The group's new actors are in the renderer (styled, cropped); a render is requested.
    failed(message, details)
    status(text)
        Progress text while a build runs; ``""`` when it ends.
    """

    ready = Signal(object)
    failed = Signal(str, str)
    status = Signal(str)

    def __init__(
        self, renderer: Any, request_render: Callable[[], None], parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._renderer = renderer
        self._request_render = request_render
        self._groups: dict[Hashable, list[SurfaceProp]] = {}
        self._runners: dict[Hashable, TaskRunner] = {}
        self._stylers: dict[Hashable, Styler] = {}
        self._crop: CrosshairCrop | None = None
        self._brain_shown = False

    def props(self, key: Hashable) -> list[SurfaceProp]:
        """The group's props (empty until its first build lands)."""
        return list(self._groups.get(key, ()))

    def has(self, key: Hashable) -> bool:
        """Whether the group's meshes are in the scene."""
        return key in self._groups

    def busy(self, key: Hashable) -> bool:
        """Whether a build of the group is running."""
        runner = self._runners.get(key)
        return runner is not None and runner.busy

    def build(
        self, key: Hashable, task: Callable[..., list[LabelSurface]], styler: Styler, name: str
    ) -> None:
        """Run ``task(progress=, cancel=)`` on the key's worker; replace the group with its
        surfaces, styled by ``styler`` (now and on :meth:`restyle`)."""
        runner = self._runners.get(key)
        if runner is None:
            runner = TaskRunner(self, threads=1)
            runner.finished.connect(partial(self._landed, key))
            runner.failed.connect(partial(self._failed, key, name))
            runner.cancelled.connect(partial(self.status.emit, ""))
            runner.progress.connect(
                lambda done, total, message: self.status.emit(f"3D: {name}: {message}")
            )
            self._runners[key] = runner
        self._stylers[key] = styler
        self.status.emit(f"3D: building {name}")
        runner.start(task)

    def show_brain(self, volume: Volume, shown: bool) -> None:
        """Show or hide the brain surface of ``volume`` (built on a worker the first time)."""
        self._brain_shown = bool(shown)
        if not shown:
            for prop in self.props(BRAIN):
                prop.set_visible(False)
            self._request_render()
        elif self.has(BRAIN):
            self.restyle(BRAIN)
        elif not self.busy(BRAIN):
            self.build(BRAIN, partial(brain_task, volume), self._style_brain, BRAIN)

    def build_layer(self, layer: Layer) -> None:
        """(Re)build the surfaces of a labels or heatmap layer (others have none)."""
        job = layer_job(layer)
        if job is not None:
            self.build(layer, *job, repr(layer.name))

    def layer_changed(self, layer: Layer, field_name: str) -> None:
        """Rebuild or restyle a layer's surfaces after its ``field_name`` changed."""
        if field_name in rebuild_fields(layer):
            self.build_layer(layer)
        elif field_name in ("visible", "opacity", "colors"):
            self.restyle(layer)

    def restyle(self, key: Hashable) -> None:
        """Apply the key's styler again (the layer's colours, opacity or visibility changed)."""
        if key in self._groups:
            self._stylers[key](self._groups[key])
            self._request_render()

    def remove(self, key: Hashable) -> None:
        """Cancel the key's build and take its actors out of the scene."""
        runner = self._runners.pop(key, None)
        if runner is not None:
            _retire(runner)
        self._stylers.pop(key, None)
        for prop in self._groups.pop(key, ()):
            self._renderer.RemoveActor(prop.actor)
        self._request_render()

    def set_crop(self, crop: CrosshairCrop | None) -> None:
        """Clip every surface by ``crop`` (``None``: no clipping)."""
        self._crop = crop
        for group in self._groups.values():
            for prop in group:
                prop.set_crop(crop)

    def shutdown(self) -> None:
        """Cancel and wait for every worker, and take every actor out (the view closes)."""
        for runner in self._runners.values():
            runner.shutdown()
        for key in list(self._groups):
            for prop in self._groups.pop(key):
                self._renderer.RemoveActor(prop.actor)
        self._runners.clear()
        self._stylers.clear()

    # -- delivery on the GUI thread -----------------------------------------------------------
    def _landed(self, key: Hashable, surfaces: object) -> None:
        if key not in self._stylers:  # removed meanwhile
            return
        for prop in self._groups.pop(key, ()):
            self._renderer.RemoveActor(prop.actor)
        props = [
            SurfaceProp(surface.mesh, surface.rgba, label=surface.label)
            for surface in surfaces  # type: ignore[attr-defined]
            if surface.mesh.n_points
        ]
        self._stylers[key](props)
        for prop in props:
            prop.set_crop(self._crop)
            self._renderer.AddActor(prop.actor)
        self._groups[key] = props
        self.status.emit("")
        self._request_render()
        self.ready.emit(key)

    def _style_brain(self, props: list[SurfaceProp]) -> None:
        for prop in props:
            prop.set_visible(self._brain_shown)

    def _failed(self, key: Hashable, name: str, message: str, details: str) -> None:
        self.status.emit("")
        self.failed.emit(f"3D: {name}: {message}", details)


def _retire(runner: TaskRunner) -> None:
    """Let a runner go: cancel its task, delete it once the task has reported."""
    for signal in (runner.finished, runner.failed, runner.cancelled, runner.progress):
        signal.disconnect()
    if runner.busy:
        runner.cancel()
        for signal in (runner.finished, runner.failed, runner.cancelled):
            signal.connect(runner.deleteLater)
    else:
        runner.deleteLater()


# -- what each kind of layer becomes ----------------------------------------------------------
def has_surfaces(layer: Layer) -> bool:
    """Whether the 3D view draws ``layer`` as surfaces (labels and heatmap layers)."""
    return isinstance(layer, (LabelsLayer, HeatmapLayer))


def layer_job(layer: Layer) -> tuple[Task, Styler] | None:
    """The worker task (inputs snapshotted now) and the styler of a layer's surfaces; ``None``
    for layers drawn otherwise (images)."""
    if isinstance(layer, LabelsLayer):
        task: Task = partial(label_surfaces, layer.volume, layer.colors)
    elif isinstance(layer, HeatmapLayer):
        low, high = layer.range
        level = layer.threshold if layer.threshold is not None else (low + high) / 2
        task = partial(_heatmap_task, layer.volume, level, layer.colormap, layer.range)
    else:
        return None
    return task, partial(_style_layer, layer)


def rebuild_fields(layer: Layer) -> tuple[str, ...]:
    """The layer fields whose change needs new meshes (others only restyle)."""
    if isinstance(layer, HeatmapLayer):
        return ("volume", "threshold", "range", "colormap")
    return ("volume",)


def brain_task(volume: Volume, *, progress: ProgressFn, cancel: CancelToken) -> list[LabelSurface]:
    """The brain surface of ``volume`` (:func:`~workstation.render.volume3d.brain_surface`)."""
    progress(0, 1, "extracting the brain surface")
    mesh = brain_surface(volume)
    cancel.raise_if_cancelled()
    return [LabelSurface(0, BRAIN_RGBA, mesh)]


def _heatmap_task(
    volume: Volume,
    level: float,
    cmap: str,
    value_range: tuple[float, float],
    *,
    progress: ProgressFn,
    cancel: CancelToken,
) -> list[LabelSurface]:
    progress(0, 1, "iso-surface")
    surface = heatmap_surface(volume, level, cmap=cmap, value_range=value_range, cancel=cancel)
    return [] if surface is None else [surface]


def _style_layer(layer: Layer, props: list[SurfaceProp]) -> None:
    """A layer's look: its visibility, opacity and (labels) colours."""
    opacity = layer.opacity * (HEATMAP_OPACITY if isinstance(layer, HeatmapLayer) else 1.0)
    if isinstance(layer, LabelsLayer) and opacity > 0:
        opacity = max(opacity, LABELS_MIN_OPACITY_3D)
    for prop in props:
        if isinstance(layer, LabelsLayer):
            prop.set_color(layer.color(prop.label))
        prop.set_opacity(opacity)
        prop.set_visible(layer.visible)

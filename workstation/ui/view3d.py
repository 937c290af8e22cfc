"""The 3D view of a :class:`~workstation.render.StudyView`: volume rendering, surfaces, crop.

The widget observes the study view and draws what :mod:`workstation.render.scene3d` decides:

- the base :class:`~workstation.render.ImageLayer` ray-cast with a preset (default from the
  modality: MR -> "MR brain", CT -> "CT bone"); the voxels are uploaded once per volume;
- the brain surface (:meth:`View3D.show_surface`) and one surface per label of each
  :class:`~workstation.render.LabelsLayer` (a heatmap layer: an iso-surface at its threshold),
  built on workers (:mod:`workstation.ui.view3d_surfaces`), following the layers' visibility,
  opacity and colours, removed with their layer;
- "crop to crosshair" (:meth:`View3D.set_clip_to_crosshair`): the octant at the cursor facing
  the camera is cut away; moving the cursor moves the planes (uniforms and a surface clip, no
  rebuild); after each rotation the cut turns to the octant facing the camera;
- reduced sampling while the user drags (the interactor style's Start/EndInteractionEvent).

Loading: a progressive load adds the base layer first (blank voxels) and fills it in place, so
a new base volume is not drawn when it appears: the view shows "waiting for the volume" until
:meth:`View3D.refresh_volume` (the main window calls it once loading ends). Then the scene is
built once, or, for the volume already drawn (voxels changed in place), re-uploaded without a
new actor. :attr:`View3D.scene_ready` tells when that scene's first frame is on screen.

The pyvistaqt interactor (an OpenGL widget, :mod:`workstation.ui.view3d_canvas`) is created on
first use and needs a display (the ``xcb`` platform, e.g. under Xvfb); on the ``offscreen``
platform the view shows a note instead. The toolbar is :mod:`workstation.ui.view3d_toolbar`.
Call :meth:`View3D.detach` (or close the widget) before it goes away.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QSignalBlocker, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QGuiApplication
from PySide6.QtWidgets import QVBoxLayout, QWidget

from workstation.core.errors import WorkstationError
from workstation.core.volume import Volume
from workstation.render.layers import ImageLayer, Layer
from workstation.render.scene3d import (
    CrosshairCrop,
    SurfaceProp,
    VolumeProp,
    crosshair_crop,
    default_camera,
    default_preset,
    facing_octant,
)
from workstation.render.study_view import StudyView
from workstation.render.volume3d import PRESET_NAMES
from workstation.ui.view3d_canvas import NO_DISPLAY_PLATFORMS, Canvas3D, CanvasStack
from workstation.ui.view3d_surfaces import BRAIN, SurfaceGroups, has_surfaces
from workstation.ui.view3d_toolbar import View3DToolbar

__all__ = ["NO_DISPLAY_PLATFORMS", "View3D", "View3DError"]

WAITING = "waiting for the volume"


class View3DError(WorkstationError):
    """The 3D view cannot do what was asked (no display, nothing drawn yet)."""


class View3D(QWidget):
    """Volume rendering and surfaces of a :class:`StudyView`, with a small toolbar.

    Parameters
    ----------
    study_view
        The model to draw; the view observes it until :meth:`detach`.
    parent
        Qt parent.

    Signals
    -------
    scene_ready()
        The first frame of a scene (re)built or refreshed by :meth:`refresh_volume` rendered.
    surfaces_ready(object)
        The surfaces of a layer (or of the brain, key ``"brain surface"``) are in the scene and
        a frame with them has been rendered.
    failed(str, str)
        A surface worker failed: message and traceback (empty for expected errors).
    status_changed(str)
        Short progress text for a status bar (``""`` when idle).
    """

    scene_ready = Signal()
    surfaces_ready = Signal(object)
    failed = Signal(str, str)
    status_changed = Signal(str)

    def __init__(self, study_view: StudyView, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.study_view = study_view
        self._canvas: Canvas3D | None = None
        self._surfaces: SurfaceGroups | None = None
        self._volume_prop: VolumeProp | None = None
        self._announce = False  # emit scene_ready after the next render
        self._landed: list[object] = []  # surface keys to announce after the next render
        self._preset: str | None = None
        self._clip = False
        self._cut: tuple[int, int, int] | None = None
        self._show_surface = False
        self._detached = False

        self.toolbar = View3DToolbar()
        self.presets = self.toolbar.presets
        self.surface_action = self.toolbar.surface_action
        self.clip_action = self.toolbar.clip_action
        self.presets.currentTextChanged.connect(self.set_preset)  # the items are PRESET_NAMES
        self.surface_action.toggled.connect(self.show_surface)
        self.clip_action.toggled.connect(self.set_clip_to_crosshair)
        self.toolbar.reset_action.triggered.connect(self.reset_camera)

        self._area = CanvasStack()
        self.message = self._area.message
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.toolbar)
        layout.addWidget(self._area, 1)

        events = study_view.events
        self._observed = [
            (events.inserted, self._on_inserted),
            (events.removed, self._on_removed),
            (events.changed, self._on_changed),
            (events.cursor, self._on_cursor),
        ]
        for event, callback in self._observed:
            event.connect(callback)
        self._area.show_message(WAITING)
        for layer in study_view.layers:
            if layer is not study_view.base or not isinstance(layer, ImageLayer):
                self._build_layer(layer)

    # -- public API ---------------------------------------------------------------------------
    @property
    def available(self) -> bool:
        """Whether 3D rendering can run on this Qt platform (it needs a display)."""
        return self._area.available

    @property
    def interactor(self) -> Any:
        """The pyvistaqt ``QtInteractor`` (``None`` until the first volume is drawn)."""
        return None if self._canvas is None else self._canvas.interactor

    @property
    def renderer(self) -> Any:
        """The ``vtkRenderer`` (``None`` before the interactor exists)."""
        return None if self._canvas is None else self._canvas.renderer

    @property
    def volume_prop(self) -> VolumeProp | None:
        """The drawn base volume (its actor, mapper, preset, crop and quality)."""
        return self._volume_prop

    @property
    def preset(self) -> str | None:
        """The volume-rendering preset in use (``None`` before a volume is drawn)."""
        return self._preset

    @property
    def clip_to_crosshair(self) -> bool:
        return self._clip

    @property
    def surface_shown(self) -> bool:
        return self._show_surface

    @property
    def waiting(self) -> bool:
        """True while no volume is drawn (none yet, or a new one awaits :meth:`refresh_volume`)."""
        return self._volume_prop is None

    def surface_props(self, key: Layer | str) -> list[SurfaceProp]:
        """The surfaces drawn for a layer, or for :data:`BRAIN` (``"brain surface"``)."""
        return [] if self._surfaces is None else self._surfaces.props(key)

    def set_preset(self, name: str) -> None:
        """Volume-render with the transfer function ``name`` (one of ``PRESET_NAMES``)."""
        if name not in PRESET_NAMES:
            raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESET_NAMES)}")
        self._preset = name
        with QSignalBlocker(self.presets):
            self.presets.setCurrentText(name)
        if self._volume_prop is not None and self._volume_prop.preset != name:
            self._volume_prop.set_preset(name)
            self._request_render()

    def show_surface(self, on: bool) -> None:
        """Show the brain surface of the base volume (built on a worker the first time)."""
        self._show_surface = bool(on)
        with QSignalBlocker(self.surface_action):
            self.surface_action.setChecked(self._show_surface)
        if self._surfaces is not None and self._volume_prop is not None:
            self._surfaces.show_brain(self._volume_prop.volume, self._show_surface)

    def set_clip_to_crosshair(self, on: bool) -> None:
        """Cut away the octant at the cursor that faces the camera (surfaces are clipped too)."""
        self._clip = bool(on)
        with QSignalBlocker(self.clip_action):
            self.clip_action.setChecked(self._clip)
        self._cut = self._camera_octant() if self._clip else None
        self._apply_crop()

    def crop(self) -> CrosshairCrop | None:
        """The crop in force (``None`` when clipping is off or nothing is drawn)."""
        if not self._clip or self._volume_prop is None:
            return None
        return crosshair_crop(self._volume_prop.volume, self.study_view.cursor_lps, self._cut)

    def reset_camera(self) -> None:
        """The default oblique view (anterior, left, superior) fitted to the volume."""
        if self._volume_prop is not None and self._canvas is not None:
            self._canvas.set_pose(default_camera(self._volume_prop.bounds))

    def refresh_volume(self) -> None:
        """Draw the base volume: build the scene for a new volume object, or re-upload the one
        drawn (its voxels changed in place). Call it once a load has finished."""
        if self._detached:
            return
        prop, volume = self._volume_prop, self._base_volume()
        if volume is None:
            self._drop_volume()
            self._area.show_message(WAITING)
        elif prop is None or volume is not prop.volume:
            self._build(volume)
        else:
            prop.refresh()
            if self._surfaces is not None:
                self._surfaces.remove(BRAIN)
            self.show_surface(self._show_surface)
            self._announce = True
            self._request_render()

    def frame(self) -> np.ndarray:
        """The view as it renders now: ``(height, width, 3)`` ``uint8`` RGB (device pixels)."""
        if self._canvas is None:
            raise View3DError("the 3D view has drawn nothing yet")
        return self._canvas.frame()

    def save_screenshot(self, path: str | os.PathLike[str]) -> Path:
        """Render and save the 3D view (PNG, or any format Qt knows by the suffix)."""
        if self._canvas is None:
            raise View3DError("the 3D view has drawn nothing yet: no screenshot")
        path = Path(path)
        if not self._canvas.save(path):
            raise View3DError(f"cannot write the screenshot {path}")
        return path

    def detach(self) -> None:
        """Stop observing the model, stop the workers and release the OpenGL interactor."""
        self._detached = True
        for event, callback in self._observed:
            event.disconnect(callback)
        self._observed = []
        if self._surfaces is not None:
            self._surfaces.shutdown()
            self._surfaces = None
        self._drop_volume()
        self._canvas = None
        self._area.release()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.detach()
        super().closeEvent(event)

    # -- the interactor -----------------------------------------------------------------------
    def _ensure_interactor(self) -> bool:
        if self._canvas is not None or self._detached:
            return self._canvas is not None
        self._canvas = self._area.create_canvas(
            on_start_interaction=self._on_start_interaction,
            on_end_interaction=self._on_end_interaction,
            on_rendered=self._on_rendered,
        )
        if self._canvas is not None:
            self._surfaces = SurfaceGroups(self._canvas.renderer, self._request_render, self)
            self._surfaces.ready.connect(self._surfaces_landed)
            self._surfaces.failed.connect(self.failed)
            self._surfaces.status.connect(self.status_changed)
        return self._canvas is not None

    def _request_render(self) -> None:
        """Repaint soon (one render in the widget's paint, however many requests came)."""
        if self._canvas is not None:
            self._canvas.request_render()

    def _surfaces_landed(self, key: object) -> None:
        self._landed.append(key)
        self._request_render()

    def _on_rendered(self, _obj: Any, _event: str) -> None:
        if self._announce and self._volume_prop is not None:
            self._announce = False
            QTimer.singleShot(0, self, self.scene_ready.emit)  # not from inside the paint
        landed, self._landed = self._landed, []
        for key in landed:
            QTimer.singleShot(0, self, lambda key=key: self.surfaces_ready.emit(key))

    def _on_start_interaction(self, _obj: Any, _event: str) -> None:
        if self._volume_prop is not None:
            self._volume_prop.set_quality("interactive")

    def _on_end_interaction(self, _obj: Any, _event: str) -> None:
        if self._volume_prop is not None:
            self._volume_prop.set_quality("still")
        if self._clip:
            cut = self._camera_octant()
            if cut != self._cut:
                self._cut = cut
                self._apply_crop()
        self._request_render()  # the style renders after this event too: Qt merges the two

    def _camera_octant(self) -> tuple[int, int, int] | None:
        if self._volume_prop is None or self._canvas is None:
            return None
        return facing_octant(self._volume_prop.volume, self._canvas.to_camera())

    # -- the base volume ----------------------------------------------------------------------
    def _base_volume(self) -> Volume | None:
        base = self.study_view.base
        return base.volume if isinstance(base, ImageLayer) else None

    def _base_changed(self) -> None:
        """A new base volume object: drop the scene and wait for :meth:`refresh_volume`."""
        prop = self._volume_prop
        if prop is not None and self._base_volume() is not prop.volume:
            self._drop_volume()
            self._area.show_message(WAITING)

    def _build(self, volume: Volume) -> None:
        self._drop_volume()
        if not self._ensure_interactor():
            platform = QGuiApplication.platformName()
            self._area.show_message(f"3D needs an OpenGL display (Qt platform: {platform})")
            return
        base = self.study_view.base
        assert base is not None
        self._preset = default_preset(volume)
        with QSignalBlocker(self.presets):
            self.presets.setCurrentText(self._preset)
        prop = VolumeProp(volume, self._preset, opacity=base.opacity)
        prop.set_visible(base.visible)
        self._volume_prop = prop
        self.renderer.AddVolume(prop.actor)
        self._area.show_canvas()
        self.reset_camera()
        if self._clip:
            self._cut = self._camera_octant()
        self._apply_crop()
        self.show_surface(self._show_surface)
        self._announce = True

    def _drop_volume(self) -> None:
        if self._surfaces is not None:
            self._surfaces.remove(BRAIN)
        if self._volume_prop is not None and self.renderer is not None:
            self.renderer.RemoveVolume(self._volume_prop.actor)
        self._volume_prop = None
        self._request_render()

    def _apply_crop(self) -> None:
        crop = self.crop()
        if self._volume_prop is not None:
            self._volume_prop.set_crop(crop)
        if self._surfaces is not None:
            self._surfaces.set_crop(crop)
        self._request_render()

    # -- layers -------------------------------------------------------------------------------
    def _build_layer(self, layer: Layer) -> None:
        if has_surfaces(layer) and self._ensure_interactor() and self._surfaces is not None:
            self._surfaces.build_layer(layer)

    def _on_inserted(self, index: int, layer: Layer) -> None:
        if layer is self.study_view.base and isinstance(layer, ImageLayer):
            self._base_changed()
        else:
            self._build_layer(layer)

    def _on_removed(self, index: int, layer: Layer) -> None:
        if self._surfaces is not None:
            self._surfaces.remove(layer)
        if self._volume_prop is not None and layer.volume is self._volume_prop.volume:
            self._base_changed()

    def _on_changed(self, layer: Layer, field_name: str) -> None:
        prop = self._volume_prop
        if layer is self.study_view.base and isinstance(layer, ImageLayer):
            if field_name == "volume":
                self._base_changed()
            elif prop is not None and field_name == "visible":
                prop.set_visible(layer.visible)
                self._request_render()
            elif prop is not None and field_name == "opacity":
                prop.set_opacity(layer.opacity)
                self._request_render()
        elif self._surfaces is not None:
            self._surfaces.layer_changed(layer, field_name)

    def _on_cursor(self, _point: object) -> None:
        if self._clip:
            self._apply_crop()

"""The 3D view's OpenGL canvas: the pyvistaqt interactor, its VTK observers, camera and grabs.

:class:`CanvasStack` shows a note (``message``) until the canvas exists, and the note or the
canvas after; it makes no canvas on a platform without a display (:data:`NO_DISPLAY_PLATFORMS`).
:class:`Canvas3D` creates the ``QtInteractor`` (pyvistaqt imported on first use), clears the
plotter's key bindings, observes the interactor style's Start/EndInteractionEvent and the
renderer's EndEvent for :class:`~workstation.ui.view3d.View3D`, and removes those observers
again in :meth:`Canvas3D.close`. Rendering happens in the widget's paint
(:meth:`Canvas3D.request_render`), on the GUI thread.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage
from PySide6.QtWidgets import QLabel, QStackedLayout, QWidget

from workstation.render.scene3d import CameraPose

__all__ = ["BACKGROUND", "NO_DISPLAY_PLATFORMS", "Canvas3D", "CanvasStack"]

BACKGROUND = (0.0, 0.0, 0.0)
NO_DISPLAY_PLATFORMS = ("offscreen", "minimal")
"""Qt platforms on which the OpenGL interactor cannot run."""
VtkCallback = Callable[[Any, str], None]


class Canvas3D:
    """A pyvistaqt ``QtInteractor`` in ``parent``, with the view's VTK observers.

    Parameters
    ----------
    parent
        The widget that shows it.
    on_start_interaction, on_end_interaction
        Called when the user starts and stops dragging (the interactor style's events).
    on_rendered
        Called after every render (the renderer's ``EndEvent``).
    """

    def __init__(
        self,
        parent: QWidget,
        *,
        on_start_interaction: VtkCallback,
        on_end_interaction: VtkCallback,
        on_rendered: VtkCallback,
    ) -> None:
        from pyvistaqt import QtInteractor

        self.interactor: Any = QtInteractor(parent, auto_update=False)
        self.interactor.set_background(BACKGROUND)
        self.interactor.iren.clear_key_event_callbacks()  # no "q" closing the embedded plotter
        style = self.interactor.iren.interactor.GetInteractorStyle()
        self._observers: list[tuple[Any, int]] = [
            (subject, subject.AddObserver(name, callback))
            for subject, name, callback in (
                (style, "StartInteractionEvent", on_start_interaction),
                (style, "EndInteractionEvent", on_end_interaction),
                (self.interactor.renderer, "EndEvent", on_rendered),
            )
        ]

    @property
    def renderer(self) -> Any:
        """The ``vtkRenderer``."""
        return self.interactor.renderer

    def request_render(self) -> None:
        """Repaint soon (one render in the widget's paint, however many requests came)."""
        self.interactor.update()

    def set_pose(self, pose: CameraPose, *, view_angle: float = 30.0) -> None:
        """A perspective camera at ``pose``; a render is requested."""
        camera = self.renderer.GetActiveCamera()
        camera.ParallelProjectionOff()
        camera.SetViewAngle(view_angle)
        camera.SetFocalPoint(*pose.focal_point)
        camera.SetPosition(*pose.position)
        camera.SetViewUp(*pose.up)
        self.renderer.ResetCameraClippingRange()
        self.request_render()

    def to_camera(self) -> np.ndarray:
        """The vector from the focal point to the camera, LPS."""
        camera = self.renderer.GetActiveCamera()
        return np.subtract(camera.GetPosition(), camera.GetFocalPoint())

    def frame(self) -> np.ndarray:
        """The canvas as it renders now: ``(height, width, 3)`` ``uint8`` RGB (device pixels)."""
        image = self.interactor.grabFramebuffer().convertToFormat(QImage.Format.Format_RGB888)
        height, width = image.height(), image.width()
        rows = np.frombuffer(image.constBits(), np.uint8, image.sizeInBytes())
        rows = rows.reshape(height, image.bytesPerLine())[:, : width * 3]
        return rows.reshape(height, width, 3).copy()  # the QImage's buffer goes with it

    def save(self, path: str | os.PathLike[str]) -> bool:
        """Render and write the canvas to ``path`` (format by suffix); whether Qt wrote it."""
        return bool(self.interactor.grabFramebuffer().save(str(Path(path))))

    def close(self) -> None:
        """Remove the observers and release the interactor (finalises its render window)."""
        for subject, tag in self._observers:
            subject.RemoveObserver(tag)
        self._observers = []
        self.interactor.close()  # pyvistaqt needs it to finalise the render window
        self.interactor.deleteLater()


class CanvasStack(QWidget):
    """The note ``message`` or, once :meth:`create_canvas` made it, the :class:`Canvas3D`."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.canvas: Canvas3D | None = None
        self.available = QGuiApplication.platformName() not in NO_DISPLAY_PLATFORMS
        """Whether a canvas can be made on this Qt platform (it needs a display)."""
        self.message = QLabel()
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setStyleSheet("background: black; color: #c0c0c0;")
        self._stack = QStackedLayout(self)
        self._stack.addWidget(self.message)

    def create_canvas(self, **callbacks: VtkCallback) -> Canvas3D | None:
        """The canvas, made now (with :class:`Canvas3D`'s ``callbacks``) if need be; ``None``
        where the platform has no display."""
        if self.canvas is None and self.available:
            self.canvas = Canvas3D(self, **callbacks)
            self._stack.addWidget(self.canvas.interactor)
        return self.canvas

    def show_message(self, text: str) -> None:
        self.message.setText(text)
        self._stack.setCurrentWidget(self.message)

    def show_canvas(self) -> None:
        if self.canvas is not None:
            self._stack.setCurrentWidget(self.canvas.interactor)

    def release(self) -> None:
        """Close the canvas (see :meth:`Canvas3D.close`)."""
        if self.canvas is not None:
            canvas, self.canvas = self.canvas, None
            self._stack.removeWidget(canvas.interactor)
            canvas.close()

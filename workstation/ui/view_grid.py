"""The central view area: the three MPR slice views and the 3D view, in a chosen layout.

Layouts (one click or key in the main window):

- ``1x1``: the axial view alone;
- ``1x3``: axial, coronal, sagittal side by side;
- ``2x2``: axial, coronal / sagittal, 3D.

All three slice views exist from the start and observe the same
:class:`~workstation.render.StudyView`; a layout only shows some of them. The 3D view is built
lazily, the first time a layout shows it and :meth:`ViewGrid.ensure_3d` is called (after the
window's first paint: importing pyvistaqt and VTK costs about a second). Until then, or when it
cannot start (no OpenGL display, e.g. Qt's ``offscreen`` platform), its cell says why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QGridLayout, QLabel, QWidget

from workstation.render import StudyView, ViewPlane
from workstation.ui.slice_view import SliceView

__all__ = ["LAYOUTS", "ViewGrid"]

log = logging.getLogger(__name__)

_3D = "3d"
LAYOUTS: dict[str, tuple[tuple[str | ViewPlane, int, int], ...]] = {
    "1x1": ((ViewPlane.AXIAL, 0, 0),),
    "1x3": ((ViewPlane.AXIAL, 0, 0), (ViewPlane.CORONAL, 0, 1), (ViewPlane.SAGITTAL, 0, 2)),
    "2x2": (
        (ViewPlane.AXIAL, 0, 0),
        (ViewPlane.CORONAL, 0, 1),
        (ViewPlane.SAGITTAL, 1, 0),
        (_3D, 1, 1),
    ),
}

View3DFactory = Callable[[StudyView, QWidget], QWidget]


def default_3d_factory(study_view: StudyView, parent: QWidget) -> QWidget:
    """The pyvistaqt 3D view (imported here, lazily)."""
    from workstation.ui.view3d import View3D

    return View3D(study_view, parent)


def opengl_display_available() -> bool:
    """Whether Qt runs on a platform where a VTK OpenGL widget can live."""
    return QGuiApplication.platformName() not in ("offscreen", "minimal")


class ViewGrid(QWidget):
    """The slice views and the 3D view of one study view, laid out by :meth:`set_layout`.

    Signals
    -------
    layout_changed(str)
    view3d_ready(object)
        The 3D view was built (the widget), or could not be (``None``; the cell explains).
    """

    layout_changed = Signal(str)
    view3d_ready = Signal(object)

    def __init__(
        self,
        study_view: StudyView,
        layout: str = "1x3",
        *,
        view3d_factory: View3DFactory = default_3d_factory,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.study_view = study_view
        self._factory = view3d_factory
        self.slice_views = {plane: SliceView(study_view, plane) for plane in ViewPlane}
        self.view3d: QWidget | None = None
        self._placeholder = QLabel("3D view: starts after the first image")
        self._placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._placeholder.setWordWrap(True)
        self._placeholder.setStyleSheet("color: rgb(255, 220, 0); background: black;")
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(2)
        self.layout_name = ""
        self.set_layout(layout)

    @property
    def views(self) -> list[SliceView]:
        """The slice views the current layout shows, in layout order."""
        return [
            self.slice_views[kind]
            for kind, _, _ in LAYOUTS[self.layout_name]
            if isinstance(kind, ViewPlane)
        ]

    @property
    def shows_3d(self) -> bool:
        """Whether the current layout has a 3D cell."""
        return any(kind == _3D for kind, _, _ in LAYOUTS[self.layout_name])

    def set_layout(self, name: str) -> None:
        """Show the views of layout ``name`` (``1x1``, ``1x3`` or ``2x2``)."""
        if name not in LAYOUTS:
            raise ValueError(f"unknown layout {name!r}; choose one of {', '.join(LAYOUTS)}")
        if name == self.layout_name:
            return
        while self._grid.count():
            item = self._grid.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.hide()
        for row in range(2):
            self._grid.setRowStretch(row, 0)
        for column in range(3):
            self._grid.setColumnStretch(column, 0)
        for kind, row, column in LAYOUTS[name]:
            widget = self._cell_3d() if kind == _3D else self.slice_views[kind]  # type: ignore[index]
            self._grid.addWidget(widget, row, column)
            self._grid.setRowStretch(row, 1)
            self._grid.setColumnStretch(column, 1)
            widget.show()
        self.layout_name = name
        self.layout_changed.emit(name)

    def _cell_3d(self) -> QWidget:
        return self.view3d if self.view3d is not None else self._placeholder

    def ensure_3d(self) -> QWidget | None:
        """Build the 3D view if the layout shows it and it does not exist yet; return it.

        Without an OpenGL display, or when building fails, the cell says so and ``None`` is
        returned (the 2D views go on working).
        """
        if self.view3d is not None or not self.shows_3d:
            return self.view3d
        if not opengl_display_available():
            self._placeholder.setText(
                "3D view: needs an OpenGL display (Qt runs on the "
                f"'{QGuiApplication.platformName()}' platform)"
            )
            self.view3d_ready.emit(None)
            return None
        try:
            view = self._factory(self.study_view, self)
        except Exception as error:  # VTK/OpenGL failures are many and platform-specific
            log.exception("the 3D view could not start")
            self._placeholder.setText(f"3D view: could not start ({error})")
            self.view3d_ready.emit(None)
            return None
        self.view3d = view
        index = self._grid.indexOf(self._placeholder)
        if index >= 0:
            row, column, _, _ = self._grid.getItemPosition(index)
            self._grid.removeWidget(self._placeholder)
            self._placeholder.hide()
            self._grid.addWidget(view, row, column)
            view.show()
        self.view3d_ready.emit(view)
        return view

    def detach(self) -> None:
        """Stop every view observing the model (the window is closing)."""
        for view in self.slice_views.values():
            view.detach()
        if self.view3d is not None:
            detach = getattr(self.view3d, "detach", None)
            if callable(detach):
                detach()
            self.view3d.close()

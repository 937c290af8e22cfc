"""The 3D view's toolbar: rendering preset, brain surface, crop to crosshair, reset camera.

:class:`View3DToolbar` only holds the controls; :class:`~workstation.ui.view3d.View3D` connects
them to its methods and keeps them in step (with signals blocked) when those are called.
"""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QToolBar, QWidget

from workstation.render.volume3d import PRESET_NAMES

__all__ = ["TOOLBAR_STYLE", "View3DToolbar"]

TOOLBAR_STYLE = (
    "QToolBar { background: #262626; border: none; }"
    " QToolButton { color: #e0e0e0; padding: 2px 6px; }"
    " QToolButton:checked { background: #4a4a4a; border-radius: 3px; }"
    " QComboBox { color: #e0e0e0; background: #3a3a3a; border: 1px solid #555;"
    " padding: 1px 6px; }"
)


class View3DToolbar(QToolBar):
    """``presets`` (a combo of ``PRESET_NAMES``), the checkable ``surface_action`` and
    ``clip_action``, and ``reset_action``."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("3D", parent)
        self.setStyleSheet(TOOLBAR_STYLE)
        self.presets = QComboBox()
        self.presets.addItems(list(PRESET_NAMES))
        self.presets.setToolTip("Volume rendering preset")
        self.addWidget(self.presets)
        self.surface_action = self.addAction("Surface")
        self.surface_action.setCheckable(True)
        self.surface_action.setToolTip("Show the brain surface")
        self.clip_action = self.addAction("Clip")
        self.clip_action.setCheckable(True)
        self.clip_action.setToolTip("Cut away the octant at the crosshair facing the camera")
        self.reset_action = self.addAction("Reset camera")

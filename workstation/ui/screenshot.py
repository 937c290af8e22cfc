"""Grab the window as the user sees it, the 3D (native OpenGL) canvas included."""

from __future__ import annotations

from PySide6.QtGui import QGuiApplication, QPixmap
from PySide6.QtWidgets import QApplication, QWidget

__all__ = ["grab_window"]


def grab_window(window: QWidget) -> QPixmap:
    """The window's pixels. On X11 (``xcb``) the VTK canvas is a native OpenGL window that
    ``QWidget.grab()`` leaves black, so the screen is read where the window is; elsewhere (and
    on the ``offscreen`` platform, which has no 3D view) ``grab()`` is exact."""
    window.repaint()
    QApplication.processEvents()
    if QGuiApplication.platformName() == "xcb" and window.screen() is not None:
        frame = window.geometry()
        return window.screen().grabWindow(0, frame.x(), frame.y(), frame.width(), frame.height())
    return window.grab()

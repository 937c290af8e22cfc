"""The Qt user interface: the only package that imports PySide6.

- :mod:`~workstation.ui.tasks`: :class:`TaskRunner` runs ``f(*, progress, cancel)`` functions
  on a thread pool; progress, partial results and completion come back by queued signals.
- :mod:`~workstation.ui.slice_view`: :class:`SliceView`, one plane of a
  :class:`~workstation.render.StudyView`.
- :mod:`~workstation.ui.main_window`: :class:`MainWindow` (layouts, progressive loading, W/L
  presets, the problems panel); :mod:`~workstation.ui.app`: :func:`run_gui`.

Import the submodules directly; this package imports no Qt by itself, so ``import
workstation.ui`` stays cheap.
"""

from __future__ import annotations

__all__: list[str] = []

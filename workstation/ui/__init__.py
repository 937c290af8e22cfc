"""The Qt user interface: the only package that imports PySide6.

- :mod:`~workstation.ui.tasks`: :class:`TaskRunner` runs ``f(*, progress, cancel)`` functions
  on a thread pool; progress, partial results and completion come back by queued signals.
- :mod:`~workstation.ui.slice_view`: :class:`SliceView`, one plane of a
  :class:`~workstation.render.StudyView`.
- :mod:`~workstation.ui.slice_tools`, :mod:`~workstation.ui.slice_overlay`,
  :mod:`~workstation.ui.cine`: the slice view's mouse/key tools, overlays (crosshair, rulers,
  corner text) and cine playback.
- :mod:`~workstation.ui.view3d` (+ ``view3d_*``): the pyvistaqt 3D view, built lazily.
- :mod:`~workstation.ui.view_grid`: the 1×1 / 1×3 / 2×2 layouts of the slice views and 3D.
- :mod:`~workstation.ui.browser`, :mod:`~workstation.ui.layer_panel`,
  :mod:`~workstation.ui.pacs_dialog` (+ ``pacs_*``): the study browser, the layers panel, the
  PACS search dialog.
- :mod:`~workstation.ui.main_window`: :class:`MainWindow` (progressive loading, W/L presets,
  the problems panel) with :mod:`~workstation.ui.window_actions` (menus, toolbar);
  :mod:`~workstation.ui.app`: :func:`run_gui`; :mod:`~workstation.ui.screenshot`.

Import the submodules directly; this package imports no Qt by itself, so ``import
workstation.ui`` stays cheap.
"""

from __future__ import annotations

__all__: list[str] = []

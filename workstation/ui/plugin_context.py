"""What a plugin's panels get from the main window: :class:`WindowPanelContext`.

It implements :class:`~workstation.plugins.api.PanelContext` for one plugin: the shown volume
and crosshair, the study browser's series (patients only as digests) and loading one with the
window's own Qt-free loader, overlays (named ``"NAME (plugin)"``, resampled onto the base
image's grid when needed), worker tasks (:class:`~workstation.ui.plugin_tasks.PluginTasks`),
status messages and a private data folder.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from workstation.config import paths
from workstation.core.volume import Volume
from workstation.plugins import PluginError
from workstation.plugins.api import SeriesInfo

if TYPE_CHECKING:
    from workstation.core.tasks import CancelToken, ProgressFn
    from workstation.dicom import Series
    from workstation.ui.main_window import MainWindow
    from workstation.ui.plugin_host import PluginHost

__all__ = ["WindowPanelContext", "listed_series", "patient_key", "show_overlay"]

log = logging.getLogger(__name__)


def patient_key(patient_id: str, name: str) -> str:
    """A stable digest that tells patients apart without revealing the ID or the name."""
    text = f"medical-workstation patient\0{patient_id or ''}\0{'' if patient_id else name or ''}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class WindowPanelContext:
    """What one plugin's panels get from the main window (see ``PanelContext``)."""

    def __init__(self, host: PluginHost, plugin: str) -> None:
        self._host = host
        self._plugin = plugin

    @property
    def plugin_name(self) -> str:
        return self._plugin

    def current_volume(self) -> Volume | None:
        base = self._host.window.study_view.base
        return None if base is None else base.volume

    def cursor_lps(self) -> tuple[float, float, float] | None:
        return self._host.window.study_view.cursor_lps

    def series(self) -> list[SeriesInfo]:
        return [info for info, _ in listed_series(self._host.window)]

    def load_series(
        self, key: str, *, progress: ProgressFn | None = None, cancel: CancelToken | None = None
    ) -> Volume:
        from workstation.core.tasks import CancelToken
        from workstation.workflow import load_progressively

        found = {info.key: series for info, series in listed_series(self._host.window)}
        if key not in found:
            raise PluginError(f"no series {key!r} is listed in the study browser")
        return load_progressively(
            found[key],
            progress=progress or (lambda *_: None),
            cancel=cancel or CancelToken(),
            partial=lambda _update: None,
        )

    def show_overlay(
        self,
        name: str,
        volume: Volume,
        *,
        kind: str = "heatmap",
        colormap: str = "coolwarm",
        opacity: float = 0.5,
        label_names: Mapping[int, str] | None = None,
    ) -> None:
        show_overlay(
            self._host.window, self._plugin, name, volume, kind, colormap, opacity, label_names
        )

    def run_task(
        self,
        function: Callable[..., Any],
        *,
        on_done: Callable[[Any], None],
        on_failed: Callable[[str], None] | None = None,
        title: str = "",
    ) -> Callable[[], None]:
        return self._host.tasks.start(self._plugin, function, on_done, on_failed, title)

    def status(self, text: str) -> None:
        self._host.window.statusBar().showMessage(f"{self._plugin}: {text}", 10_000)

    def data_dir(self) -> Path:
        folder = paths().home / "plugins" / "data" / self._plugin
        folder.mkdir(parents=True, exist_ok=True)
        return folder


def show_overlay(
    window: MainWindow,
    plugin: str,
    name: str,
    volume: Volume,
    kind: str,
    colormap: str,
    opacity: float,
    label_names: Mapping[int, str] | None = None,
) -> None:
    """Add (or replace) the layer ``"NAME (plugin)"`` over the window's image."""
    from workstation.render import COLORMAPS, HeatmapLayer, LabelsLayer

    study_view = window.study_view
    base = study_view.base
    if base is None:
        raise PluginError("there is no image to show an overlay on", plugin=plugin)
    if kind not in ("heatmap", "labels"):
        raise ValueError(f"an overlay's kind is 'heatmap' or 'labels', not {kind!r}")
    volume = _onto_grid(volume, base.volume, labels=kind == "labels")
    layer_name = f"{name} ({plugin})"
    if layer_name in [layer.name for layer in study_view.layers]:
        study_view.remove(layer_name)
    if kind == "labels":
        layer: Any = LabelsLayer(
            volume, label_names=dict(label_names or {}), name=layer_name, opacity=opacity
        )
    else:
        if colormap not in COLORMAPS:
            log.info("colormap %r is not available; %s uses inferno", colormap, plugin)
            colormap = "inferno"
        value_range = None
        if colormap in DIVERGING:
            volume, value_range = _signed(volume)
        layer = HeatmapLayer(
            volume, colormap=colormap, name=layer_name, opacity=opacity, range=value_range
        )
    study_view.add(layer)


DIVERGING = ("coolwarm",)


def _signed(volume: Volume) -> tuple[Volume, tuple[float, float] | None]:
    """A signed map for a diverging colour map: symmetric about 0, near-zero transparent."""
    values = np.asarray(volume.array, dtype=np.float32)
    magnitude = np.abs(values[np.isfinite(values)])
    nonzero = magnitude[magnitude > 0]
    if nonzero.size == 0:
        return volume, None
    top = float(np.percentile(nonzero, 99.5))
    shown = np.where(np.abs(values) >= 0.1 * top, values, np.nan).astype(np.float32)
    return volume.with_array(shown), (-top, top)


def listed_series(window: MainWindow) -> list[tuple[SeriesInfo, Series]]:
    """Every series of the study browser's catalog (safe to call from a worker)."""
    catalog = window.browser.catalog
    if catalog is None:
        return []
    listed = []
    for patient in catalog.patients:
        digest = patient_key(patient.patient_id, patient.name)
        for study in patient.studies:
            for series in study.series:
                info = SeriesInfo(
                    key=f"{study.uid}/{series.key}",
                    patient_key=digest,
                    study_uid=study.uid,
                    series_uid=series.uid,
                    study_date=study.date if len(study.date) == 8 else "",
                    description=series.description or "",
                    modality=series.modality or "",
                    images=series.slice_count,
                )
                listed.append((info, series))
    return listed


def _onto_grid(volume: Volume, reference: Volume, *, labels: bool) -> Volume:
    """``volume`` on ``reference``'s voxel grid (resampled when it is not; 0 outside)."""
    from workstation.render.grid import grid_differences

    if not grid_differences(volume, reference):
        return volume
    import numpy as np
    import SimpleITK as sitk

    image = volume.to_sitk()
    if not labels:
        image = sitk.Cast(image, sitk.sitkFloat32)
    interpolator = sitk.sitkNearestNeighbor if labels else sitk.sitkLinear
    out = sitk.Resample(image, reference.to_sitk(), sitk.Transform(), interpolator, 0.0)
    array = sitk.GetArrayFromImage(out)
    dtype = volume.array.dtype if labels else np.float32
    return reference.with_array(array.astype(dtype, copy=False))

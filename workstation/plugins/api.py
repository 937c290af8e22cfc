"""The plugin API, version 1: what a plugin contributes and what the workstation hands it.

A plugin is an ordinary Python distribution. Its ``pyproject.toml`` names its contributions as
entry points, one group per kind, and the plugin API it was written for::

    [project.entry-points."medical_workstation.panels"]
    measure = "mw_measure.panel:MeasurePanel"

    [tool.medical-workstation]
    plugin-api = ">=1.0,<2"

The workstation reads that metadata without importing anything (the signed bundle's manifest, or
``pyproject.toml`` for an unsigned plugin in developer mode) and resolves an entry point only when
the contribution is first used. Each entry point names a class (instantiated with no arguments)
or a ready object; either way the object must offer what the matching Protocol below lists.

Compatibility follows semantic versioning: a plugin that asks for ``>=1.0,<2`` runs on every
1.x API; a minor version only adds. A plugin whose requirement excludes :data:`API_VERSION` is
refused with a message that says both versions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from workstation.core.tasks import CancelToken, ProgressFn
from workstation.core.volume import Volume

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "API_VERSION",
    "GROUPS",
    "Explainer",
    "Exporter",
    "Loader",
    "Panel",
    "PanelContext",
    "Pipeline",
    "SeriesInfo",
]

API_VERSION = "1.0"

#: Contribution kind → entry-point group.
GROUPS: Mapping[str, str] = {
    "loaders": "medical_workstation.loaders",
    "pipelines": "medical_workstation.pipelines",
    "explainers": "medical_workstation.explainers",
    "panels": "medical_workstation.panels",
    "exporters": "medical_workstation.exporters",
}


@runtime_checkable
class Loader(Protocol):
    """Opens images the DICOM engine does not (``workstation open`` / ``export`` fall back to it).

    ``suffixes`` are lower-case file name endings (``".mgz"``); ``load`` returns one volume in
    LPS with its geometry (:class:`~workstation.core.volume.Volume`).
    """

    title: str
    suffixes: Sequence[str]

    def load(
        self, path: Path, *, progress: ProgressFn | None = None, cancel: CancelToken | None = None
    ) -> Volume: ...


@runtime_checkable
class Pipeline(Protocol):
    """A batch analysis: ``workstation plugins run PLUGIN/NAME --input ... --out DIR``.

    ``inputs`` are paths (folders or files of DICOM series, in the order given); ``parameters``
    are strings from ``--param KEY=VALUE`` (the pipeline parses and checks them); ``out`` is a
    folder the pipeline writes its files into. It returns a JSON-able summary.
    """

    title: str
    description: str

    def run(
        self,
        inputs: Sequence[Path],
        out: Path,
        parameters: Mapping[str, str],
        *,
        progress: ProgressFn | None = None,
        cancel: CancelToken | None = None,
    ) -> Mapping[str, Any]: ...


@runtime_checkable
class Explainer(Protocol):
    """An attribution method offered beside Grad-CAM, integrated gradients and occlusion.

    ``attribute`` gets the model in eval mode and its input tensor (N=1, C=1, D, H, W) and
    returns a (D, H, W) array of the evidence for ``target`` (an output index, or a callable
    reducing the output to one score per batch item). Faithfulness is measured by the host.
    """

    title: str

    def attribute(
        self,
        model: Any,
        tensor: Any,
        target: int | Callable[[Any], Any],
        *,
        progress: ProgressFn | None = None,
        cancel: CancelToken | None = None,
    ) -> np.ndarray: ...


@runtime_checkable
class Exporter(Protocol):
    """Writes a volume in another format: ``workstation export ... --out FILE<suffix>``."""

    title: str
    suffix: str

    def export(self, volume: Volume, path: Path) -> None: ...


@dataclass(frozen=True)
class SeriesInfo:
    """A series the user has open or can open (from the study browser), without pixel data."""

    key: str  # an opaque handle for PanelContext.load_series
    patient_key: str  # equal for series of the same patient (a digest, never the name or ID)
    study_uid: str
    series_uid: str
    study_date: str  # YYYYMMDD, "" when unknown
    description: str
    modality: str
    images: int


class PanelContext(Protocol):
    """What the workstation hands a panel (implemented by the GUI; Qt-free to describe).

    Long work goes through :meth:`run_task`, never on the GUI thread.
    """

    @property
    def plugin_name(self) -> str: ...

    def current_volume(self) -> Volume | None:
        """The volume the viewer shows (None before anything is loaded)."""

    def cursor_lps(self) -> tuple[float, float, float] | None:
        """The crosshair position in LPS millimetres."""

    def series(self) -> Sequence[SeriesInfo]:
        """Every series the study browser lists (the opened folder or PACS study)."""

    def load_series(
        self, key: str, *, progress: ProgressFn | None = None, cancel: CancelToken | None = None
    ) -> Volume:
        """Load a listed series (call it inside :meth:`run_task`'s function)."""

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
        """Show ``volume`` over the current image (``kind``: ``heatmap`` or ``labels``).

        A second call with the same ``name`` replaces the layer.
        """

    def run_task(
        self,
        function: Callable[..., Any],
        *,
        on_done: Callable[[Any], None],
        on_failed: Callable[[str], None] | None = None,
        title: str = "",
    ) -> Callable[[], None]:
        """Run ``function(progress=..., cancel=...)`` in a worker; the result goes to
        ``on_done`` on the GUI thread. Progress shows in the status bar, with Cancel. Returns a
        function that cancels the task."""

    def status(self, text: str) -> None:
        """A short message in the status bar."""

    def data_dir(self) -> Path:
        """A private, writable folder for this plugin's files (created on first call)."""


@runtime_checkable
class Panel(Protocol):
    """A dock panel (or tool) in the main window, listed in the Plugins menu.

    ``create`` returns a Qt widget (``PySide6.QtWidgets.QWidget``); the plugin imports Qt
    itself. It is called once, the first time the user opens the panel.
    """

    title: str

    def create(self, context: PanelContext) -> Any: ...


def describe(kind: str) -> type:
    """The Protocol a contribution of ``kind`` (a key of :data:`GROUPS`) must satisfy."""
    return {
        "loaders": Loader,
        "pipelines": Pipeline,
        "explainers": Explainer,
        "panels": Panel,
        "exporters": Exporter,
    }[kind]

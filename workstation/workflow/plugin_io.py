"""Plugin loaders and exporters, found by file name: ``workstation export`` uses them.

A loader opens a file the DICOM engine does not (its ``suffixes``); an exporter writes a format
the workstation does not (its ``suffix``). Built-in formats come first: a plugin never
replaces how the workstation reads DICOM or writes ``.nii.gz`` / ``.nrrd`` / ``.mha``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workstation.core.tasks import CancelToken, ProgressFn
from workstation.core.volume import Volume
from workstation.plugins import PluginRegistry

__all__ = ["plugin_exporter", "plugin_loader"]


def _matching(registry: PluginRegistry, kind: str, name: str, suffixes_of: Any) -> Any:
    for contribution in registry.contributions(kind):
        obj = registry.load(contribution)
        if any(name.endswith(s.lower()) for s in suffixes_of(obj)):
            return obj
    return None


def plugin_exporter(out: str | Path, registry: PluginRegistry | None = None) -> Any:
    """The plugin exporter whose suffix ``out`` ends with, or ``None``."""
    registry = registry or PluginRegistry.discover()
    return _matching(registry, "exporters", Path(out).name.lower(), lambda e: [e.suffix])


def plugin_loader(path: str | Path, registry: PluginRegistry | None = None) -> Any:
    """The plugin loader for the file ``path`` (by suffix), or ``None`` (folders: DICOM)."""
    path = Path(path)
    if not path.is_file():
        return None
    registry = registry or PluginRegistry.discover()
    return _matching(registry, "loaders", path.name.lower(), lambda loader: loader.suffixes)


def load_with_plugin(
    loader: Any, path: str | Path, *, progress: ProgressFn | None, cancel: CancelToken | None
) -> Volume:
    """Call a plugin loader and check that it returned a Volume."""
    volume = loader.load(Path(path), progress=progress, cancel=cancel)
    if not isinstance(volume, Volume):
        raise TypeError(f"the loader {loader.title!r} returned {type(volume).__name__}, not Volume")
    return volume

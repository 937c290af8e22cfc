"""Layers: a volume plus how to draw it (image, labels, heatmap), as Qt-free evented models.

Every attribute is validated on assignment and each actual change emits
``layer.events.changed(field_name)`` once (setting a value to what it already is emits
nothing). A :class:`~workstation.render.study_view.StudyView` holds the layers in drawing
order; the 2D compositor (:mod:`workstation.render.compose`) and the 3D view draw from it.

A layer's volume may be replaced (say, by a progressive inference result) only by one on the
same voxel grid (:func:`~workstation.render.grid.check_same_grid`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workstation.core.volume import Volume
from workstation.render.colormaps import COLORMAPS, label_color
from workstation.render.events import Event
from workstation.render.grid import check_same_grid
from workstation.render.windowing import Window, auto_window, dicom_window

__all__ = [
    "RGBA",
    "HeatmapLayer",
    "ImageLayer",
    "LabelsLayer",
    "Layer",
    "LayerEvents",
]

RGBA = tuple[int, int, int, int]


@dataclass(frozen=True)
class LayerEvents:
    """A layer's events."""

    changed: Event = field(default_factory=lambda: Event("changed"))
    """``callback(field_name)`` after an attribute changed (``"opacity"``, ``"window"`` ...)."""


def _rgba(value: Iterable[int]) -> RGBA:
    rgba = tuple(int(v) for v in value)
    if len(rgba) != 4 or not all(0 <= v <= 255 for v in rgba):
        raise ValueError(f"a colour is four integers 0..255 (RGBA), got {rgba}")
    return rgba  # type: ignore[return-value]


class Layer:
    """What every layer has: a volume, a name, visibility and opacity.

    Attributes are validated on assignment; each actual change emits
    ``events.changed(field_name)``.
    """

    kind = "layer"

    def __init__(
        self, volume: Volume, *, name: str | None = None, visible: bool = True, opacity: float = 1.0
    ) -> None:
        self.events = LayerEvents()
        self._volume = self._check_volume(volume)
        self._name = self._check_name(name or volume.metadata.get("description") or self.kind)
        self._visible = bool(visible)
        self._opacity = self._check_opacity(opacity)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._name!r} {self._volume.shape}>"

    def _set(self, field_name: str, value: Any) -> None:
        current = getattr(self, "_" + field_name)
        if current is value or current == value:  # Volume compares by identity
            return
        setattr(self, "_" + field_name, value)
        self.events.changed.emit(field_name)

    @staticmethod
    def _check_name(name: object) -> str:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"a layer name is a non-empty string, got {name!r}")
        return name

    @staticmethod
    def _check_opacity(opacity: float) -> float:
        value = float(opacity)
        if not 0.0 <= value <= 1.0:  # also refuses NaN
            raise ValueError(f"opacity must be between 0 and 1, got {opacity!r}")
        return value

    def _check_volume(self, volume: Volume) -> Volume:
        if not isinstance(volume, Volume):
            raise TypeError(f"a {self.kind} layer needs a Volume, got {type(volume).__name__}")
        return volume

    @property
    def volume(self) -> Volume:
        """The voxels and their geometry; a new volume must keep the grid."""
        return self._volume

    @volume.setter
    def volume(self, volume: Volume) -> None:
        volume = self._check_volume(volume)
        check_same_grid(
            volume, self._volume, what="the new volume", reference_name=f"layer {self._name!r}"
        )
        self._set("volume", volume)

    @property
    def data(self) -> np.ndarray:
        """``volume.array``, indexed ``[k, j, i]``."""
        return self._volume.array

    @property
    def name(self) -> str:
        """Shown in the layer list."""
        return self._name

    @name.setter
    def name(self, name: str) -> None:
        self._set("name", self._check_name(name))

    @property
    def visible(self) -> bool:
        """Hidden layers are not drawn."""
        return self._visible

    @visible.setter
    def visible(self, visible: bool) -> None:
        self._set("visible", bool(visible))

    @property
    def opacity(self) -> float:
        """0 (transparent) to 1 (opaque), multiplied with the colour map's own alpha."""
        return self._opacity

    @opacity.setter
    def opacity(self, opacity: float) -> None:
        self._set("opacity", self._check_opacity(opacity))


def _check_colormap(name: str) -> str:
    if name not in COLORMAPS:
        raise ValueError(f"unknown colormap {name!r}; choose one of {', '.join(COLORMAPS)}")
    return name


class ImageLayer(Layer):
    """A greyscale image drawn through a window and a colour map.

    ``window`` defaults to the series' own window (``volume.metadata["window"]``), else to a
    percentile window (:func:`~workstation.render.windowing.auto_window`). ``MONOCHROME1``
    volumes are drawn inverted.
    """

    kind = "image"

    def __init__(
        self,
        volume: Volume,
        window: Window | tuple[float, float] | None = None,
        colormap: str = "gray",
        **kwargs: Any,
    ) -> None:
        super().__init__(volume, **kwargs)
        self._window = self._check_window(window if window is not None else _default_window(volume))
        self._colormap = _check_colormap(colormap)

    @staticmethod
    def _check_window(window: Window | tuple[float, float]) -> Window:
        return window if isinstance(window, Window) else Window(*window)

    @property
    def window(self) -> Window:
        """Centre and width of the grey-level window."""
        return self._window

    @window.setter
    def window(self, window: Window | tuple[float, float]) -> None:
        self._set("window", self._check_window(window))

    @property
    def colormap(self) -> str:
        """A name from :data:`~workstation.render.colormaps.COLORMAPS`."""
        return self._colormap

    @colormap.setter
    def colormap(self, name: str) -> None:
        self._set("colormap", _check_colormap(name))


def _default_window(volume: Volume) -> Window:
    return dicom_window(volume) or auto_window(volume.array)


class LabelsLayer(Layer):
    """Integer labels (0 = nothing), each with a name and an RGBA colour.

    Labels without a colour in ``colors`` get :func:`~workstation.render.colormaps.label_color`.
    """

    kind = "labels"

    def __init__(
        self,
        volume: Volume,
        label_names: Mapping[int, str] | None = None,
        colors: Mapping[int, Iterable[int]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(volume, **kwargs)
        self._label_names = self._check_names(label_names or {})
        self._colors = self._check_colors(colors or {})

    def _check_volume(self, volume: Volume) -> Volume:
        volume = super()._check_volume(volume)
        if not (np.issubdtype(volume.array.dtype, np.integer) or volume.array.dtype == bool):
            raise TypeError(f"a labels layer needs integer voxels, got {volume.array.dtype}")
        return volume

    @staticmethod
    def _check_names(names: Mapping[int, str]) -> dict[int, str]:
        return {int(label): str(name) for label, name in names.items()}

    @staticmethod
    def _check_colors(colors: Mapping[int, Iterable[int]]) -> dict[int, RGBA]:
        return {int(label): _rgba(rgba) for label, rgba in colors.items()}

    @property
    def label_names(self) -> dict[int, str]:
        """Label value → name (a copy; assign a new mapping to change it)."""
        return dict(self._label_names)

    @label_names.setter
    def label_names(self, names: Mapping[int, str]) -> None:
        self._set("label_names", self._check_names(names))

    @property
    def colors(self) -> dict[int, RGBA]:
        """Label value → RGBA given explicitly (a copy; assign a new mapping to change it)."""
        return dict(self._colors)

    @colors.setter
    def colors(self, colors: Mapping[int, Iterable[int]]) -> None:
        self._set("colors", self._check_colors(colors))

    def color(self, label: int) -> RGBA:
        """The colour label ``label`` is drawn in (0 is transparent unless given a colour)."""
        return self._colors.get(int(label), label_color(int(label)))


class HeatmapLayer(Layer):
    """Float values (a probability or saliency map) drawn through a colour map.

    ``range`` maps to the ends of the colour map; voxels below ``threshold`` (and NaNs) are
    transparent. ``range`` defaults to the data's finite minimum and maximum.
    """

    kind = "heatmap"

    def __init__(
        self,
        volume: Volume,
        colormap: str = "inferno",
        range: tuple[float, float] | None = None,
        threshold: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(volume, **kwargs)
        self._colormap = _check_colormap(colormap)
        self._range = self._check_range(range if range is not None else _finite_range(volume))
        self._threshold = self._check_threshold(threshold)

    def _check_volume(self, volume: Volume) -> Volume:
        volume = super()._check_volume(volume)
        if not np.issubdtype(volume.array.dtype, np.number):
            raise TypeError(f"a heatmap layer needs numeric voxels, got {volume.array.dtype}")
        return volume

    @staticmethod
    def _check_range(value: tuple[float, float]) -> tuple[float, float]:
        low, high = (float(v) for v in value)
        if not (np.isfinite(low) and np.isfinite(high) and low < high):
            raise ValueError(f"range must be two finite numbers, low < high, got {value!r}")
        return (low, high)

    @staticmethod
    def _check_threshold(value: float | None) -> float | None:
        if value is not None and np.isnan(float(value)):
            raise ValueError("threshold must be a number or None, got NaN")
        return None if value is None else float(value)

    @property
    def colormap(self) -> str:
        """A name from :data:`~workstation.render.colormaps.COLORMAPS`."""
        return self._colormap

    @colormap.setter
    def colormap(self, name: str) -> None:
        self._set("colormap", _check_colormap(name))

    @property
    def range(self) -> tuple[float, float]:
        """``(low, high)``: values mapped to the first and last colour."""
        return self._range

    @range.setter
    def range(self, value: tuple[float, float]) -> None:
        self._set("range", self._check_range(value))

    @property
    def threshold(self) -> float | None:
        """Values below it are not drawn (``None``: all finite values are)."""
        return self._threshold

    @threshold.setter
    def threshold(self, value: float | None) -> None:
        self._set("threshold", self._check_threshold(value))


def _finite_range(volume: Volume) -> tuple[float, float]:
    finite = volume.array[np.isfinite(volume.array)]
    if finite.size == 0:
        return (0.0, 1.0)
    low, high = float(finite.min()), float(finite.max())
    return (low, high) if high > low else (low, low + 1.0)

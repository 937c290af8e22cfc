"""The study view: ordered layers plus the shared cursor, the model both 2D and 3D views draw.

Widgets observe ``view.events`` and write user changes back to the view or its layers;
inference and plugins add their results with :meth:`StudyView.add` and nothing else::

    view = StudyView([ImageLayer(volume, name="T1")])
    view.events.inserted.connect(on_inserted)          # callback(index, layer)
    view.add(LabelsLayer(labels, label_names={1: "GM", 2: "WM"}))
    view.layers[1].opacity = 0.5                       # -> events.changed(layer, "opacity")

Index 0 is drawn first (the bottom of the stack); :meth:`StudyView.add` puts a layer on top.
Like any model the widgets observe, change it on the GUI thread only: a worker's result goes
through the UI task adapter (a queued signal), which then calls :meth:`StudyView.add`.
Callbacks are held strongly; a widget disconnects its callbacks when it closes.

Geometry: every layer must lie on the grid of the view's first layer (the base image): same
shape, voxel centres within ``1e-3`` mm. Other layers are refused with
:class:`~workstation.render.grid.GeometryMismatchError`; resample them onto the base grid first.
(The 2D views will later reslice each layer in patient space, and this restriction can go.)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from workstation.render.events import Event
from workstation.render.grid import check_same_grid
from workstation.render.layers import Layer

__all__ = ["StudyView", "StudyViewEvents"]

Point = tuple[float, float, float]


@dataclass(frozen=True)
class StudyViewEvents:
    """The events of a :class:`StudyView` and their callback arguments."""

    inserted: Event = field(default_factory=partial(Event, "inserted"))
    """``(index, layer)`` after a layer was added."""
    removed: Event = field(default_factory=partial(Event, "removed"))
    """``(index, layer)`` after a layer was removed from ``index``."""
    moved: Event = field(default_factory=partial(Event, "moved"))
    """``(old_index, new_index, layer)`` after a layer changed place in the drawing order."""
    changed: Event = field(default_factory=partial(Event, "changed"))
    """``(layer, field_name)`` when an attribute of one of the layers changed."""
    selection: Event = field(default_factory=partial(Event, "selection"))
    """``(layer or None)`` when the selected layer changed."""
    cursor: Event = field(default_factory=partial(Event, "cursor"))
    """``(point or None)``: the new shared cursor (crosshair) position, LPS mm."""


class StudyView:
    """Ordered layers, a selected layer and the shared cursor (LPS, mm).

    Parameters
    ----------
    layers
        Initial layers, bottom first; the first one is the base image whose grid the others
        must share.
    cursor_lps
        Initial cursor; by default the centre of the base image once there is one.
    """

    def __init__(self, layers: Iterable[Layer] = (), *, cursor_lps: Any = None) -> None:
        self.events = StudyViewEvents()
        self._layers: list[Layer] = []
        self._forwarders: dict[int, Any] = {}
        self._selected: Layer | None = None
        self._cursor: Point | None = None if cursor_lps is None else _point(cursor_lps)
        for layer in layers:
            self.add(layer)

    def __repr__(self) -> str:
        return f"<StudyView {[layer.name for layer in self._layers]}>"

    # -- the layer list ----------------------------------------------------------------------
    @property
    def layers(self) -> tuple[Layer, ...]:
        """The layers in drawing order (bottom first)."""
        return tuple(self._layers)

    @property
    def base(self) -> Layer | None:
        """The first layer, whose grid every other layer shares."""
        return self._layers[0] if self._layers else None

    def __len__(self) -> int:
        return len(self._layers)

    def __iter__(self) -> Iterator[Layer]:
        return iter(tuple(self._layers))

    def __contains__(self, item: object) -> bool:
        return any(layer is item for layer in self._layers)

    def __getitem__(self, key: int | str) -> Layer:
        return self._layers[self.index(key)] if isinstance(key, str) else self._layers[key]

    def index(self, key: Layer | str | int) -> int:
        """Position of a layer given as the layer, its name (the first match) or an index."""
        if isinstance(key, int):
            if not -len(self._layers) <= key < len(self._layers):
                raise IndexError(f"no layer at index {key} (the view has {len(self)})")
            return key % len(self._layers)
        for n, layer in enumerate(self._layers):
            if layer is key or (isinstance(key, str) and layer.name == key):
                return n
        raise KeyError(f"no layer {key!r} in this view")

    def add(self, layer: Layer, index: int | None = None) -> Layer:
        """Insert ``layer`` at ``index`` (default: on top), select it and return it.

        Raises
        ------
        TypeError
            ``layer`` is not a :class:`~workstation.render.layers.Layer`.
        ValueError
            The layer is already in the view.
        GeometryMismatchError
            The layer is not on the base image's voxel grid.
        """
        if not isinstance(layer, Layer):
            raise TypeError(f"only layers can be added to a study view, got {type(layer).__name__}")
        if layer in self:
            raise ValueError(f"layer {layer.name!r} is already in this view")
        if self._layers:
            base = self._layers[0]
            check_same_grid(
                layer.volume,
                base.volume,
                what=f"layer {layer.name!r}",
                reference_name=f"the base image {base.name!r}",
            )
        index = len(self._layers) if index is None else max(0, min(index, len(self._layers)))
        if index == 0 and self._layers:
            raise ValueError("a new layer cannot go below the base image (index 0)")
        self._layers.insert(index, layer)
        forward = partial(self._forward_change, layer)
        self._forwarders[id(layer)] = forward
        layer.events.changed.connect(forward)
        self.events.inserted.emit(index, layer)
        if self._cursor is None and len(self._layers) == 1:
            self.cursor_lps = _centre(layer)
        self.selected = layer
        return layer

    def remove(self, key: Layer | str | int) -> Layer:
        """Remove a layer (given as the layer, its name or its index) and return it."""
        index = self.index(key)
        if index == 0 and len(self._layers) > 1:
            raise ValueError(
                "the base image cannot be removed while other layers depend on its grid; "
                "remove the other layers first"
            )
        layer = self._layers.pop(index)
        layer.events.changed.disconnect(self._forwarders.pop(id(layer)))
        self.events.removed.emit(index, layer)
        if self._selected is layer:
            self.selected = self._layers[-1] if self._layers else None
        return layer

    def clear(self) -> None:
        """Remove every layer, top first."""
        while self._layers:
            self.remove(len(self._layers) - 1)

    def move(self, key: Layer | str | int, new_index: int) -> None:
        """Move a layer so that it ends up at ``new_index`` (the base image stays at 0)."""
        old_index = self.index(key)
        new_index = self.index(new_index)
        if old_index == new_index:
            return
        if 0 in (old_index, new_index):
            raise ValueError("the base image stays at index 0; move the other layers")
        layer = self._layers.pop(old_index)
        self._layers.insert(new_index, layer)
        self.events.moved.emit(old_index, new_index, layer)

    def _forward_change(self, layer: Layer, field_name: str) -> None:
        self.events.changed.emit(layer, field_name)

    # -- selection and cursor ---------------------------------------------------------------
    @property
    def selected(self) -> Layer | None:
        """The layer the layer controls act on (``None``: none)."""
        return self._selected

    @selected.setter
    def selected(self, layer: Layer | None) -> None:
        if layer is not None and layer not in self:
            raise ValueError(f"cannot select {layer!r}: it is not in this view")
        if layer is not self._selected:
            self._selected = layer
            self.events.selection.emit(layer)

    @property
    def cursor_lps(self) -> Point | None:
        """The shared crosshair point ``(x, y, z)`` in LPS mm, or ``None``."""
        return self._cursor

    @cursor_lps.setter
    def cursor_lps(self, point: Any) -> None:
        value = None if point is None else _point(point)
        if value != self._cursor:
            self._cursor = value
            self.events.cursor.emit(value)

    def cursor_index(self) -> np.ndarray | None:
        """The cursor as a continuous ``(i, j, k)`` index into the base grid (or ``None``)."""
        if self._cursor is None or not self._layers:
            return None
        return self._layers[0].volume.lps_to_index(self._cursor)


def _point(value: Any) -> Point:
    point = tuple(float(v) for v in np.asarray(value, dtype=float).ravel())
    if len(point) != 3 or not all(np.isfinite(point)):
        raise ValueError(f"a point is three finite LPS coordinates in mm, got {value!r}")
    return point  # type: ignore[return-value]


def _centre(layer: Layer) -> Point:
    size = np.asarray(layer.volume.size, dtype=float)
    return _point(layer.volume.index_to_lps((size - 1.0) / 2.0))

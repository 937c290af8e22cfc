"""Distance measurements (rulers) in patient space, with no Qt.

A :class:`Ruler` holds its two ends in LPS mm, so its length is the true 3D distance whatever
the pixel spacing of the view it was drawn in (anisotropic pixels, reformatted planes).

Where a ruler shows: on a slice whose plane contains both ends, to within half the slice
spacing, using the same half-open rule as :func:`~workstation.render.slice_index_of` (a point
belongs to the slice position nearest it): an end at signed distance ``d`` from the plane is on
it when ``-spacing / 2 <= d < spacing / 2``. So a ruler drawn on a slice shows on that slice
and on no neighbour, and one drawn in another view shows wherever its ends lie on one slice.

:class:`Measurements` is the evented list the 2D views of one study share: each view draws the
rulers :meth:`Measurements.visible_on` its slice and repaints on ``events.changed``.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from workstation.core.volume import Volume
from workstation.render.events import Event
from workstation.render.orientation import Plane, point_at_slice
from workstation.render.reslice import Slice2D

__all__ = [
    "Measurements",
    "MeasurementsEvents",
    "Ruler",
    "measurements_for",
    "ruler_visible",
    "slice_spacing",
]

Point = tuple[float, float, float]


def _point(value: Any) -> Point:
    array = np.asarray(value, dtype=np.float64).reshape(3)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"a ruler end must be a finite LPS point, got {value!r}")
    return float(array[0]), float(array[1]), float(array[2])


@dataclass(frozen=True)
class Ruler:
    """A distance measurement from ``start`` to ``end`` (LPS, mm)."""

    start: Point
    end: Point

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _point(self.start))
        object.__setattr__(self, "end", _point(self.end))

    @property
    def length_mm(self) -> float:
        """The 3D distance between the ends, in mm."""
        return math.dist(self.start, self.end)

    @property
    def label(self) -> str:
        """The text a view shows next to it, e.g. ``"23.4 mm"``."""
        return f"{self.length_mm:.1f} mm"


def slice_spacing(volume: Volume, plane: Plane) -> float:
    """Distance in mm between neighbouring slice positions of ``plane`` across ``volume``."""
    origin = np.asarray(volume.origin, dtype=np.float64)
    step = point_at_slice(volume, plane, origin, 1) - point_at_slice(volume, plane, origin, 0)
    return float(np.linalg.norm(step))


def ruler_visible(ruler: Ruler, cut: Slice2D, spacing: float) -> bool:
    """Whether both ends of ``ruler`` lie on ``cut``: signed distance ``d`` from its plane with
    ``-spacing / 2 <= d < spacing / 2`` (``spacing``: the view's :func:`slice_spacing`)."""
    half = 0.5 * spacing
    distances = cut.distance(np.array([ruler.start, ruler.end]))
    return bool(np.all((distances >= -half) & (distances < half)))


@dataclass(frozen=True)
class MeasurementsEvents:
    """The events of :class:`Measurements`."""

    changed: Event = field(default_factory=partial(Event, "changed"))
    """``()`` after a ruler was added or removed."""


class Measurements:
    """The rulers of one study, in the order they were drawn; views observe ``events``."""

    def __init__(self) -> None:
        self.events = MeasurementsEvents()
        self._rulers: list[Ruler] = []

    def __repr__(self) -> str:
        return f"<Measurements: {len(self._rulers)} ruler(s)>"

    def __len__(self) -> int:
        return len(self._rulers)

    def __iter__(self) -> Iterator[Ruler]:
        return iter(tuple(self._rulers))

    @property
    def rulers(self) -> tuple[Ruler, ...]:
        """All rulers, oldest first."""
        return tuple(self._rulers)

    def add(self, ruler: Ruler) -> Ruler:
        """Append ``ruler`` and return it."""
        self._rulers.append(ruler)
        self.events.changed.emit()
        return ruler

    def remove(self, ruler: Ruler) -> None:
        """Remove ``ruler`` (this very object; :class:`ValueError` if absent)."""
        for n, item in enumerate(self._rulers):
            if item is ruler:
                del self._rulers[n]
                self.events.changed.emit()
                return
        raise ValueError(f"{ruler!r} is not in these measurements")

    def clear(self) -> None:
        """Remove every ruler."""
        if self._rulers:
            self._rulers.clear()
            self.events.changed.emit()

    def visible_on(self, cut: Slice2D, spacing: float) -> list[Ruler]:
        """The rulers shown on ``cut`` (see :func:`ruler_visible`), oldest first."""
        return [r for r in self._rulers if ruler_visible(r, cut, spacing)]


_SHARED: weakref.WeakKeyDictionary[Any, Measurements] = weakref.WeakKeyDictionary()


def measurements_for(study_view: Any) -> Measurements:
    """The :class:`Measurements` shared by every view of ``study_view`` (made on first use and
    dropped with it), so a ruler drawn in one view shows in all views whose plane holds it."""
    found = _SHARED.get(study_view)
    if found is None:
        found = _SHARED[study_view] = Measurements()
    return found

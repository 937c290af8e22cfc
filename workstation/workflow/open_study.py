"""Open a series progressively: geometry first, then batches of slices, middle first."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from workstation.core.tasks import CancelToken, ProgressFn
from workstation.core.volume import Volume
from workstation.dicom import Series

__all__ = ["LoadUpdate", "load_progressively"]


@dataclass(frozen=True)
class LoadUpdate:
    """A partial result of :func:`load_progressively`: slices ``slices`` of ``volume`` landed
    (none in the first update, which carries the geometry)."""

    volume: Volume
    slices: tuple[int, ...]


def load_progressively(
    source: str | os.PathLike[str] | Series,
    *,
    progress: ProgressFn,
    cancel: CancelToken,
    partial: Callable[[LoadUpdate], object],
    batch_seconds: float = 0.1,
) -> Volume:
    """Stream a series, handing :class:`LoadUpdate` batches to ``partial``; returns the volume.

    The first update carries the geometry (blank voxels), the second the middle slice alone (so
    a viewer paints at once); later ones gather the slices that landed within ``batch_seconds``.
    """
    from workstation.dicom import stream_series

    with stream_series(source, progress=progress, cancel=cancel) as stream:
        partial(LoadUpdate(stream.volume, ()))
        batch: list[int] = []
        last = 0.0
        for k in stream:
            batch.append(k)
            now = time.monotonic()
            if last == 0.0 or now - last >= batch_seconds:  # the middle slice goes at once
                partial(LoadUpdate(stream.volume, tuple(batch)))
                batch, last = [], now
        if batch:
            partial(LoadUpdate(stream.volume, tuple(batch)))
        return stream.result()

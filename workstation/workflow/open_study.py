"""Open a series progressively: geometry first, then batches of slices, middle first."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from workstation.core.tasks import CancelToken, ProgressFn
from workstation.core.volume import Volume
from workstation.dicom import Series
from workstation.workflow.remote import (
    RemoteSeries,
    connect,
    default_cache,
    is_url,
    remote_source,
)

if TYPE_CHECKING:  # DICOMweb (httpx, cryptography) is imported only for a remote series
    from workstation.dicom.dicomweb import InstanceCache
    from workstation.dicom.stream import SeriesStream

__all__ = ["LoadUpdate", "load_progressively"]


@dataclass(frozen=True)
class LoadUpdate:
    """A partial result of :func:`load_progressively`: slices ``slices`` of ``volume`` landed
    (none in the first update, which carries the geometry)."""

    volume: Volume
    slices: tuple[int, ...]


def load_progressively(
    source: str | os.PathLike[str] | Series | RemoteSeries,
    *,
    progress: ProgressFn,
    cancel: CancelToken,
    partial: Callable[[LoadUpdate], object],
    batch_seconds: float = 0.1,
    cache: InstanceCache | Literal["default"] | None = "default",
) -> Volume:
    """Stream a series, handing :class:`LoadUpdate` batches to ``partial``; returns the volume.

    ``source`` is a local folder/file, a scanned :class:`Series`, a :class:`RemoteSeries` or a
    DICOMweb study/series URL (metadata first, then the middle instance, then the rest;
    ``cache`` is the encrypted instance cache, by default :func:`default_cache`).

    The first update carries the geometry (blank voxels), the second the middle slice alone (so
    a viewer paints at once); later ones gather the slices that landed within
    ``batch_seconds``.
    """
    if isinstance(source, str) and is_url(source):
        source = remote_source(source, cancel=cancel)
    if isinstance(source, RemoteSeries):
        return _load_remote(source, progress, cancel, partial, batch_seconds, cache)
    from workstation.dicom import stream_series

    with stream_series(source, progress=progress, cancel=cancel) as stream:
        return _pump(stream, partial, batch_seconds)


def _load_remote(
    source: RemoteSeries,
    progress: ProgressFn,
    cancel: CancelToken,
    partial: Callable[[LoadUpdate], object],
    batch_seconds: float,
    cache: InstanceCache | Literal["default"] | None,
) -> Volume:
    from workstation.dicom.dicomweb import stream_dicomweb_series

    if cache == "default":
        cache = default_cache()
    with (
        connect(source.server) as client,
        stream_dicomweb_series(
            client,
            source.study_uid,
            source.series_uid,
            progress=progress,
            cancel=cancel,
            cache=cache,
        ) as stream,
    ):
        return _pump(stream, partial, batch_seconds)


def _pump(
    stream: SeriesStream, partial: Callable[[LoadUpdate], object], batch_seconds: float
) -> Volume:
    """Hand the stream's slices to ``partial`` in batches; return the finished volume."""
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

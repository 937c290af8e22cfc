"""Shared fixtures: small synthetic DICOM series written with the project's own writer.

``make_series(name, ...)`` writes one series (by default 12 slices of 32×32, uint16, axial) under
``tmp_path / name`` with :func:`workstation.dicom.synthetic.write_series` and returns a
:class:`WrittenSeries` describing what was written, so tests can compare a load with the truth.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from workstation.dicom.synthetic import SeriesSpec, write_series


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """Choose the Qt platform once, after pytest-xvfb has (or has not) started Xvfb: ``xcb`` on
    a display (the 3D view needs one), else ``offscreen``."""
    if "QT_QPA_PLATFORM" not in os.environ:
        os.environ["QT_QPA_PLATFORM"] = "xcb" if os.environ.get("DISPLAY") else "offscreen"


@dataclass
class WrittenSeries:
    """A series on disk and the truth it was written from."""

    folder: Path
    paths: list[Path]  # in slice order (slice k is paths[k])
    stored: np.ndarray  # [k, j, i] stored values
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: np.ndarray
    spec: SeriesSpec

    @property
    def uid(self) -> str:
        """The SeriesInstanceUID of every file."""
        import pydicom

        return str(pydicom.dcmread(self.paths[0], stop_before_pixels=True).SeriesInstanceUID)


def random_stored(
    shape: Sequence[int], dtype: np.dtype | type = np.uint16, *, seed: int = 0
) -> np.ndarray:
    """Random stored values covering a realistic range for ``dtype``."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        return rng.integers(0, 256, size=shape, dtype=np.uint8)
    if dtype == np.int16:
        return rng.integers(-2000, 3000, size=shape, dtype=np.int16)
    return rng.integers(0, 4096, size=shape, dtype=np.uint16)


MakeSeries = Callable[..., WrittenSeries]


@pytest.fixture
def make_series(tmp_path: Path) -> MakeSeries:
    """Factory writing a synthetic series under ``tmp_path``; see :class:`WrittenSeries`."""

    def make(
        name: str = "series",
        *,
        slices: int = 12,
        rows: int = 32,
        columns: int = 32,
        dtype: np.dtype | type = np.uint16,
        stored: np.ndarray | None = None,
        spacing: Sequence[float] = (0.8, 0.9, 2.5),
        origin: Sequence[float] = (-12.5, 30.0, 7.25),
        direction: np.ndarray | None = None,
        seed: int = 0,
        folder: Path | None = None,
        file_pattern: str = "IM{index:05d}.dcm",
        **spec_fields: object,
    ) -> WrittenSeries:
        if stored is None:
            stored = random_stored((slices, rows, columns), dtype, seed=seed)
        spec = SeriesSpec(**spec_fields)  # type: ignore[arg-type]
        target = folder if folder is not None else tmp_path / name
        direction = np.eye(3) if direction is None else np.asarray(direction, dtype=float)
        paths = write_series(
            target,
            stored,
            spacing=spacing,
            origin=origin,
            direction=direction,
            spec=spec,
            file_pattern=file_pattern,
        )
        return WrittenSeries(
            folder=target,
            paths=paths,
            stored=stored,
            spacing=tuple(float(s) for s in spacing),  # type: ignore[arg-type]
            origin=tuple(float(o) for o in origin),  # type: ignore[arg-type]
            direction=direction,
            spec=spec,
        )

    return make


@pytest.fixture
def repeated_positions_folder(make_series: MakeSeries, tmp_path: Path) -> Path:
    """Two 6-slice stacks of one series at the same positions, with nothing to tell them apart."""
    import pydicom

    folder = tmp_path / "repeats"
    first = make_series(folder=folder, slices=6, file_pattern="A{index:03d}")
    make_series(
        folder=folder,
        slices=6,
        seed=5,
        file_pattern="B{index:03d}",
        series_uid=first.uid,
        study_uid=pydicom.dcmread(first.paths[0]).StudyInstanceUID,
    )
    return folder


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL server for the session; yields its admin URL (``.../postgres``)."""
    from pg_server import postgres_server_impl

    yield from postgres_server_impl()


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on the session's server."""
    from pg_server import postgres_url_impl

    yield from postgres_url_impl(postgres_server)

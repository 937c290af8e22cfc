"""The DICOM engine: scan folders into a catalog, load series as geometry-correct Volumes.

Public API::

    catalog = scan(path)                          # headers only; catalog.series, .problems
    volume = load_series(path, series_uid=None)   # -> workstation.core.Volume (LPS)
    with stream_series(path) as stream:           # progressive: middle slice first
        for k in stream: ...
    export_volume(volume, "out.nii.gz")           # .nii.gz / .nii / .nrrd / .mha
"""

from workstation.dicom.catalog import Catalog, Patient, Problem, Series, Study
from workstation.dicom.errors import (
    AmbiguousSeriesError,
    DicomError,
    DicomReadError,
    ExportError,
    NotDicomError,
    PixelDecodeError,
    SeriesNotFoundError,
    UnsupportedSeriesError,
)
from workstation.dicom.export import EXPORT_SUFFIXES, export_volume
from workstation.dicom.scan import scan
from workstation.dicom.stream import SeriesStream, load_series, stream_series

__all__ = [
    "EXPORT_SUFFIXES",
    "AmbiguousSeriesError",
    "Catalog",
    "DicomError",
    "DicomReadError",
    "ExportError",
    "NotDicomError",
    "Patient",
    "PixelDecodeError",
    "Problem",
    "Series",
    "SeriesNotFoundError",
    "SeriesStream",
    "Study",
    "UnsupportedSeriesError",
    "export_volume",
    "load_series",
    "scan",
    "stream_series",
]

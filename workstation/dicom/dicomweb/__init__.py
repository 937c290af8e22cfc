"""DICOMweb: search a PACS (QIDO-RS), stream series from it (WADO-RS), store to it (STOW-RS).

Public API::

    client = DicomwebClient("https://pacs/dicom-web", auth=("user", "pw"), timeout=30)
    studies = client.search_studies(patient_name="doe", fuzzy=True, study_date=("20240101", None),
                                     modalities=["CT", "MR"], limit=50, offset=0)
    series = client.search_series(study_uid)
    cache = open_cache(key_ring)                      # None without keys: no caching at all
    with stream_dicomweb_series(client, study_uid, series_uid, cache=cache,
                                connections=4, fetch="auto") as stream:
        show(stream.volume)                           # geometry from the metadata
        for k in stream: refresh(k)                   # middle slice first
    volume = stream.result()                          # == load_series() of the same files
    location = parse_dicomweb_url(url)                # `workstation open URL`
    report = fetch_series(client, study_uid, series_uid, out_dir)   # to files; reruns resume
    client.store_instances([path_or_bytes, ...])      # STOW-RS

Errors are :class:`DicomwebError` subclasses (tree in :mod:`.errors`); the engine's own errors
(:class:`AmbiguousSeriesError`, ...) keep their meaning for a remote series.
"""

from workstation.dicom.dicomweb._http import BearerAuth
from workstation.dicom.dicomweb._multipart import Part
from workstation.dicom.dicomweb.cache import CachedInstance, InstanceCache, open_cache
from workstation.dicom.dicomweb.client import DicomwebClient
from workstation.dicom.dicomweb.errors import (
    AuthenticationError,
    BadResponseError,
    DicomwebError,
    DicomwebNotFoundError,
    DicomwebTimeoutError,
    ServerError,
    ServerUnreachableError,
    TlsError,
    TruncatedResponseError,
)
from workstation.dicom.dicomweb.fetch import FetchReport, fetch_series, fetch_study
from workstation.dicom.dicomweb.location import DicomwebLocation, parse_dicomweb_url
from workstation.dicom.dicomweb.query import InstanceRecord, SeriesRecord, StudyRecord
from workstation.dicom.dicomweb.store import StoreResult
from workstation.dicom.dicomweb.stream import (
    DicomwebSeriesStream,
    load_dicomweb_series,
    stream_dicomweb_series,
)

__all__ = [
    "AuthenticationError",
    "BadResponseError",
    "BearerAuth",
    "CachedInstance",
    "DicomwebClient",
    "DicomwebError",
    "DicomwebLocation",
    "DicomwebNotFoundError",
    "DicomwebSeriesStream",
    "DicomwebTimeoutError",
    "FetchReport",
    "InstanceCache",
    "InstanceRecord",
    "Part",
    "SeriesRecord",
    "ServerError",
    "ServerUnreachableError",
    "StoreResult",
    "StudyRecord",
    "TlsError",
    "TruncatedResponseError",
    "fetch_series",
    "fetch_study",
    "load_dicomweb_series",
    "open_cache",
    "parse_dicomweb_url",
    "stream_dicomweb_series",
]

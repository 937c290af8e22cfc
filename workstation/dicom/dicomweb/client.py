"""The DICOMweb client: QIDO-RS search, WADO-RS retrieve, STOW-RS store, over httpx.

Why not dicomweb-client (ImagingDataCommons, read for this module): it is a good reference for
the media types and the Accept headers (``transfer-syntax=*`` and the per-syntax media types
come from there), but it is built on ``requests`` (we standardise on httpx: one client
configuration, injectable transports, the same error translation as ``workstation.sync``), its
multipart parser concatenates chunks and splits the growing buffer on every chunk (quadratic in
the part size) and yields the data left after the last delimiter without checking for the
close delimiter, so a transfer cut off at a part boundary passes silently; its retries (the
``retrying`` package) apply to every method, and it has no cancellation. What we need from it
is small (media types, JSON handling via ``pydicom.Dataset.from_json``), so we implement it
here and benchmark against it instead (``benchmarks/dicomweb_stream.py``).

Bulk requests send ``Accept-Encoding: identity``: servers such as Orthanc otherwise gzip every
instance on the fly (40x slower on a fast link, for little gain on DICOM pixel data). JSON is
left compressible (``compress_json``), where gzip pays on slow links.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any

import httpx

from workstation.core.tasks import CancelToken
from workstation.dicom.dicomweb._http import EventHooks, HttpSession, Verify
from workstation.dicom.dicomweb._multipart import Part, iter_parts, parse_content_type
from workstation.dicom.dicomweb.errors import BadResponseError
from workstation.dicom.dicomweb.query import (
    INSTANCE_FIELDS,
    SERIES_FIELDS,
    STUDY_FIELDS,
    DateFilter,
    InstanceRecord,
    SeriesRecord,
    StudyRecord,
    date_value,
    encode_query,
    name_value,
)
from workstation.dicom.dicomweb.store import StoreResult, store

_JSON = "application/dicom+json"
_IDENTITY = {"Accept-Encoding": "identity"}


def _accept(media_type: str, transfer_syntax: str | None) -> str:
    value = f'multipart/related; type="{media_type}"'
    return value if transfer_syntax is None else f"{value}; transfer-syntax={transfer_syntax}"


class DicomwebClient:
    """A DICOMweb server (QIDO-RS, WADO-RS, STOW-RS); thread-safe, share one per server.

    Parameters
    ----------
    url
        The service root, e.g. ``http://pacs:8042/dicom-web`` (credentials in the URL become
        basic authentication and are removed from it).
    auth
        ``(user, password)`` for basic authentication, :class:`BearerAuth` for a token, or any
        ``httpx.Auth``.
    timeout
        Seconds allowed for connecting, and between bytes while sending or receiving.
    verify
        TLS verification: ``True`` (system CAs), a CA bundle path, an ``ssl.SSLContext``, or
        ``False`` (only for a test server).
    retries, backoff
        Attempts after the first for idempotent requests, and the first backoff delay (s),
        doubling per attempt with jitter.
    max_connections
        Size of the connection pool (a streamed series uses up to this many).
    transport, event_hooks
        Passed to ``httpx.Client`` (tests, request counting, logging without PHI).
    compress_json
        Let the server gzip JSON responses (search results, metadata).
    """

    def __init__(
        self,
        url: str,
        *,
        auth: httpx.Auth | tuple[str, str] | None = None,
        timeout: float = 30.0,
        verify: Verify = True,
        retries: int = 3,
        backoff: float = 0.25,
        max_connections: int = 16,
        transport: httpx.BaseTransport | None = None,
        event_hooks: EventHooks | None = None,
        headers: Mapping[str, str] | None = None,
        compress_json: bool = True,
    ) -> None:
        self._http = HttpSession(
            url,
            auth=auth,
            timeout=timeout,
            verify=verify,
            retries=retries,
            backoff=backoff,
            max_connections=max_connections,
            transport=transport,
            event_hooks=event_hooks,
            headers=headers,
        )
        self._json_headers = {"Accept": _JSON, **({} if compress_json else _IDENTITY)}
        self.max_connections = max_connections

    @property
    def base_url(self) -> str:
        """The service root (no credentials, no trailing slash)."""
        return self._http.base_url

    @property
    def timeout(self) -> float:
        """The timeout in seconds."""
        return self._http.timeout

    def instance_url(self, study_uid: str, series_uid: str, sop_uid: str) -> str:
        """The WADO-RS URL of an instance."""
        return self._http.resource(_path(study_uid, series_uid, sop_uid))

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> DicomwebClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DicomwebClient({self.base_url!r})"

    # -- QIDO-RS ------------------------------------------------------------------------------
    def search_studies(
        self,
        *,
        patient_name: str | None = None,
        patient_id: str | None = None,
        study_date: DateFilter | None = None,
        modalities: str | Sequence[str] | None = None,
        accession_number: str | None = None,
        study_uid: str | None = None,
        fuzzy: bool = False,
        limit: int | None = None,
        offset: int | None = None,
        fields: Sequence[str] = (),
        filters: Mapping[str, object] | None = None,
        cancel: CancelToken | None = None,
    ) -> list[StudyRecord]:
        """Studies matching every given filter (``*``/``?`` wildcards; see :mod:`.query`).

        ``fuzzy`` asks for fuzzy name matching and, for a name without wildcards, matches it
        anywhere in PatientName (case-insensitively on most servers). ``modalities``: any of
        these in the study. ``filters`` adds other attributes by keyword or tag.
        """
        if isinstance(modalities, str):
            modalities = [modalities]
        params: dict[str, object] = {
            "PatientName": None if patient_name is None else name_value(patient_name, fuzzy=fuzzy),
            "PatientID": patient_id,
            "StudyDate": None if study_date is None else date_value(study_date),
            "ModalitiesInStudy": ",".join(modalities) if modalities else None,
            "AccessionNumber": accession_number,
            "StudyInstanceUID": study_uid,
            **(filters or {}),
        }
        if fuzzy:
            params["fuzzymatching"] = "true"
        items = self._search("studies", params, STUDY_FIELDS, fields, limit, offset, cancel)
        return [StudyRecord.from_json(item) for item in items]

    def search_series(
        self,
        study_uid: str | None = None,
        *,
        modality: str | None = None,
        series_uid: str | None = None,
        series_number: int | None = None,
        limit: int | None = None,
        offset: int | None = None,
        fields: Sequence[str] = (),
        filters: Mapping[str, object] | None = None,
        cancel: CancelToken | None = None,
    ) -> list[SeriesRecord]:
        """Series of one study (or of all studies when ``study_uid`` is None)."""
        params = {
            "Modality": modality,
            "SeriesInstanceUID": series_uid,
            "SeriesNumber": series_number,
            **(filters or {}),
        }
        path = "series" if study_uid is None else f"studies/{study_uid}/series"
        items = self._search(path, params, SERIES_FIELDS, fields, limit, offset, cancel)
        return [SeriesRecord.from_json(item, study_uid or "") for item in items]

    def search_instances(
        self,
        study_uid: str | None = None,
        series_uid: str | None = None,
        *,
        sop_instance_uid: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
        fields: Sequence[str] = (),
        filters: Mapping[str, object] | None = None,
        cancel: CancelToken | None = None,
    ) -> list[InstanceRecord]:
        """Instances of a series, a study, or the whole server."""
        path = "instances"
        if study_uid is not None:
            path = f"studies/{study_uid}/" + ("" if series_uid is None else f"series/{series_uid}/")
            path += "instances"
        params = {"SOPInstanceUID": sop_instance_uid, **(filters or {})}
        items = self._search(path, params, INSTANCE_FIELDS, fields, limit, offset, cancel)
        return [InstanceRecord.from_json(item, study_uid or "", series_uid or "") for item in items]

    def iter_studies(self, *, page_size: int = 100, **filters: Any) -> Iterator[StudyRecord]:
        """Every matching study, fetched ``page_size`` at a time (``limit``/``offset`` paging)."""
        offset = 0
        while True:
            page = self.search_studies(limit=page_size, offset=offset, **filters)
            yield from page
            if len(page) < page_size:
                return
            offset += len(page)

    def _search(
        self,
        path: str,
        params: Mapping[str, object],
        default_fields: Sequence[str],
        fields: Sequence[str],
        limit: int | None,
        offset: int | None,
        cancel: CancelToken | None,
    ) -> list[dict[str, Any]]:
        pairs = [(k, v) for k, v in params.items() if v is not None]
        pairs += [("includefield", f) for f in dict.fromkeys([*default_fields, *fields])]
        if limit is not None:
            pairs.append(("limit", int(limit)))
        if offset:
            pairs.append(("offset", int(offset)))
        found = self._json(path, encode_query(pairs), cancel)
        if not isinstance(found, list):
            raise BadResponseError(
                f"{self._http.server} answered a search with JSON that is not a list",
                url=self._http.resource(path),
            )
        return found

    # -- WADO-RS metadata ---------------------------------------------------------------------
    def series_metadata(
        self, study_uid: str, series_uid: str, *, cancel: CancelToken | None = None
    ) -> list[dict[str, Any]]:
        """The DICOM JSON metadata of every instance of a series (no bulk data)."""
        found = self._json(f"{_path(study_uid, series_uid)}/metadata", "", cancel)
        if not isinstance(found, list):
            raise BadResponseError(
                "series metadata is not a JSON list", url=self._http.resource(study_uid)
            )
        return found

    def instance_metadata(
        self, study_uid: str, series_uid: str, sop_uid: str, *, cancel: CancelToken | None = None
    ) -> dict[str, Any]:
        """The DICOM JSON metadata of one instance."""
        found = self._json(f"{_path(study_uid, series_uid, sop_uid)}/metadata", "", cancel)
        if isinstance(found, list) and len(found) == 1 and isinstance(found[0], dict):
            return found[0]
        raise BadResponseError("instance metadata is not one JSON dataset", uid=sop_uid)

    def _json(self, path: str, query: str, cancel: CancelToken | None) -> Any:
        def consume(response: httpx.Response) -> Any:
            body = b"".join(self._http.iter_body(response, cancel))
            if not body.strip():
                return []  # 204 No Content: nothing matched
            try:
                return json.loads(body)
            except ValueError as error:
                raise BadResponseError(
                    f"{self._http.server} sent malformed JSON ({error.__class__.__name__})",
                    url=self._http.resource(path),
                ) from error

        return self._http.exchange(
            path, consume, query=query, headers=self._json_headers, cancel=cancel
        )

    # -- WADO-RS bulk data --------------------------------------------------------------------
    def iter_instances(
        self,
        study_uid: str,
        series_uid: str | None = None,
        sop_uid: str | None = None,
        *,
        transfer_syntax: str | None = "*",
        cancel: CancelToken | None = None,
    ) -> Iterator[Part]:
        """Stream the instances of a study, a series or one instance, one part at a time.

        Each part's ``content`` is a DICOM file (Part 10). ``transfer_syntax``: ``"*"`` (as
        stored; no server transcoding), a UID to ask the server to transcode, or None (the
        standard default, explicit VR little endian). Only one instance is in memory at a
        time. A cut-off transfer raises :class:`TruncatedResponseError` after the complete
        instances were yielded; the request is retried only before the first byte of body.
        """
        path = _path(study_uid, series_uid, sop_uid)
        headers = {"Accept": _accept("application/dicom", transfer_syntax), **_IDENTITY}
        response = self._http.send("GET", path, headers=headers, cancel=cancel)
        try:
            yield from self._parts(response, cancel)
        finally:
            response.close()

    def retrieve_instance(
        self,
        study_uid: str,
        series_uid: str,
        sop_uid: str,
        *,
        transfer_syntax: str | None = "*",
        cancel: CancelToken | None = None,
    ) -> Part:
        """One instance (a DICOM file in ``content``), retried as a whole if cut off."""
        path = _path(study_uid, series_uid, sop_uid)
        headers = {"Accept": _accept("application/dicom", transfer_syntax), **_IDENTITY}
        parts = self._http.exchange(
            path,
            lambda response: list(self._parts(response, cancel)),
            headers=headers,
            cancel=cancel,
        )
        if len(parts) != 1:
            raise BadResponseError(
                f"{self._http.server} sent {len(parts)} parts for one instance",
                url=self._http.resource(path),
                uid=sop_uid,
            )
        return parts[0]

    def iter_frames(
        self,
        study_uid: str,
        series_uid: str,
        sop_uid: str,
        frames: Sequence[int],
        *,
        transfer_syntax: str | None = "*",
        media_type: str = "application/octet-stream",
        cancel: CancelToken | None = None,
    ) -> Iterator[Part]:
        """Stream frames (1-based numbers) of an instance: raw pixel bytes, or the compressed
        codestream when ``transfer_syntax`` is ``"*"`` and the instance is compressed (the
        part's ``transfer_syntax`` tells which)."""
        if not frames:
            return
        numbers = ",".join(str(int(n)) for n in frames)
        path = f"{_path(study_uid, series_uid, sop_uid)}/frames/{numbers}"
        headers = {"Accept": _accept(media_type, transfer_syntax), **_IDENTITY}
        response = self._http.send("GET", path, headers=headers, cancel=cancel)
        try:
            yield from self._parts(response, cancel)
        finally:
            response.close()

    def _parts(self, response: httpx.Response, cancel: CancelToken | None) -> Iterator[Part]:
        media_type, params = parse_content_type(response.headers.get("content-type", ""))
        chunks = self._http.iter_body(response, cancel)
        where = str(response.request.url).split("?", 1)[0]
        if media_type != "multipart/related":
            if media_type in ("application/dicom", "application/octet-stream"):
                # Not standard, but sent by some servers for a single part.
                yield Part({"content-type": media_type}, b"".join(chunks))
                return
            raise BadResponseError(
                f"{self._http.server} answered with {media_type or 'no media type'} instead "
                "of multipart/related",
                url=where,
            )
        try:
            yield from iter_parts(chunks, params.get("boundary", ""))
            for _epilogue in chunks:
                pass  # read to the end, so the connection goes back to the pool for reuse
        except BadResponseError as error:
            if error.url is None:
                error.url = where
                error.message = f"{self._http.server}: {error.message}"
                error.args = (error.message,)
            raise

    # -- STOW-RS ------------------------------------------------------------------------------
    def store_instances(
        self,
        instances: Iterable[bytes | str | os.PathLike[str]],
        *,
        study_uid: str | None = None,
        cancel: CancelToken | None = None,
    ) -> StoreResult:
        """Store DICOM files (bytes or paths, streamed) with one STOW-RS request.

        Not retried once the request was sent (a store is not idempotent on every server).
        Instances the server refused are in ``failed`` with their FailureReason code.
        """
        return store(self._http, instances, study_uid=study_uid, cancel=cancel)


def _path(study_uid: str, series_uid: str | None = None, sop_uid: str | None = None) -> str:
    path = f"studies/{study_uid}"
    if series_uid is not None:
        path += f"/series/{series_uid}"
        if sop_uid is not None:
            path += f"/instances/{sop_uid}"
    return path

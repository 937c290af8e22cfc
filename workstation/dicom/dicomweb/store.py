"""STOW-RS: store DICOM instances on the server in one multipart/related request.

The body is streamed (files are read in 1 MiB chunks, never whole) with a Content-Length
computed up front. The request is not retried once sent: a store is not idempotent on every
server. The server's answer lists what it stored and what it refused, with the reason code
(PS3.18 §10.5.3: 0xA700 out of resources, 0xA900 data set does not match SOP class, 0xC000
cannot understand, 0xC122 referenced study mismatch, ...).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from workstation.core.tasks import CancelToken
from workstation.dicom.dicomweb._http import HttpSession
from workstation.dicom.dicomweb._multipart import encode_parts, new_boundary
from workstation.dicom.dicomweb.errors import BadResponseError, DicomwebError
from workstation.dicom.dicomweb.query import first

_JSON = "application/dicom+json"


@dataclass(frozen=True)
class StoreResult:
    """What a STOW-RS store reported: instances stored, and those refused with the reason code."""

    stored: tuple[str, ...]
    failed: tuple[tuple[str, int | None], ...]
    status: int

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return not self.failed


def store(
    http: HttpSession,
    instances: Iterable[bytes | str | os.PathLike[str]],
    *,
    study_uid: str | None,
    cancel: CancelToken | None,
) -> StoreResult:
    """POST the instances to ``studies[/{study_uid}]`` and read the server's report."""
    items = list(instances)
    boundary = new_boundary()
    path = "studies" if study_uid is None else f"studies/{study_uid}"

    def body() -> Iterator[bytes]:
        return encode_parts(items, boundary, "application/dicom")[1]

    headers = {
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        "Content-Length": str(encode_parts(items, boundary, "application/dicom")[0]),
        "Accept": _JSON,
    }
    response = http.send(
        "POST", path, headers=headers, content=body, cancel=cancel, accept_statuses=(409,)
    )
    raw = http.read(response, cancel)
    try:
        document = json.loads(raw) if raw.strip() else {}
    except ValueError as error:
        raise BadResponseError(
            "the STOW-RS response is not JSON", url=http.resource(path)
        ) from error
    if not isinstance(document, dict):
        raise BadResponseError(
            "the STOW-RS response is not a JSON dataset", url=http.resource(path)
        )
    stored = tuple(str(first(item, "00081155")) for item in _sequence(document, "00081199"))
    failed = tuple(
        (str(first(item, "00081155")), _reason_code(item))
        for item in _sequence(document, "00081198")
    )
    if response.status_code == 409 and not failed:
        raise DicomwebError(
            f"{http.server} refused the whole store (HTTP 409)",
            url=http.resource(path),
            status=409,
        )
    return StoreResult(stored, failed, response.status_code)


def _sequence(document: Mapping[str, Any], tag: str) -> list[Mapping[str, Any]]:
    items = (document.get(tag) or {}).get("Value") or []
    return [item for item in items if isinstance(item, Mapping)]


def _reason_code(item: Mapping[str, Any]) -> int | None:
    value = first(item, "00081197")
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None

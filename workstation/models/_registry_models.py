"""The registry's model-update calls, for :mod:`workstation.models.update`.

:class:`ModelRegistryClient` extends :class:`~workstation.sync.client.RegistryClient` (same
sign-in, timeouts and error mapping) with the signed metadata (``GET /models/metadata/*``), the
releases of a model, a streamed, hashed bundle download, the site's assignments and the
workstation's reports (``POST /models/reports``).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from workstation.sync.client import (
    AuthenticationError,
    PermanentError,
    RegistryClient,
    RegistryUnavailable,
    SyncError,
    _raise_for,
)

__all__ = ["METADATA_ROLES", "REPORT_EVENTS", "ModelRegistryClient", "registry_reporter"]

log = logging.getLogger(__name__)

METADATA_ROLES = ("timestamp", "snapshot", "targets")
REPORT_EVENTS = (
    "shadow.agreement",
    "canary.rollback",
    "canary.promoted",
    "gates.failed",
    "gates.passed",
    "installed",
    "metrics",
)
MAX_METADATA_BYTES = 16 * 1024 * 1024
_CHUNK = 1 << 20


class ModelRegistryClient(RegistryClient):
    """A :class:`RegistryClient` that also speaks the registry's model-update contract."""

    last_download_sha256: str | None = None

    def metadata(self, role: str) -> bytes | None:
        """The raw signed ``role`` document (timestamp, snapshot, targets); ``None`` before the
        registry has published any (404)."""
        if role not in METADATA_ROLES:
            raise ValueError(f"unknown metadata role {role!r}")
        what = f"{role} metadata"
        try:
            response = self._authed("GET", f"/models/metadata/{role}.json", what)
        except PermanentError as error:
            if error.status == 404:
                return None
            raise
        if len(response.content) > MAX_METADATA_BYTES:
            raise PermanentError(f"{what}: larger than {MAX_METADATA_BYTES} bytes")
        return response.content

    def releases(self, name: str) -> list[dict[str, Any]]:
        """Every release of ``name`` this workstation may see (all pages)."""
        what = f"releases of {name}"
        items: list[dict[str, Any]] = []
        params: dict[str, Any] = {"name": name}
        for _ in range(1000):  # a bound on pages, not expected to be reached
            doc = self._json(self._authed("GET", "/models", what, params=params), what)
            items.extend(doc.get("items", []))
            cursor = doc.get("next_cursor")
            if not cursor:
                break
            params = {"name": name, "cursor": cursor}
        return items

    def download(
        self, release_id: str, dest: str | Path, *, expected_sha256: str | None = None
    ) -> Path:
        """Stream the release's bundle into ``dest`` (written whole or not at all); the SHA-256
        is computed on the way and must be ``expected_sha256`` when given (else
        :class:`PermanentError`). Sets :attr:`last_download_sha256`."""
        dest = Path(dest)
        partial = dest.with_name(dest.name + ".partial")
        what = f"bundle {release_id}"
        digest = ""
        for attempt in (0, 1):
            headers = {"Authorization": f"Bearer {self.authenticate(force=attempt == 1)}"}
            try:
                digest = self._stream(f"/models/{release_id}/bundle", what, headers, partial)
                break
            except AuthenticationError as error:
                self._token = None
                if error.status != 401 or attempt == 1:
                    raise
        if expected_sha256 is not None and digest != expected_sha256:
            partial.unlink(missing_ok=True)
            raise PermanentError(f"{what}: the download does not have the listed SHA-256")
        os.replace(partial, dest)
        self.last_download_sha256 = digest
        return dest

    def _stream(self, path: str, what: str, headers: dict[str, str], out: Path) -> str:
        sha = hashlib.sha256()
        try:
            with self._http.stream("GET", path, headers=headers) as response:
                if response.status_code >= 400:
                    response.read()
                    _raise_for(response, what)
                with out.open("wb") as stream:
                    for chunk in response.iter_bytes(_CHUNK):
                        sha.update(chunk)
                        stream.write(chunk)
        except httpx.TransportError as error:
            out.unlink(missing_ok=True)
            raise RegistryUnavailable(
                f"{what}: the registry at {self.url} is unreachable ({type(error).__name__})"
            ) from error
        except BaseException:
            out.unlink(missing_ok=True)
            raise
        return sha.hexdigest()

    def assignments(self) -> list[dict[str, Any]]:
        """The assignments that apply to this workstation's site (and the global ones)."""
        what = "model assignments"
        doc = self._json(self._authed("GET", "/models/assignments", what), what)
        items = doc.get("items", doc) if isinstance(doc, dict) else doc
        return [dict(item) for item in items]

    def report(
        self,
        name: str,
        version: str,
        event: str,
        *,
        stage: str,
        n: int | None = None,
        agreement: float | None = None,
        latency_p95_s: float | None = None,
        error_rate: float | None = None,
        detail: Any = None,
    ) -> None:
        """``POST /models/reports``: one event about ``name version`` at this workstation."""
        if event not in REPORT_EVENTS:
            raise ValueError(f"unknown report event {event!r}")
        body: dict[str, Any] = {"name": name, "version": version, "stage": stage, "event": event}
        optional = {
            "n": n,
            "agreement": agreement,
            "latency_p95_s": latency_p95_s,
            "error_rate": error_rate,
            "detail": detail,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        self._authed("POST", "/models/reports", f"model report {event}", json=body)


# The registry's stages are shadow | canary | active: an install and its gates are reported
# against the stage the version is entering (shadow).
_STAGE_OF = {
    "installed": "shadow",
    "gates.passed": "shadow",
    "gates.failed": "shadow",
    "shadow.agreement": "shadow",
    "canary.rollback": "canary",
    "canary.promoted": "active",
}
MAX_DETAIL = 200


def detail_text(details: Mapping[str, Any]) -> str:
    """``key: value; ...`` (lists joined by commas), cut to the registry's 200 characters."""
    parts = []
    for key, value in details.items():
        shown = ", ".join(map(str, value)) if isinstance(value, list | tuple) else value
        parts.append(f"{key}: {shown}")
    text = "; ".join(parts)
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


def registry_reporter(
    client: ModelRegistryClient,
) -> Callable[[str, str, str, dict[str, Any]], None]:
    """A ``report(name, version, event, details)`` callback for :class:`ModelLifecycle` that
    posts to the registry (``n``, ``agreement``, ``latency_p95_s``, ``error_rate`` and
    ``stage`` in ``details`` become fields, the rest the text ``detail``); a failed post is
    logged, never raised (the change has happened)."""

    def report(name: str, version: str, event: str, details: dict[str, Any]) -> None:
        details = dict(details)
        fields = {k: details.pop(k) for k in ("n", "agreement", "latency_p95_s", "error_rate")
                  if k in details}  # fmt: skip
        stage = str(details.pop("stage", _STAGE_OF.get(event, "active")))
        text = detail_text(details) or None
        try:
            client.report(name, version, event, stage=stage, detail=text, **fields)
        except SyncError as error:
            log.warning("could not report %s for %s %s: %s", event, name, version, error)

    return report

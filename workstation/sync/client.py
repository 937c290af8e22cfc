"""HTTP client for the central registry: enrolment, challenge/response sign-in, uploads.

Every request has explicit timeouts. Failures map to a small hierarchy so the sync engine can
decide per item: :class:`RetryableError` (network, 5xx, 429 with ``retry_after``; the subclass
:class:`RegistryUnavailable` when the registry cannot be reached at all), :class:`PermanentError`
(the item itself is refused: 409, 413, 422 and other 4xx) and :class:`AuthenticationError`
(the workstation is not, or no longer, allowed in: nothing is the item's fault). Error messages
carry status codes and the registry's ``detail`` only, never payload contents.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from workstation.security.seal import RecipientPublicKey
from workstation.security.sign import HybridPublicKey, HybridSigningKey

__all__ = [
    "AUTH_CONTEXT",
    "AuthenticationError",
    "Enrolment",
    "PermanentError",
    "RegistryClient",
    "RegistryUnavailable",
    "RetryableError",
    "SyncError",
    "Upload",
]

AUTH_CONTEXT = "medws-registry-auth"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
TOKEN_MARGIN_S = 30.0  # re-authenticate this long before the token expires


class SyncError(Exception):
    """A registry call failed; ``status`` is the HTTP status (``None``: no response)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RetryableError(SyncError):
    """Try again later (network, 5xx, 429); ``retry_after`` in seconds when the server said."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class RegistryUnavailable(RetryableError):
    """The registry could not be reached (connection refused, DNS, timeout)."""


class PermanentError(SyncError):
    """The registry refused this request for good (409, 413, 422, other 4xx)."""


class AuthenticationError(SyncError):
    """Enrolment or sign-in refused (bad token, unknown or revoked workstation, 401/403)."""


@dataclass(frozen=True)
class Enrolment:
    """What ``POST /enrol`` returned."""

    workstation_id: str
    site_id: str
    site_name: str


@dataclass(frozen=True)
class Upload:
    """What ``POST /results`` returned (``duplicate``: the key was already there)."""

    id: str
    sha256: str
    size: int
    received: str
    duplicate: bool


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase or ""
    detail = body.get("detail") if isinstance(body, dict) else None
    return str(detail)[:200] if detail is not None else ""


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _raise_for(response: httpx.Response, what: str) -> None:
    """Map an error response to the exception hierarchy."""
    status = response.status_code
    if status < 400:
        return
    message = f"{what}: HTTP {status} {_detail(response)}".rstrip()
    if status == 429:
        raise RetryableError(message, status=status, retry_after=_retry_after(response))
    if status >= 500 or status == 408:
        raise RetryableError(message, status=status, retry_after=_retry_after(response))
    if status in (401, 403):
        raise AuthenticationError(message, status=status)
    raise PermanentError(message, status=status)


class RegistryClient:
    """One registry, one workstation identity.

    Parameters
    ----------
    url
        The registry's base URL (``https://registry.example``).
    signing_key
        The workstation's signing key (sign-in); needed for everything but :meth:`enrol`.
    workstation_id
        From enrolment; needed for everything but :meth:`enrol`.
    timeout
        ``httpx.Timeout`` for every request.
    transport
        An ``httpx`` transport (tests).
    clock
        Monotonic seconds, for the token's lifetime.
    """

    def __init__(
        self,
        url: str,
        *,
        signing_key: HybridSigningKey | None = None,
        workstation_id: str | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url.rstrip("/")
        self.workstation_id = workstation_id
        self._signing_key = signing_key
        self._clock = clock
        self._token: str | None = None
        self._token_until = 0.0
        self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, what: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise RegistryUnavailable(
                f"{what}: the registry at {self.url} is unreachable ({type(error).__name__})"
            ) from error
        _raise_for(response, what)
        return response

    @staticmethod
    def _json(response: httpx.Response, what: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise RetryableError(
                f"{what}: the registry sent no JSON", status=response.status_code
            ) from None

    # -- enrolment and sign-in --------------------------------------------------------------

    def enrol(
        self,
        token: str,
        name: str,
        signing_key: HybridPublicKey,
        recipient_key: RecipientPublicKey,
    ) -> Enrolment:
        """Register this workstation with a one-time enrolment token."""
        body = {
            "token": token,
            "name": name,
            "signing_key": signing_key.to_json(),
            "recipient_key": recipient_key.to_json(),
        }
        response = self._request("POST", "/enrol", "enrolment", json=body)
        doc = self._json(response, "enrolment")
        enrolment = Enrolment(
            str(doc["workstation_id"]), str(doc["site_id"]), str(doc.get("site_name", ""))
        )
        self.workstation_id = enrolment.workstation_id
        return enrolment

    def authenticate(self, *, force: bool = False) -> str:
        """A workstation access token, from cache until shortly before it expires."""
        if not force and self._token is not None and self._clock() < self._token_until:
            return self._token
        if self._signing_key is None or self.workstation_id is None:
            raise AuthenticationError("not enrolled: no workstation id or signing key")
        challenge = self._json(
            self._request(
                "GET",
                "/auth/challenge",
                "sign-in challenge",
                params={"workstation_id": self.workstation_id},
            ),
            "sign-in challenge",
        )
        nonce = str(challenge["nonce"])
        signature = self._signing_key.sign(bytes.fromhex(nonce), context=AUTH_CONTEXT)
        body = {
            "workstation_id": self.workstation_id,
            "nonce": nonce,
            "signature": signature.to_json(),
        }
        started = self._clock()
        doc = self._json(
            self._request("POST", "/auth/workstation", "sign-in", json=body), "sign-in"
        )
        lifetime = float(doc.get("expires_in", 300))
        self._token = str(doc["access_token"])
        self._token_until = started + max(0.0, lifetime - min(TOKEN_MARGIN_S, lifetime / 10))
        return self._token

    def _authed(self, method: str, path: str, what: str, **kwargs: Any) -> httpx.Response:
        """A request with the bearer token; one fresh sign-in on 401 (expired token)."""
        headers = dict(kwargs.pop("headers", {}) or {})
        for attempt in (0, 1):
            headers["Authorization"] = f"Bearer {self.authenticate(force=attempt == 1)}"
            try:
                return self._request(method, path, what, headers=headers, **kwargs)
            except AuthenticationError as error:
                self._token = None
                if error.status != 401 or attempt == 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    # -- calls ------------------------------------------------------------------------------

    def ready(self) -> bool:
        """Whether ``/health/ready`` answers 200 (never raises)."""
        try:
            return self._http.get("/health/ready").status_code == 200
        except httpx.HTTPError:
            return False

    def recipients(self, site_id: str) -> list[RecipientPublicKey]:
        """The site's recipient public keys (results are sealed to all of them)."""
        what = "site recipients"
        doc = self._json(self._authed("GET", f"/admin/sites/{site_id}/recipients", what), what)
        entries = doc.get("recipients", doc) if isinstance(doc, dict) else doc
        keys = []
        for entry in entries:
            key = RecipientPublicKey.from_json(entry.get("public", entry))
            if "key_id" in entry and entry["key_id"] != key.key_id:
                raise PermanentError(f"{what}: a key id does not match its key")
            keys.append(key)
        return keys

    def upload_result(self, idempotency_key: str, blob: bytes, *, kind: str = "analysis") -> Upload:
        """Upload one sealed result; a repeat of the same key and bytes is a duplicate."""
        headers = {
            "Idempotency-Key": idempotency_key,
            "X-Result-Kind": kind,
            "Content-Type": "application/octet-stream",
        }
        what = "result upload"
        doc = self._json(
            self._authed("POST", "/results", what, headers=headers, content=blob), what
        )
        return Upload(
            id=str(doc["id"]),
            sha256=str(doc.get("sha256", "")),
            size=int(doc.get("size", len(blob))),
            received=str(doc.get("received", "")),
            duplicate=bool(doc.get("duplicate", False)),
        )

"""HTTP for the DICOMweb client: one httpx client, retries, authentication, error translation.

Every request goes through :meth:`HttpSession.send`: one explicit timeout (connect, read, write
and pool all use it), retries with exponential backoff and jitter for idempotent requests only
(GET: connection failures, timeouts, broken connections, 429/502/503/504; a POST is retried only
when the connection was never made, so a STOW-RS store is never sent twice), ``Retry-After``
honoured (capped), and a :class:`~workstation.core.tasks.CancelToken` checked before each
attempt, during backoff, and between body chunks. httpx errors and HTTP error statuses become
the :mod:`~workstation.dicom.dicomweb.errors` tree, with messages that name the server and the
resource path but never the query string (QIDO queries carry patient names).
"""

from __future__ import annotations

import os
import random
import ssl
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import httpx

from workstation.core.tasks import CancelToken, check_cancel
from workstation.dicom.dicomweb.errors import (
    AuthenticationError,
    DicomwebError,
    DicomwebNotFoundError,
    DicomwebTimeoutError,
    ServerError,
    ServerUnreachableError,
    TlsError,
    TruncatedResponseError,
)

_RETRY_STATUSES = frozenset({429, 502, 503, 504})
_MAX_BACKOFF_S = 10.0
_MAX_RETRY_AFTER_S = 30.0
_USER_AGENT = "medical-workstation-dicomweb/1"

T = TypeVar("T")
Verify = bool | str | os.PathLike[str] | ssl.SSLContext
EventHooks = Mapping[str, Sequence[Callable[..., Any]]]


class BearerAuth(httpx.Auth):
    """``Authorization: Bearer <token>`` on every request (the token never appears in repr)."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("the bearer token is empty")
        self._header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        request.headers["Authorization"] = self._header
        yield request

    def __repr__(self) -> str:
        return "BearerAuth(<token>)"


def _ssl_context(verify: Verify) -> ssl.SSLContext | bool:
    if isinstance(verify, bool | ssl.SSLContext):
        return verify
    return ssl.create_default_context(cafile=os.fspath(verify))


def _auth(auth: httpx.Auth | tuple[str, str] | None, url: httpx.URL) -> httpx.Auth | None:
    if isinstance(auth, tuple):
        return httpx.BasicAuth(*auth)
    if auth is None and url.username:
        return httpx.BasicAuth(url.username, url.password)
    return auth


class HttpSession:
    """A base URL and the httpx client that talks to it (thread-safe; share it)."""

    def __init__(
        self,
        base_url: str,
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
    ) -> None:
        url = httpx.URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"not an http(s) URL: {url.copy_with(userinfo=b'')}")
        self.timeout = float(timeout)
        self.retries = max(0, int(retries))
        self.backoff = max(0.0, float(backoff))
        clean = url.copy_with(userinfo=b"", query=None, fragment=None)
        self.base_url = str(clean).rstrip("/")
        self.server = f"{clean.host}:{clean.port}" if clean.port else clean.host
        self._client = httpx.Client(
            auth=_auth(auth, url),
            timeout=httpx.Timeout(self.timeout),
            verify=_ssl_context(verify),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            transport=transport,
            event_hooks={k: list(v) for k, v in (event_hooks or {}).items()},
            headers={"User-Agent": _USER_AGENT, **(headers or {})},
            follow_redirects=True,
        )

    def close(self) -> None:
        """Close the connections."""
        self._client.close()

    def resource(self, path: str) -> str:
        """The URL of ``path`` (relative to the base URL) for messages: no query string."""
        return f"{self.base_url}/{path.lstrip('/')}"

    # -- requests -----------------------------------------------------------------------------
    def send(
        self,
        method: str,
        path: str,
        *,
        query: str = "",
        headers: Mapping[str, str] | None = None,
        content: Callable[[], Any] | None = None,
        cancel: CancelToken | None = None,
        accept_statuses: tuple[int, ...] = (),
    ) -> httpx.Response:
        """Send a request and return the streaming response (status < 400; close it).

        ``path`` is relative to the base URL (or absolute: a BulkDataURI). ``content`` makes the
        request body afresh for each attempt. GET and HEAD are retried (see module docstring).
        ``accept_statuses`` are error statuses returned rather than raised (STOW-RS 409).
        """
        url = path if "://" in path else self.resource(path)
        where = url.split("?", 1)[0]
        full = f"{url}?{query}" if query else url
        idempotent = method in ("GET", "HEAD")
        attempt = 0
        while True:
            check_cancel(cancel)
            body = None if content is None else content()
            request = self._client.build_request(method, full, headers=headers, content=body)
            try:
                response = self._client.send(request, stream=True)
            except httpx.TransportError as error:
                never_sent = isinstance(error, httpx.ConnectError | httpx.ConnectTimeout)
                if attempt < self.retries and (idempotent or never_sent):
                    self._sleep(self._delay(attempt), cancel)
                    attempt += 1
                    continue
                raise self.transport_error(error, where) from error
            status = response.status_code
            if status in _RETRY_STATUSES and idempotent and attempt < self.retries:
                delay = _retry_after(response) or self._delay(attempt)
                response.close()
                self._sleep(delay, cancel)
                attempt += 1
                continue
            if status >= 400 and status not in accept_statuses:
                response.close()
                raise self.status_error(status, response.reason_phrase, where)
            return response

    def exchange(
        self,
        path: str,
        consume: Callable[[httpx.Response], T],
        *,
        query: str = "",
        headers: Mapping[str, str] | None = None,
        cancel: CancelToken | None = None,
    ) -> T:
        """GET ``path`` and ``consume`` the whole response, retrying the exchange as a whole
        when the body times out or breaks off (the GET is idempotent, nothing was kept)."""
        attempt = 0
        while True:
            response = self.send("GET", path, query=query, headers=headers, cancel=cancel)
            try:
                return consume(response)
            except (TruncatedResponseError, DicomwebTimeoutError):
                if attempt >= self.retries:
                    raise
            finally:
                response.close()
            self._sleep(self._delay(attempt), cancel)
            attempt += 1

    def iter_body(self, response: httpx.Response, cancel: CancelToken | None) -> Iterator[bytes]:
        """The response body as it arrives (content-decoded), cancellation checked per chunk."""
        where = str(response.request.url).split("?", 1)[0]
        try:
            for chunk in response.iter_bytes():
                check_cancel(cancel)
                yield chunk
        except httpx.TransportError as error:
            raise self.transport_error(error, where, during_body=True) from error
        except httpx.DecodingError as error:
            raise TruncatedResponseError(
                f"the response from {self.server} could not be decoded ({error}); the transfer "
                "was probably cut off",
                url=where,
            ) from error

    def read(self, response: httpx.Response, cancel: CancelToken | None) -> bytes:
        """The whole body of a (small) response; the response is closed."""
        try:
            return b"".join(self.iter_body(response, cancel))
        finally:
            response.close()

    # -- errors and waiting -------------------------------------------------------------------
    def transport_error(
        self, error: httpx.TransportError, where: str, *, during_body: bool = False
    ) -> DicomwebError:
        """The error to raise for an httpx transport failure."""
        server = self.server
        if isinstance(error, httpx.TimeoutException) and not isinstance(
            error, httpx.ConnectTimeout
        ):
            return DicomwebTimeoutError(
                f"{server} did not answer within {self.timeout:g} s; the server or the network "
                "is overloaded (try again, or raise the timeout)",
                url=where,
            )
        if during_body:
            return TruncatedResponseError(
                f"the connection to {server} broke off during the transfer ({_reason(error)}); "
                "nothing of the incomplete response was kept",
                url=where,
            )
        if _is_tls_failure(error):
            return TlsError(
                f"the TLS certificate of {server} is not trusted ({_reason(error)}): give the "
                "hospital's CA bundle (verify=PATH) rather than turning verification off",
                url=where,
            )
        if isinstance(error, httpx.ConnectTimeout):
            return ServerUnreachableError(
                f"cannot reach {server}: no answer within {self.timeout:g} s; check the address, "
                "the network and any firewall",
                url=where,
            )
        if isinstance(error, httpx.ConnectError):
            return ServerUnreachableError(
                f"cannot connect to {server} ({_reason(error)}); check the address and port "
                "and that the DICOMweb server is running",
                url=where,
            )
        return ServerUnreachableError(
            f"the connection to {server} failed ({_reason(error)}); try again", url=where
        )

    def status_error(self, status: int, reason: str, where: str) -> DicomwebError:
        """The error to raise for an HTTP error status."""
        server = self.server
        label = f"HTTP {status}{f' {reason}' if reason else ''}"
        if status == 401:
            return AuthenticationError(
                f"{server} refused the credentials ({label}): check the user name and password "
                "or the token",
                url=where,
                status=status,
            )
        if status == 403:
            return AuthenticationError(
                f"{server} denied access ({label}): check the credentials and that the account "
                "may use this resource",
                url=where,
                status=status,
            )
        if status == 404:
            return DicomwebNotFoundError(
                f"{server} has no such resource ({label}): {where}; check the UIDs and the "
                "DICOMweb root of the URL (e.g. .../dicom-web)",
                url=where,
                status=status,
            )
        if status >= 500:
            return ServerError(
                f"{server} failed ({label}) on {where}; try again later or ask its administrator",
                url=where,
                status=status,
            )
        return ServerError(f"{server} answered {label} to {where}", url=where, status=status)

    def _delay(self, attempt: int) -> float:
        return min(_MAX_BACKOFF_S, self.backoff * 2**attempt) * random.uniform(0.5, 1.0)

    @staticmethod
    def _sleep(seconds: float, cancel: CancelToken | None) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            check_cancel(cancel)
            time.sleep(min(left, 0.05))
        check_cancel(cancel)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return min(_MAX_RETRY_AFTER_S, max(0.0, float(value)))
    except ValueError:
        return None


def _reason(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[-1][:200] if text else type(error).__name__


def _is_tls_failure(error: BaseException) -> bool:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLError) or "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False

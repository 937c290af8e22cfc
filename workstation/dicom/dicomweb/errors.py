"""Errors of the DICOMweb client (see :mod:`workstation.core.errors` for the whole tree).

::

    WorkstationError
    └── DicomError
        └── DicomwebError               a DICOMweb request failed (``url``, ``status``)
            ├── ServerUnreachableError  no connection: wrong address, server down, DNS
            │   └── TlsError            the TLS handshake failed (certificate not trusted)
            ├── DicomwebTimeoutError    the server did not answer within the timeout
            ├── AuthenticationError     401 / 403: check the credentials
            ├── DicomwebNotFoundError   404: no such study, series or instance on the server
            ├── ServerError             5xx and other unexpected statuses
            └── BadResponseError        malformed JSON or multipart, wrong media type
                └── TruncatedResponseError  the body ended early (connection cut, no closing
                                            boundary): nothing of the cut part is used

Messages name the server and the resource path, never the query string: QIDO queries carry
patient names and IDs.
"""

from __future__ import annotations

from workstation.dicom.errors import DicomError


class DicomwebError(DicomError):
    """Base of the DICOMweb errors.

    Parameters
    ----------
    message
        What failed and what to do about it (no PHI).
    url
        The resource (scheme, host, path; no query string, no credentials).
    status
        The HTTP status when the server answered.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        status: int | None = None,
        uid: str | None = None,
    ) -> None:
        super().__init__(message, uid=uid)
        self.url = url
        self.status = status


class ServerUnreachableError(DicomwebError):
    """The server could not be reached (refused, DNS, network down)."""


class TlsError(ServerUnreachableError):
    """The TLS handshake failed: the certificate is not trusted or does not match."""


class DicomwebTimeoutError(DicomwebError):
    """The server did not answer (or stalled) for longer than the client's timeout."""


class AuthenticationError(DicomwebError):
    """The server refused the credentials (HTTP 401) or the access (HTTP 403)."""


class DicomwebNotFoundError(DicomwebError):
    """The server has no such resource (HTTP 404)."""


class ServerError(DicomwebError):
    """The server failed (HTTP 5xx) or answered with an unexpected status."""


class BadResponseError(DicomwebError):
    """The response cannot be understood: malformed JSON or multipart, wrong media type."""


class TruncatedResponseError(BadResponseError):
    """The response body ended before it was complete."""

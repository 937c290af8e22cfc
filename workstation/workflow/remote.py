"""Remote (DICOMweb) sources as the GUI and the CLI name them, and how to connect to them.

A :class:`PacsServer` is what a user saves: a service root, a display name, a user name, TLS
settings. Secrets are never part of it (nor of anything written to disk): a password or token
comes from the URL's userinfo, from ``$WORKSTATION_PACS_PASSWORD`` / ``$WORKSTATION_PACS_TOKEN``,
or from the caller (a GUI prompt), and lives only in memory.

A :class:`RemoteSeries` is one series on a server; :func:`~workstation.workflow.load_progressively`
streams it like a local folder. :func:`remote_source` turns a pasted DICOMweb URL into one
(resolving a study URL to its first series).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from workstation.core.tasks import CancelToken

if TYPE_CHECKING:  # httpx and cryptography load only when a remote source is used
    from workstation.dicom.dicomweb import DicomwebClient, InstanceCache

__all__ = [
    "PASSWORD_ENV",
    "TOKEN_ENV",
    "Credentials",
    "PacsServer",
    "RemoteSeries",
    "connect",
    "default_cache",
    "is_url",
    "remote_source",
    "server_from_url",
]

PASSWORD_ENV = "WORKSTATION_PACS_PASSWORD"
TOKEN_ENV = "WORKSTATION_PACS_TOKEN"


@dataclass(frozen=True)
class Credentials:
    """Secrets for one connection, in memory only (``repr`` hides them)."""

    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class PacsServer:
    """A DICOMweb service a user can search and stream from (no secrets in here)."""

    url: str
    name: str = ""
    username: str | None = None
    verify: bool | str = True  # False, True, or a CA bundle path
    timeout: float = 30.0
    credentials: Credentials = field(default_factory=Credentials, compare=False, repr=False)

    @property
    def label(self) -> str:
        """The name to show (the URL when unnamed)."""
        return self.name or self.url

    def with_credentials(self, credentials: Credentials) -> PacsServer:
        """The same server with in-memory secrets attached."""
        return replace(self, credentials=credentials)


@dataclass(frozen=True)
class RemoteSeries:
    """One series on a DICOMweb server (``series_uid`` may be a stack key ``UID:n``)."""

    server: PacsServer
    study_uid: str
    series_uid: str
    description: str = ""

    def __str__(self) -> str:  # shown in the status bar and the problems panel: UIDs, no PHI
        return f"{self.server.label} series {self.series_uid}"


def is_url(text: str) -> bool:
    """Whether ``text`` looks like an http(s) URL (rather than a local path)."""
    return text.startswith(("http://", "https://"))


def server_from_url(url: str, **settings: object) -> PacsServer:
    """A server for the service root in ``url``; user name and password in the URL's userinfo
    are taken (the password only into memory)."""
    import httpx

    from workstation.dicom.dicomweb import parse_dicomweb_url

    location = parse_dicomweb_url(url)
    parsed = httpx.URL(url)
    username = parsed.username or None
    password = parsed.password or None
    credentials = Credentials(password=password) if password else Credentials()
    return PacsServer(location.base_url, username=username, credentials=credentials, **settings)  # type: ignore[arg-type]


def connect(server: PacsServer) -> DicomwebClient:
    """A client for ``server``; secrets from the server's credentials, else the environment."""
    from workstation.dicom.dicomweb import BearerAuth, DicomwebClient

    token = server.credentials.token or os.environ.get(TOKEN_ENV)
    password = server.credentials.password or os.environ.get(PASSWORD_ENV)
    auth: object = None
    if token:
        auth = BearerAuth(token)
    elif server.username:
        auth = (server.username, password or "")
    return DicomwebClient(server.url, auth=auth, timeout=server.timeout, verify=server.verify)  # type: ignore[arg-type]


def remote_source(
    url: str, *, server: PacsServer | None = None, cancel: CancelToken | None = None
) -> RemoteSeries:
    """The series a DICOMweb URL names; a study URL means its first series (by number).

    Raises
    ------
    ValueError
        The URL names no study (a service root: search it instead) or is not http(s).
    DicomwebError
        The study has no series, or the server cannot be reached.
    """
    from workstation.dicom.dicomweb import DicomwebNotFoundError, parse_dicomweb_url

    location = parse_dicomweb_url(url)
    if location.study_uid is None:
        raise ValueError(
            "this DICOMweb URL names a server, not a study: add /studies/<StudyInstanceUID>"
            " (or search it with `workstation pacs search`)"
        )
    server = server if server is not None else server_from_url(url)
    if location.series_uid is not None:
        return RemoteSeries(server, location.study_uid, location.series_uid)
    with connect(server) as client:
        found = client.search_series(location.study_uid, cancel=cancel)
    if not found:
        raise DicomwebNotFoundError(f"study {location.study_uid} has no series on the server")
    first = min(found, key=lambda s: (s.series_number is None, s.series_number or 0))
    return RemoteSeries(server, location.study_uid, first.series_uid, first.description or "")


def default_cache() -> InstanceCache | None:
    """The encrypted DICOMweb cache under the workstation home, if the key store opens without
    asking (an OS keyring, or ``$WORKSTATION_PASSPHRASE``); else ``None`` (no caching at all,
    never plaintext)."""
    from workstation.config import paths
    from workstation.core.errors import WorkstationError
    from workstation.dicom.dicomweb import open_cache
    from workstation.security.keystore import KeyStore, default_folder, exists

    folder = default_folder()
    if not exists(folder):
        return None
    try:
        store = KeyStore.open(folder)
    except WorkstationError:
        return None
    return open_cache(store.data_keys(), root=paths().ensure(paths().cache / "dicomweb"))

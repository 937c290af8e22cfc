"""The saved PACS (DICOMweb) servers: a short list persisted as JSON (Qt-free).

::

    saved = PacsServers()                       # <home>/pacs_servers.json
    saved.add(PacsServer("https://pacs/dicom-web", name="PACS", username="alice"))
    for server in saved.servers():              # in the order they were added
        ...
    saved.update(old, new)                      # edit one in place
    saved.remove(server)

An entry is identified by its URL and user name (two accounts on one server are two entries).
Only the URL, display name, user name, TLS verification (a flag or a CA bundle path) and
timeout are stored: never a password or a token (a :class:`~workstation.workflow.remote.PacsServer`
carries those only in memory), and credentials written into a URL (``https://user:pw@host``) are
stripped before saving.

Every call reads the file afresh and every change is written atomically (a private temporary
file in the same folder, mode 0600, then :func:`os.replace`). A missing file gives an empty
list; a corrupt or unreadable one gives an empty list and a logged warning that names the
problem, never the file's contents. A list that cannot be saved raises
:class:`PacsServersError` (a :class:`~workstation.core.errors.WorkstationError`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from workstation.config import paths
from workstation.core.errors import WorkstationError
from workstation.core.files import write_atomic
from workstation.workflow.remote import Credentials, PacsServer

__all__ = ["PacsServers", "PacsServersError", "server_key"]

log = logging.getLogger(__name__)

_FORMAT_VERSION = 1
_FILE_NAME = "pacs_servers.json"


class PacsServersError(WorkstationError):
    """The list could not be saved (``path``: its file)."""


def _clean_url(url: str) -> str:
    """``url`` without userinfo, query, fragment or trailing ``/``.

    Raises
    ------
    ValueError
        Not an http(s) URL with a host.
    """
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("a PACS URL starts with http:// or https:// and names a server")
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme.lower(), host, parts.path.rstrip("/"), "", ""))


def server_key(server: PacsServer) -> tuple[str, str]:
    """What identifies a saved entry: the URL (lower-case scheme and host) and the user name."""
    parts = urlsplit(_clean_url(server.url))
    url = urlunsplit((parts.scheme, parts.netloc.lower(), parts.path, "", ""))
    return url, server.username or ""


def _stored(server: PacsServer) -> PacsServer:
    """The server as it is saved: a clean URL, no credentials."""
    return replace(
        server,
        url=_clean_url(server.url),
        name=server.name.strip(),
        username=(server.username or "").strip() or None,
        credentials=Credentials(),
    )


class PacsServers:
    """The saved DICOMweb servers, in the order they were added.

    Parameters
    ----------
    path
        The JSON file; ``None``: ``pacs_servers.json`` in the workstation home
        (:func:`workstation.config.paths`).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else paths().home / _FILE_NAME
        self._lock = threading.Lock()

    # -- the public face ----------------------------------------------------------------------
    def servers(self) -> list[PacsServer]:
        """The saved servers (without credentials)."""
        with self._lock:
            return self._read()

    def find(self, server: PacsServer) -> PacsServer | None:
        """The saved entry with the same URL and user name as ``server``, if any."""
        key = server_key(server)
        return next((s for s in self.servers() if server_key(s) == key), None)

    def add(self, server: PacsServer) -> PacsServer:
        """Save ``server``: replaces the entry with the same URL and user name in place, else
        appends. Returns the entry as saved (no credentials).

        Raises
        ------
        ValueError
            The URL is not http(s).
        PacsServersError
            The file cannot be written.
        """
        entry = _stored(server)
        key = server_key(entry)
        with self._lock:
            entries = self._read()
            keys = [server_key(s) for s in entries]
            if key in keys:
                entries[keys.index(key)] = entry
            else:
                entries.append(entry)
            self._write(entries)
        return entry

    def update(self, old: PacsServer, new: PacsServer) -> PacsServer:
        """Replace the entry of ``old`` (by URL and user name) with ``new``, in its place; another
        entry that ``new`` now duplicates is dropped. Returns the entry as saved.

        Raises
        ------
        KeyError
            ``old`` is not saved.
        ValueError, PacsServersError
            As for :meth:`add`.
        """
        entry = _stored(new)
        old_key, new_key = server_key(old), server_key(entry)
        with self._lock:
            entries = self._read()
            keys = [server_key(s) for s in entries]
            if old_key not in keys:
                raise KeyError("that server is not saved")
            at = keys.index(old_key)
            kept = [
                entry if i == at else s
                for i, (s, k) in enumerate(zip(entries, keys, strict=True))
                if i == at or k != new_key
            ]
            self._write(kept)
        return entry

    def remove(self, server: PacsServer) -> bool:
        """Forget ``server`` (by URL and user name); True if it was saved."""
        key = server_key(server)
        with self._lock:
            entries = self._read()
            kept = [s for s in entries if server_key(s) != key]
            if len(kept) == len(entries):
                return False
            self._write(kept)
        return True

    # -- the file -----------------------------------------------------------------------------
    def _read(self) -> list[PacsServer]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError) as error:
            log.warning("PACS servers file %s unreadable (%s); list empty", self.path, _kind(error))
            return []
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            log.warning(
                "PACS servers file %s is not valid JSON (line %d, column %d); list empty",
                self.path,
                error.lineno,
                error.colno,
            )
            return []
        if not isinstance(document, dict) or not isinstance(document.get("servers"), list):
            log.warning("PACS servers file %s has an unknown layout; list empty", self.path)
            return []
        entries: list[PacsServer] = []
        seen: set[tuple[str, str]] = set()
        skipped = 0
        for item in document["servers"]:
            server = _from_json(item)
            if server is None:
                skipped += 1
            elif server_key(server) not in seen:
                seen.add(server_key(server))
                entries.append(server)
        if skipped:
            log.warning("PACS servers file %s: %d malformed entries ignored", self.path, skipped)
        return entries

    def _write(self, entries: list[PacsServer]) -> None:
        try:
            self._replace(entries)
        except OSError as error:
            raise PacsServersError(
                f"cannot save the PACS server list: {_kind(error)}", path=self.path
            ) from error

    def _replace(self, entries: list[PacsServer]) -> None:
        document = {"version": _FORMAT_VERSION, "servers": [_to_json(s) for s in entries]}
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        text = json.dumps(document, indent=1, ensure_ascii=False) + "\n"
        write_atomic(self.path, text.encode("utf-8"), prefix=".pacs-servers-")


def _to_json(server: PacsServer) -> dict[str, Any]:
    """The stored fields only: no credentials ever."""
    return {
        "url": server.url,
        "name": server.name,
        "username": server.username,
        "verify": server.verify,
        "timeout": server.timeout,
    }


def _from_json(item: Any) -> PacsServer | None:
    """A server from one stored entry; None when the entry is malformed."""
    if not isinstance(item, dict):
        return None
    url, name = item.get("url"), item.get("name", "")
    username, verify = item.get("username"), item.get("verify", True)
    timeout = item.get("timeout", 30.0)
    if not isinstance(url, str) or not isinstance(name, str):
        return None
    if username is not None and not isinstance(username, str):
        return None
    if not isinstance(verify, bool | str) or (isinstance(verify, str) and not verify):
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        return None
    if not math.isfinite(timeout) or timeout <= 0:
        return None
    try:
        return _stored(PacsServer(url, name, username, verify, float(timeout)))
    except ValueError:
        return None


def _kind(error: BaseException) -> str:
    """What went wrong, without the error's message (which may quote the file's bytes)."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return type(error).__name__

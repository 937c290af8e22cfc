"""Local trust: keys this workstation trusts on its own (see :mod:`.trust`).

Its own signing key (``workstation keys init``) for ``model`` and ``plugin``; an administrators'
allow-list ``<home>/trust/allowed_keys.json`` for ``model``, ``plugin`` and ``registry``::

    {"format": "medical-workstation/allowed-keys", "version": 1,
     "keys": [{"public": {<HybridPublicKey.to_json()>}, "roles": ["model"],
               "expires": "2027-06-30T00:00:00Z", "note": "neuro lab models"}]}

The allow-list is refused when group- or world-writable. Neither ever counts for ``root`` or
``release``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workstation.security._canonical import format_time, parse_time, strict_json
from workstation.security.errors import KeyStoreError, SignatureError, TrustError
from workstation.security.sign import HybridPublicKey

LOCAL_KEY_ROLES = frozenset({"model", "plugin"})
ALLOW_LIST_ROLES = frozenset({"model", "plugin", "registry"})
ALLOW_LIST_FORMAT = "medical-workstation/allowed-keys"

SOURCE_ROOT = "trust root"
SOURCE_LOCAL = "local key"
SOURCE_ALLOW = "allow-list"


@dataclass(frozen=True)
class TrustedKey:
    """A public key trusted for a role, until ``expires`` (``None``: no end, local keys only)."""

    public: HybridPublicKey
    expires: dt.datetime | None
    source: str = SOURCE_ROOT
    roles: frozenset[str] = frozenset()
    note: str = ""

    @property
    def key_id(self) -> str:
        """The key's fingerprint."""
        return self.public.key_id


@dataclass(frozen=True)
class LocalTrust:
    """Keys this workstation trusts on its own (see the module docstring)."""

    keys: tuple[TrustedKey, ...] = ()
    notes: tuple[str, ...] = ()  # why something was left out (e.g. the key store is locked)

    def for_role(self, role: str) -> dict[str, TrustedKey]:
        """The local keys trusted for ``role``, by key id."""
        return {key.key_id: key for key in self.keys if role in key.roles}

    @classmethod
    def load(
        cls, home: Path | None = None, *, own_key: HybridPublicKey | str | None = "auto"
    ) -> LocalTrust:
        """This workstation's own key and the allow-list under ``home`` (default: the home).

        ``own_key="auto"`` opens the key store without prompting (``$WORKSTATION_PASSPHRASE``
        or the OS keyring); when it is missing or locked the key is left out, with a note.
        """
        if home is None:
            from workstation.config import paths

            home = paths().home
        keys: list[TrustedKey] = []
        notes: list[str] = []
        if own_key == "auto":
            from workstation.config import Paths

            own_key, note = _own_public_key(Paths(home).keys)
            if note:
                notes.append(note)
        if isinstance(own_key, HybridPublicKey):
            own = TrustedKey(own_key, None, SOURCE_LOCAL, LOCAL_KEY_ROLES, "this workstation")
            keys.append(own)
        keys.extend(_read_allow_list(allow_list_path(home)))
        return cls(tuple(keys), tuple(notes))


def _own_public_key(folder: Path) -> tuple[HybridPublicKey | None, str]:
    try:
        from workstation.security import keystore

        if not keystore.exists(folder):
            return None, ""
        return keystore.KeyStore.open(folder).signing_key().public_key, ""
    except (ImportError, KeyStoreError) as error:
        return None, f"this workstation's own key is not trusted here: {error}"


def allow_list_path(home: Path) -> Path:
    """The administrators' allow-list of extra keys."""
    return home / "trust" / "allowed_keys.json"


def _read_allow_list(path: Path) -> list[TrustedKey]:
    try:
        raw = path.read_bytes()
        mode = path.stat().st_mode
    except FileNotFoundError:
        return []
    except OSError as error:
        raise TrustError(f"cannot read the key allow-list {path}: {error}", path=path) from None
    if os.name == "posix" and mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise TrustError(
            f"the key allow-list {path} is writable by other users; make it writable by its "
            "owner only (chmod 644) before it is trusted",
            path=path,
        )
    doc = strict_json(raw, f"the key allow-list {path}", TrustError)
    try:
        if doc.get("format") != ALLOW_LIST_FORMAT or doc.get("version") != 1:
            raise ValueError(f"not a version 1 {ALLOW_LIST_FORMAT} document")
        out = []
        for item in doc["keys"]:
            roles = frozenset(item["roles"])
            if not roles or not roles <= ALLOW_LIST_ROLES:
                raise ValueError(
                    f"roles {sorted(roles)} are not allowed; an allow-list may grant only "
                    f"{sorted(ALLOW_LIST_ROLES)}"
                )
            expires = item.get("expires")
            out.append(
                TrustedKey(
                    HybridPublicKey.from_json(item["public"]),
                    None if expires is None else parse_time(expires, "expires"),
                    SOURCE_ALLOW,
                    roles,
                    str(item.get("note", "")),
                )
            )
        return out
    except (AttributeError, KeyError, TypeError, ValueError, SignatureError) as error:
        raise TrustError(f"the key allow-list {path} is malformed: {error}", path=path) from None


def add_allowed_key(
    public: HybridPublicKey,
    roles: Iterable[str],
    *,
    home: Path | None = None,
    expires: dt.datetime | None = None,
    note: str = "",
) -> Path:
    """Add (or replace) ``public`` in the allow-list for ``roles``; returns the file's path."""
    if home is None:
        from workstation.config import paths

        home = paths().home
    path = allow_list_path(home)
    roles = sorted(set(roles))
    if not roles or not set(roles) <= ALLOW_LIST_ROLES:
        raise TrustError(f"an allow-list may grant only {sorted(ALLOW_LIST_ROLES)}, not {roles}")
    _read_allow_list(path)  # refuse to extend a malformed or unsafe file
    doc = json.loads(path.read_bytes()) if path.exists() else {"keys": []}
    entry: dict[str, Any] = {"public": public.to_json(), "roles": roles, "note": note}
    if expires is not None:
        entry["expires"] = format_time(expires)
    keys = [k for k in doc["keys"] if k["public"].get("key_id") != public.key_id] + [entry]
    doc = {"format": ALLOW_LIST_FORMAT, "version": 1, "keys": keys}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path

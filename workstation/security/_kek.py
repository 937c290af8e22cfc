"""Where the key store's key-encryption key (KEK) comes from, and the file's ``kek`` entry.

Either a random 32-byte key kept in the OS keyring (service ``medical-workstation``, username
``keystore-<store id>``), when a real keyring backend exists, or a key derived from a
passphrase with Argon2id (:class:`Argon2Params`; salt and parameters in the ``kek`` entry).
A passphrase comes from the caller, else ``$WORKSTATION_PASSPHRASE``, else a prompt.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import secrets
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm

from workstation.security._keyfile import b64, unb64
from workstation.security.errors import KeyStoreError

KEYRING_SERVICE = "medical-workstation"
PASSPHRASE_ENV = "WORKSTATION_PASSPHRASE"
MIN_PASSPHRASE_LENGTH = 8

_KEK_BYTES = 32
# cryptography's Argon2id (OpenSSL) hangs when two threads derive at the same time; the GUI
# unlocks the key store from several workers at start-up (models, plugins, sync).
_DERIVE_LOCK = threading.Lock()
_SALT_BYTES = 16

Prompt = Callable[[], str]


@dataclass(frozen=True)
class Argon2Params:
    """Argon2id cost parameters (memory in KiB). The defaults are RFC 9106's second
    recommended option; tests pass tiny ones."""

    memory_kib: int = 64 * 1024
    iterations: int = 3
    lanes: int = 4

    def check(self) -> None:
        """Refuse parameters Argon2 rejects or that would exhaust the machine (a crafted file)."""
        if not (
            1 <= self.lanes <= 64
            and 1 <= self.iterations <= 64
            and 8 * self.lanes <= self.memory_kib <= 4 * 1024 * 1024
        ):
            raise KeyStoreError(f"unsupported Argon2id parameters {self}")

    def derive(self, passphrase: str, salt: bytes) -> bytes:
        """The 32-byte KEK for ``passphrase`` (NFC-normalised UTF-8) and ``salt``."""
        self.check()
        try:
            from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

            kdf = Argon2id(
                salt=salt,
                length=_KEK_BYTES,
                iterations=self.iterations,
                lanes=self.lanes,
                memory_cost=self.memory_kib,
            )
        except (ImportError, UnsupportedAlgorithm) as error:
            raise KeyStoreError(
                "Argon2id is not available in this cryptography build (needs cryptography >= 44 "
                "with OpenSSL >= 3.2)"
            ) from error
        with _DERIVE_LOCK:  # two Argon2id derivations at once in one process deadlock
            return kdf.derive(unicodedata.normalize("NFC", passphrase).encode("utf-8"))


def keyring_available() -> bool:
    """Whether a real OS keyring backend is configured (not the fail / null / empty chainer)."""
    try:
        import keyring
        from keyring.backends import chainer, fail, null
    except ImportError:
        return False
    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring | null.Keyring):
        return False
    return not (isinstance(backend, chainer.ChainerBackend) and not backend.backends)


def resolve_passphrase(supplied: str | None, prompt: Prompt | None) -> str:
    """``supplied``, else ``$WORKSTATION_PASSPHRASE``, else ``prompt()``; none is an error."""
    if supplied is None:
        supplied = os.environ.get(PASSPHRASE_ENV)
    if supplied is None and prompt is not None:
        supplied = prompt()
    if not supplied:
        raise KeyStoreError(
            f"the key store needs a passphrase: set {PASSPHRASE_ENV} or run in a terminal"
        )
    return supplied


# -- the kek entry ------------------------------------------------------------------------


def new_kek(
    store_id: str,
    supplied: str | None,
    *,
    use_keyring: bool,
    prompt: Prompt | None,
    kdf: Argon2Params | None,
) -> tuple[bytes, dict[str, Any]]:
    """A KEK for a new store and the ``kek`` entry saying where it comes from.

    A keyring KEK is random and not yet stored (:func:`keyring_set`, under the entry's
    ``username``); a passphrase KEK is derived from :func:`resolve_passphrase` with ``kdf``
    (default :class:`Argon2Params`) and a fresh salt.
    """
    if use_keyring:
        if not keyring_available():
            raise KeyStoreError("no OS keyring backend is available; use a passphrase")
        kek = secrets.token_bytes(_KEK_BYTES)
        return kek, {
            "source": "keyring",
            "service": KEYRING_SERVICE,
            "username": f"keystore-{store_id}",
        }
    secret = resolve_passphrase(supplied, prompt)
    if len(secret) < MIN_PASSPHRASE_LENGTH:
        raise KeyStoreError(f"the passphrase needs at least {MIN_PASSPHRASE_LENGTH} characters")
    params = kdf or Argon2Params()
    salt = secrets.token_bytes(_SALT_BYTES)
    kek = params.derive(secret, salt)
    return kek, {
        "source": "passphrase",
        "kdf": "argon2id",
        "salt": b64(salt),
        "memory_kib": params.memory_kib,
        "iterations": params.iterations,
        "lanes": params.lanes,
    }


def unlock_kek(
    kek_info: dict[str, Any], path: Path, *, passphrase: str | None, prompt: Prompt | None
) -> tuple[bytes, str]:
    """The KEK the ``kek`` entry of the store at ``path`` describes, and the message to give
    when it does not pass ``kek_check`` (wrong passphrase, or a keyring key that does not fit).

    Malformed entries raise ``KeyError`` / ``TypeError`` / ``ValueError`` or
    :class:`~workstation.security._keyfile.Corrupt`; the caller reports them as corruption.
    """
    source = kek_info["source"]
    if source == "passphrase":
        if kek_info["kdf"] != "argon2id":
            raise KeyStoreError(f"unsupported KDF {kek_info['kdf']!r} in {path}", path=path)
        params = Argon2Params(
            int(kek_info["memory_kib"]), int(kek_info["iterations"]), int(kek_info["lanes"])
        )
        params.check()
        salt = unb64(kek_info["salt"])
        secret = resolve_passphrase(passphrase, prompt)
        return params.derive(secret, salt), f"wrong passphrase for the key store at {path}"
    if source == "keyring":
        kek = _keyring_get(str(kek_info["username"]), path)
        return kek, f"the OS keyring's key does not unlock the key store at {path}"
    raise KeyStoreError(f"unknown key source {source!r} in {path}", path=path)


def old_keyring_username(path: Path) -> str | None:
    """The keyring entry of the store being replaced, if it used one."""
    try:
        kek = json.loads(path.read_bytes())["kek"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if isinstance(kek, dict) and kek.get("source") == "keyring":
        return str(kek.get("username"))
    return None


# -- the OS keyring -----------------------------------------------------------------------


def keyring_set(username: str, kek: bytes) -> None:
    """Store ``kek`` in the OS keyring under ``username``."""
    import keyring
    from keyring.errors import KeyringError

    try:
        keyring.set_password(KEYRING_SERVICE, username, b64(kek))
    except KeyringError as error:
        raise KeyStoreError(f"the OS keyring refused the key ({type(error).__name__})") from None


def _keyring_get(username: str, path: Path) -> bytes:
    if not keyring_available():
        raise KeyStoreError(
            f"the key store at {path} is unlocked by the OS keyring, which is not available here",
            path=path,
        )
    import keyring
    from keyring.errors import KeyringError

    try:
        value = keyring.get_password(KEYRING_SERVICE, username)
    except KeyringError as error:
        raise KeyStoreError(
            f"the OS keyring could not be read ({type(error).__name__})", path=path
        ) from None
    if value is None:
        raise KeyStoreError(
            f"the OS keyring has no key for the key store at {path} (entry {KEYRING_SERVICE}/"
            f"{username}); it was deleted, or this is another user or machine",
            path=path,
        )
    try:
        kek = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        kek = b""
    if len(kek) != _KEK_BYTES:
        raise KeyStoreError(f"the OS keyring's entry for {path} is malformed", path=path)
    return kek


def keyring_delete(username: str) -> None:
    """Remove the entry ``username``, best effort: the store it unlocked is gone (replaced, or
    never written), so its KEK protects nothing."""
    if not keyring_available():
        return
    import keyring
    from keyring.errors import KeyringError

    with contextlib.suppress(KeyringError):
        keyring.delete_password(KEYRING_SERVICE, username)

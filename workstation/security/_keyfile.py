"""The key store's file: its format, the wrapping of its secrets and the MAC over it, and how it
is read and written.

One JSON document, ``keystore.json``, in the keys folder (``paths().keys``; mode 0700, the
file 0600, written atomically). Public keys are in clear; every secret is *wrapped*:
AES-256-GCM under a key-encryption key (KEK) with a random 96-bit nonce and associated data
naming the file, the store and the item, so a wrapped item moved to another slot or another
store does not unwrap::

    {
      "format": "medical-workstation-keystore", "version": 1,
      "store_id": "<32 hex>", "created": "2025-01-01T00:00:00Z",
      "kek": {"source": "passphrase", "kdf": "argon2id", "salt": "<b64>",
              "memory_kib": 65536, "iterations": 3, "lanes": 4}
           | {"source": "keyring", "service": "medical-workstation", "username": "keystore-<id>"},
      "kek_check": "<b64 nonce+tag>",
      "signing":   {"public": {<HybridPublicKey.to_json()>}, "wrapped": "<b64>"},
      "recipient": {"public": {<RecipientPublicKey.to_json()>}, "wrapped": "<b64>"},
      "data_keys": {"current": 2, "wrapped": {"1": "<b64>", "2": "<b64>"}},
      "mac": {"alg": "hmac-sha256", "value": "<b64>"}
    }

The KEK is either a random 32-byte key kept in the OS keyring (service ``medical-workstation``,
username ``keystore-<store id>``) when a real keyring backend exists, or derived from a
passphrase with Argon2id (RFC 9106's second recommended setting by default: 64 MiB, 3 passes,
4 lanes; salt and parameters in the file); see :mod:`workstation.security._kek`. HKDF-SHA256
splits the KEK into a wrapping key and a MAC key (:func:`subkeys`). ``kek_check`` (an AES-GCM
tag over nothing) tells a wrong passphrase apart from a tampered file; ``mac`` (HMAC-SHA256
over the canonical JSON of everything else) authenticates the whole document, public keys and
the current data key version included.

Writers hold an exclusive ``flock`` on ``.keystore.lock`` in the folder (:func:`locked`).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from workstation.core import files
from workstation.security import aead
from workstation.security.errors import KeyStoreError

FILE_NAME = "keystore.json"
FORMAT = "medical-workstation-keystore"
FORMAT_VERSION = 1

_DOMAIN = b"medical-workstation/keystore/v1\x00"
_NONCE = 12
_INIT_HINT = "run `workstation keys init`"


class Corrupt(KeyStoreError):
    """Internal: an item of the file does not parse or unwrap (reported with the path)."""


def subkeys(kek: bytes) -> tuple[bytes, bytes]:
    """(wrapping key, MAC key) from the KEK, by HKDF-SHA256 with distinct labels."""

    def derive(label: bytes) -> bytes:
        return HKDF(hashes.SHA256(), 32, salt=None, info=_DOMAIN + label).derive(kek)

    return derive(b"wrap"), derive(b"mac")


# -- wrapped items ------------------------------------------------------------------------


def _aad(store_id: str, item: str) -> bytes:
    return _DOMAIN + FILE_NAME.encode() + b"\x00" + store_id.encode() + b"\x00" + item.encode()


def wrap(key: bytes, store_id: str, item: str, secret: bytes) -> bytes:
    """``secret`` encrypted under ``key``, bound to this store and the slot ``item``."""
    nonce = secrets.token_bytes(_NONCE)
    return nonce + AESGCM(key).encrypt(nonce, secret, _aad(store_id, item))


def unwrap(key: bytes, store_id: str, item: str, wrapped: bytes) -> bytes:
    """The secret of :func:`wrap`; :class:`Corrupt` when it does not authenticate."""
    try:
        return AESGCM(key).decrypt(wrapped[:_NONCE], wrapped[_NONCE:], _aad(store_id, item))
    except (InvalidTag, ValueError):
        raise Corrupt(f"the wrapped item {item!r} does not unwrap") from None


def wrap_ring(key: bytes, store_id: str, ring: aead.DataKeyRing) -> dict[str, Any]:
    """The ``data_keys`` entry for ``ring``."""
    return {
        "current": ring.current,
        "wrapped": {
            str(version): b64(wrap(key, store_id, f"data-key/{version}", ring.keys[version]))
            for version in sorted(ring.keys)
        },
    }


def unwrap_ring(key: bytes, store_id: str, value: dict[str, Any]) -> aead.DataKeyRing:
    """The data key ring of a ``data_keys`` entry."""
    keys = {
        int(version): unwrap(key, store_id, f"data-key/{int(version)}", unb64(wrapped))
        for version, wrapped in value["wrapped"].items()
    }
    current = int(value["current"])
    if current not in keys:
        raise Corrupt(f"the current data key version {current} is missing")
    return aead.DataKeyRing(keys=keys, current=current)


# -- the MAC ------------------------------------------------------------------------------


def _canonical(doc: dict[str, Any]) -> bytes:
    body = {key: value for key, value in doc.items() if key != "mac"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def mac(key: bytes, doc: dict[str, Any]) -> bytes:
    """HMAC-SHA256 over the canonical JSON of ``doc`` without its ``mac`` entry."""
    h = hmac.HMAC(key, hashes.SHA256())
    h.update(_canonical(doc))
    return h.finalize()


def verify_mac(key: bytes, doc: dict[str, Any], path: Path) -> None:
    """Raise :class:`KeyStoreError` unless ``doc``'s ``mac`` entry verifies under ``key``."""
    entry = doc.get("mac")
    if not isinstance(entry, dict) or entry.get("alg") != "hmac-sha256":
        raise KeyStoreError(f"the key store at {path} has no valid MAC", path=path)
    h = hmac.HMAC(key, hashes.SHA256())
    h.update(_canonical(doc))
    try:
        h.verify(unb64(entry["value"]))
    except InvalidSignature:
        raise KeyStoreError(
            f"the key store at {path} was modified or is corrupt (its MAC does not verify)",
            path=path,
        ) from None


# -- encoding -----------------------------------------------------------------------------


def b64(raw: bytes) -> str:
    """Standard base64 text."""
    return base64.b64encode(raw).decode("ascii")


def unb64(text: Any) -> bytes:
    """The bytes of base64 ``text``; :class:`Corrupt` when it is not valid base64."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise Corrupt("an item is not valid base64") from None


def dumps(doc: dict[str, Any]) -> bytes:
    """The file's bytes for ``doc``."""
    return (json.dumps(doc, indent=2) + "\n").encode()


# -- the file on disk ---------------------------------------------------------------------


def read(path: Path) -> dict[str, Any]:
    """The document at ``path``, checked for format and version (not yet authenticated)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise KeyStoreError(f"no key store at {path.parent}; {_INIT_HINT}", path=path) from None
    except OSError as error:
        raise KeyStoreError(
            f"cannot read the key store at {path}: {error.strerror}", path=path
        ) from None
    try:
        doc = json.loads(raw)
    except ValueError:
        raise KeyStoreError(f"the key store at {path} is not valid JSON", path=path) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise KeyStoreError(f"{path} is not a workstation key store", path=path)
    if doc.get("version") != FORMAT_VERSION:
        raise KeyStoreError(
            f"the key store at {path} has format version {doc.get('version')!r}; this "
            f"workstation reads version {FORMAT_VERSION}",
            path=path,
        )
    return doc


def ensure_folder(folder: Path) -> None:
    """Create ``folder`` if needed and make it 0700 (POSIX)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if os.name == "posix":
        os.chmod(folder, 0o700)


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """An exclusive advisory lock on the folder's lock file (POSIX; a no-op elsewhere)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    fd = os.open(folder / ".keystore.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a 0600 temporary file, fsync and rename."""
    files.write_atomic(path, data, prefix=".keystore-")

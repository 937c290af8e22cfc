"""The workstation's key store: its signing key, sealing key and data key ring, wrapped at rest.

One JSON document, ``keystore.json``, in the keys folder (``paths().keys``): public keys in
clear, every secret wrapped (AES-256-GCM) under a key-encryption key (KEK), the whole document
authenticated by an HMAC. The file format, the wrapping and the MAC are described and
implemented in :mod:`workstation.security._keyfile`; where the KEK comes from (the OS keyring,
or a passphrase through Argon2id) in :mod:`workstation.security._kek`.

Data key lifecycle: :meth:`KeyStore.rotate_data_key` adds a version and makes it current; old
versions stay, so old ciphertexts stay readable. The encrypted store re-wraps its ciphertexts
with :func:`rewrap_all`, then :meth:`KeyStore.destroy_data_key` removes the old version, which
it refuses while a :class:`CiphertextSource` it is given still holds ciphertexts under it.

Limits: a copy of an older file can be put back (no rollback protection without outside state);
Python cannot wipe secrets from memory; replacing the file does not shred old copies on disk.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from workstation.security import aead
from workstation.security._kek import (
    KEYRING_SERVICE,
    MIN_PASSPHRASE_LENGTH,
    PASSPHRASE_ENV,
    Argon2Params,
    Prompt,
    keyring_available,
    keyring_delete,
    keyring_set,
    new_kek,
    old_keyring_username,
    unlock_kek,
)
from workstation.security._keyfile import (
    FILE_NAME,
    FORMAT,
    FORMAT_VERSION,
    Corrupt,
    b64,
    dumps,
    ensure_folder,
    locked,
    mac,
    read,
    subkeys,
    unb64,
    unwrap,
    unwrap_ring,
    verify_mac,
    wrap,
    wrap_ring,
    write_atomic,
)
from workstation.security.errors import KeyStoreError, SecurityError
from workstation.security.seal import RecipientKey, RecipientPublicKey
from workstation.security.sign import HybridPublicKey, HybridSigningKey

__all__ = [
    "FILE_NAME",
    "FORMAT",
    "FORMAT_VERSION",
    "KEYRING_SERVICE",
    "MIN_PASSPHRASE_LENGTH",
    "PASSPHRASE_ENV",
    "Argon2Params",
    "CiphertextSource",
    "KeyStore",
    "Prompt",
    "default_folder",
    "exists",
    "keyring_available",
    "rewrap_all",
]


class CiphertextSource(Protocol):
    """Something holding data-key ciphertexts (the encrypted store): lists them so that a data
    key version is not destroyed while ciphertexts under it remain."""

    def blobs(self) -> Iterable[tuple[str, str, bytes]]:
        """Every ``(kind, record_id, blob)`` it holds."""
        ...


def default_folder() -> Path:
    """The keys folder of the current workstation home (``$WORKSTATION_HOME`` honoured)."""
    from workstation.config import paths

    return paths().keys


def exists(folder: Path) -> bool:
    """Whether ``folder`` holds a key store file (valid or not)."""
    return (Path(folder) / FILE_NAME).exists()


class KeyStore:
    """An unlocked key store. Obtain one with :meth:`create` or :meth:`open`."""

    def __init__(
        self,
        folder: Path,
        document: dict[str, Any],
        keys: tuple[bytes, bytes],
        signing: HybridSigningKey,
        recipient: RecipientKey,
        ring: aead.DataKeyRing,
    ) -> None:
        self._folder = folder
        self._doc = document
        self._wrap_key, self._mac_key = keys
        self._signing = signing
        self._recipient = recipient
        self._ring = ring

    def __repr__(self) -> str:
        return f"KeyStore({str(self.path)!r})"

    # -- creating and opening -------------------------------------------------------------

    @classmethod
    def create(
        cls,
        folder: Path,
        *,
        passphrase: str | None = None,
        use_keyring: bool | None = None,
        force: bool = False,
        prompt: Prompt | None = None,
        kdf: Argon2Params | None = None,
    ) -> KeyStore:
        """Generate the workstation's keys and write a new store in ``folder``.

        The KEK comes from the OS keyring when ``use_keyring`` is true, or when it is ``None``
        and no passphrase was supplied (argument or ``$WORKSTATION_PASSPHRASE``) and a real
        keyring backend exists; otherwise from a passphrase: ``passphrase``, else
        ``$WORKSTATION_PASSPHRASE``, else ``prompt()``.

        Raises
        ------
        KeyStoreError
            A store already exists and ``force`` is false (with ``force`` its keys, and all
            data under them, are destroyed); no passphrase / no keyring; passphrase too short.
        """
        folder = Path(folder)
        path = folder / FILE_NAME
        if path.exists() and not force:
            raise KeyStoreError(
                f"a key store already exists at {path}; `workstation keys init --force` "
                "destroys it and everything encrypted under its keys",
                path=path,
            )
        supplied = passphrase if passphrase is not None else os.environ.get(PASSPHRASE_ENV)
        if use_keyring is None:
            use_keyring = supplied is None and keyring_available()
        store_id = secrets.token_hex(16)
        kek, kek_info = new_kek(store_id, supplied, use_keyring=use_keyring, prompt=prompt, kdf=kdf)
        keys = subkeys(kek)
        signing = HybridSigningKey.generate()
        recipient = RecipientKey.generate()
        ring = aead.DataKeyRing.generate()
        doc: dict[str, Any] = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "store_id": store_id,
            "created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "kek": kek_info,
            "kek_check": b64(wrap(keys[0], store_id, "kek-check", b"")),
            "signing": {
                "public": signing.public_key.to_json(),
                "wrapped": b64(wrap(keys[0], store_id, "signing", signing.private_bytes())),
            },
            "recipient": {
                "public": recipient.public_key().to_json(),
                "wrapped": b64(wrap(keys[0], store_id, "recipient", recipient.private_bytes())),
            },
            "data_keys": wrap_ring(keys[0], store_id, ring),
        }
        doc["mac"] = {"alg": "hmac-sha256", "value": b64(mac(keys[1], doc))}
        ensure_folder(folder)
        with locked(folder):
            if path.exists() and not force:  # created meanwhile by another process
                raise KeyStoreError(f"a key store already exists at {path}", path=path)
            old_keyring_user = old_keyring_username(path) if force else None
            if use_keyring:
                keyring_set(kek_info["username"], kek)
            try:
                write_atomic(path, dumps(doc))
            except BaseException:
                if use_keyring:
                    keyring_delete(kek_info["username"])
                raise
        if old_keyring_user is not None:
            keyring_delete(old_keyring_user)
        return cls(folder, doc, keys, signing, recipient, ring)

    @classmethod
    def open(
        cls, folder: Path, *, passphrase: str | None = None, prompt: Prompt | None = None
    ) -> KeyStore:
        """Unlock the store in ``folder``, verifying the whole file.

        A passphrase store takes ``passphrase``, else ``$WORKSTATION_PASSPHRASE``, else
        ``prompt()``; a keyring store needs none.

        Raises
        ------
        KeyStoreError
            No store (run ``workstation keys init``), wrong passphrase, keyring entry missing,
            or the file is corrupt or was tampered with.
        """
        folder = Path(folder)
        path = folder / FILE_NAME
        doc = read(path)
        try:
            store_id = str(doc["store_id"])
            kek, wrong = unlock_kek(doc["kek"], path, passphrase=passphrase, prompt=prompt)
            keys = subkeys(kek)
            check = unb64(doc["kek_check"])
            try:
                unwrap(keys[0], store_id, "kek-check", check)
            except Corrupt:
                raise KeyStoreError(wrong, path=path) from None
            verify_mac(keys[1], doc, path)
            signing_raw = unwrap(keys[0], store_id, "signing", unb64(doc["signing"]["wrapped"]))
            recipient_raw = unwrap(
                keys[0], store_id, "recipient", unb64(doc["recipient"]["wrapped"])
            )
            signing = HybridSigningKey.from_private_bytes(signing_raw)
            recipient = RecipientKey.from_private_bytes(recipient_raw)
            ring = unwrap_ring(keys[0], store_id, doc["data_keys"])
            if signing.public_key != HybridPublicKey.from_json(doc["signing"]["public"]):
                raise Corrupt("the signing key does not match its public key")
            if recipient.key_id != RecipientPublicKey.from_json(doc["recipient"]["public"]).key_id:
                raise Corrupt("the recipient key does not match its public key")
        except Corrupt as error:
            raise KeyStoreError(
                f"the key store at {path} is corrupt or was tampered with: {error}", path=path
            ) from None
        except KeyStoreError:
            raise
        except (SecurityError, KeyError, TypeError, ValueError, AttributeError) as error:
            raise KeyStoreError(
                f"the key store at {path} is corrupt ({type(error).__name__})", path=path
            ) from None
        return cls(folder, doc, keys, signing, recipient, ring)

    # -- the keys -------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The key store file."""
        return self._folder / FILE_NAME

    def signing_key(self) -> HybridSigningKey:
        """The workstation's hybrid signing key."""
        return self._signing

    def recipient_key(self) -> RecipientKey:
        """The workstation's sealing (recipient) key."""
        return self._recipient

    def data_keys(self) -> aead.DataKeyRing:
        """The data key ring (every kept version; ``current`` encrypts)."""
        return self._ring

    def rotate_data_key(self) -> int:
        """Add a new data key version, make it current, persist; returns the new version.

        Older versions are kept, so existing ciphertexts stay readable until re-wrapped.
        """
        ring = self._ring.rotated()
        self._save_ring(ring)
        return ring.current

    def destroy_data_key(self, version: int, *, sources: Iterable[CiphertextSource] = ()) -> None:
        """Remove data key ``version`` for good (after :func:`rewrap_all`).

        Raises
        ------
        KeyStoreError
            ``version`` is current or unknown, or one of ``sources`` still holds ciphertexts
            under it.
        """
        if version == self._ring.current:
            raise KeyStoreError(
                f"data key version {version} is current; rotate first, re-wrap, then destroy it"
            )
        if version not in self._ring.keys:
            raise KeyStoreError(f"there is no data key version {version}")
        remaining = sum(
            1
            for source in sources
            for _kind, _record, blob in source.blobs()
            if aead.key_version(blob) == version
        )
        if remaining:
            raise KeyStoreError(
                f"{remaining} ciphertext(s) are still under data key version {version}; "
                "re-wrap them before destroying it"
            )
        self._save_ring(self._ring.without(version))

    def public_info(self) -> dict[str, Any]:
        """What may be shown: fingerprints, data key version numbers, KEK source, dates."""
        kek = self._doc["kek"]
        if kek["source"] == "passphrase":
            kek_public = {
                "source": "passphrase",
                "kdf": kek["kdf"],
                "memory_kib": kek["memory_kib"],
                "iterations": kek["iterations"],
                "lanes": kek["lanes"],
            }
        else:
            kek_public = {"source": "keyring", "service": kek["service"]}
        return {
            "path": str(self.path),
            "format_version": self._doc["version"],
            "store_id": self._doc["store_id"],
            "created": self._doc["created"],
            "kek": kek_public,
            "signing_key": {
                "key_id": self._signing.key_id,
                "alg": self._doc["signing"]["public"]["alg"],
            },
            "recipient_key": {"key_id": self._recipient.key_id},
            "data_keys": {"versions": sorted(self._ring.keys), "current": self._ring.current},
        }

    # -- persistence ----------------------------------------------------------------------

    def _save_ring(self, ring: aead.DataKeyRing) -> None:
        doc = {key: value for key, value in self._doc.items() if key != "mac"}
        doc["data_keys"] = wrap_ring(self._wrap_key, doc["store_id"], ring)
        doc["mac"] = {"alg": "hmac-sha256", "value": b64(mac(self._mac_key, doc))}
        with locked(self._folder):
            try:
                on_disk = json.loads(self.path.read_bytes())["mac"]
            except (OSError, ValueError, KeyError, TypeError):
                on_disk = None
            if on_disk != self._doc["mac"]:
                raise KeyStoreError(
                    f"the key store at {self.path} changed since it was opened (another process "
                    "rotated or re-created it); open it again",
                    path=self.path,
                )
            write_atomic(self.path, dumps(doc))
        self._doc = doc
        self._ring = ring


def rewrap_all(
    store: KeyStore, blobs: Iterable[tuple[str, str, bytes]]
) -> Iterator[tuple[str, str, bytes]]:
    """Re-encrypt each ``(kind, record_id, blob)`` under the current data key version.

    Lazy (the caller writes each result back as it comes). A blob already under the current
    version is authenticated and passed through unchanged (:func:`aead.rewrap`), so the pass
    also proves every record decrypts, and an interrupted job can simply run again.
    ``DecryptionError`` for a blob that does not decrypt.
    """
    ring = store.data_keys()
    for kind, record_id, blob in blobs:
        yield kind, record_id, aead.rewrap(ring, blob, kind=kind, record_id=record_id)

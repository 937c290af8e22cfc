"""Record encryption at rest: AES-256-GCM under versioned data keys, bound to the record.

A :class:`DataKeyRing` holds numbered 32-byte data keys; the newest (``current``) encrypts, every
version still in the ring decrypts. Each ciphertext is bound to *what* it is (``kind``, e.g.
``"annotation"``) and *which* record it is (``record_id``), so a blob copied onto another record,
another kind, or relabelled with another key version fails to decrypt.

Wire format, version 1 (all integers unsigned big endian)::

    offset  size  field
    0       4     magic b"MWA1" (format version 1)
    4       4     key version (uint32, >= 1)
    8       12    nonce (random per message)
    20      n+16  AES-256-GCM ciphertext of the n-byte plaintext, then the 16-byte tag

Associated data (authenticated, not stored): the canonical encoding of (format version, kind,
record id, key version), each text field length-prefixed so ``("ab", "c")`` and ``("a", "bc")``
differ::

    b"MWA1" || uint32(len(kind)) || kind || uint32(len(record_id)) || record_id
            || uint32(key version)                         (kind, record_id: UTF-8)

A random 96-bit nonce per message keeps the collision probability negligible well beyond the
number of records one key will ever encrypt (NIST SP 800-38D allows 2**32 per key); rotate the
ring (:meth:`DataKeyRing.rotated`) long before that, and :func:`rewrap` old records.

Serialised key ring (:meth:`DataKeyRing.private_bytes`, to be wrapped by the key store)::

    b"MWK1" || uint32(current) || uint32(count) || count * (uint32(version) || 32-byte key)
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from workstation.security.errors import DecryptionError

MAGIC = b"MWA1"
KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
HEADER_SIZE = len(MAGIC) + 4 + NONCE_SIZE  # 20
_MAX_VERSION = 2**32 - 1
_RING_MAGIC = b"MWK1"
_U32 = struct.Struct(">I")

# Below this size concatenating ``header + ciphertext`` is cheaper than the zero-copy path.
_ZERO_COPY_MIN = 1 << 16


@dataclass(frozen=True)
class DataKeyRing:
    """Versions of 32-byte data keys; ``current`` encrypts, every version present decrypts.

    Immutable: :meth:`rotated` and :meth:`without` return new rings. The ``repr`` lists the
    versions only, never key bytes.

    Parameters
    ----------
    keys
        Version (1 ... 2**32-1) to 32-byte key.
    current
        The version new ciphertexts use; must be in ``keys``.
    """

    keys: Mapping[int, bytes] = field(repr=False)
    current: int
    _ciphers: Mapping[int, AESGCM] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        keys: dict[int, bytes] = {}
        for version, key in self.keys.items():
            if not isinstance(version, int) or not 1 <= version <= _MAX_VERSION:
                raise ValueError("key versions are integers from 1 to 2**32-1")
            if not isinstance(key, bytes | bytearray) or len(key) != KEY_SIZE:
                raise ValueError(f"data key version {version} is not {KEY_SIZE} bytes")
            keys[version] = bytes(key)
        if self.current not in keys:
            raise ValueError(f"current key version {self.current} is not in the key ring")
        object.__setattr__(self, "keys", MappingProxyType(keys))
        object.__setattr__(
            self, "_ciphers", MappingProxyType({v: AESGCM(k) for v, k in keys.items()})
        )

    def __repr__(self) -> str:
        return f"DataKeyRing(versions={list(self.versions)}, current={self.current})"

    @property
    def versions(self) -> tuple[int, ...]:
        """The versions in the ring, ascending."""
        return tuple(sorted(self.keys))

    @classmethod
    def generate(cls) -> DataKeyRing:
        """A new ring with one random key, version 1."""
        return cls({1: AESGCM.generate_key(bit_length=256)}, 1)

    def rotated(self) -> DataKeyRing:
        """A ring with a new random key (version ``max + 1``, i.e. ``current + 1`` normally)
        that becomes current; older versions stay for decryption until :meth:`without`."""
        version = max(self.keys) + 1
        if version > _MAX_VERSION:
            raise ValueError("the key ring has run out of versions")
        keys = dict(self.keys)
        keys[version] = AESGCM.generate_key(bit_length=256)
        return DataKeyRing(keys, version)

    def without(self, version: int) -> DataKeyRing:
        """A ring with ``version`` destroyed: records still under it no longer decrypt.

        Raises ``ValueError`` for the current version (rotate first) or an absent one.
        """
        if version == self.current:
            raise ValueError(f"key version {version} is current; rotate before destroying it")
        if version not in self.keys:
            raise ValueError(f"key version {version} is not in the key ring")
        return DataKeyRing({v: k for v, k in self.keys.items() if v != version}, self.current)

    def private_bytes(self) -> bytes:
        """The whole ring serialised (layout in the module docstring): wrap before storing."""
        parts = [_RING_MAGIC, _U32.pack(self.current), _U32.pack(len(self.keys))]
        for version in self.versions:
            parts += [_U32.pack(version), self.keys[version]]
        return b"".join(parts)

    @classmethod
    def from_private_bytes(cls, raw: bytes) -> DataKeyRing:
        """Inverse of :meth:`private_bytes`; ``ValueError`` if malformed."""
        raw = bytes(raw)
        if len(raw) < 12 or raw[:4] != _RING_MAGIC:
            raise ValueError("not a serialised data key ring")
        current, count = _U32.unpack_from(raw, 4)[0], _U32.unpack_from(raw, 8)[0]
        entry = 4 + KEY_SIZE
        if len(raw) != 12 + count * entry:
            raise ValueError("serialised data key ring has the wrong length")
        keys: dict[int, bytes] = {}
        for offset in range(12, len(raw), entry):
            version = _U32.unpack_from(raw, offset)[0]
            if version in keys:
                raise ValueError(f"key version {version} appears twice")
            keys[version] = raw[offset + 4 : offset + entry]
        return cls(keys, current)

    def _cipher(self, version: int) -> AESGCM:
        try:
            return self._ciphers[version]
        except KeyError:
            raise DecryptionError(
                f"key version {version} is not in the key ring (destroyed?)"
            ) from None


def _text(name: str, value: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    return value.encode()


def associated_data(kind: str, record_id: str, version: int) -> bytes:
    """The canonical associated data binding a ciphertext to its context (see module doc)."""
    k, r = _text("kind", kind), _text("record_id", record_id)
    return b"".join((MAGIC, _U32.pack(len(k)), k, _U32.pack(len(r)), r, _U32.pack(version)))


def _encrypt_after(
    prefix: bytes, cipher: AESGCM, nonce: bytes, plaintext: bytes, aad: bytes
) -> bytes:
    """``prefix + AES-GCM(plaintext)`` as one ``bytes``, the ciphertext written only once.

    Large inputs are encrypted straight into a ``BytesIO`` buffer (``encrypt_into``); CPython's
    ``BytesIO.getvalue()`` then hands that buffer over without copying. Correctness does not
    depend on that: elsewhere ``getvalue()`` copies, which is merely slower.
    """
    size = memoryview(plaintext).nbytes
    if size < _ZERO_COPY_MIN:
        return prefix + cipher.encrypt(nonce, plaintext, aad)
    out = io.BytesIO()
    out.seek(len(prefix) + size + TAG_SIZE - 1)
    out.write(b"\0")
    with out.getbuffer() as view, view[len(prefix) :] as body:
        view[: len(prefix)] = prefix
        cipher.encrypt_into(nonce, plaintext, aad, body)
    return out.getvalue()


def encrypt(ring: DataKeyRing, plaintext: bytes, *, kind: str, record_id: str) -> bytes:
    """Encrypt ``plaintext`` (any bytes-like) under ``ring.current``, bound to kind and record.

    Parameters
    ----------
    ring
        The data keys; the current version encrypts.
    plaintext
        The record's bytes (up to 2**31 - 1).
    kind, record_id
        Non-empty strings naming what the record is and which one; the same values are needed
        to decrypt.

    Returns
    -------
    bytes
        The blob in the wire format of the module docstring (20 + n + 16 bytes).
    """
    version = ring.current
    aad = associated_data(kind, record_id, version)
    nonce = os.urandom(NONCE_SIZE)
    prefix = MAGIC + _U32.pack(version) + nonce
    return _encrypt_after(prefix, ring._cipher(version), nonce, plaintext, aad)


def _parse(blob: bytes) -> tuple[int, memoryview]:
    view = memoryview(blob)
    if view.nbytes < HEADER_SIZE + TAG_SIZE:
        raise DecryptionError("not an encrypted record: too short (truncated?)")
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    if view[:4] != MAGIC:
        raise DecryptionError("not an encrypted record (unknown format)")
    return _U32.unpack_from(view, 4)[0], view


def key_version(blob: bytes) -> int:
    """The data key version a blob is encrypted under (``DecryptionError`` if not a blob)."""
    return _parse(blob)[0]


def decrypt(ring: DataKeyRing, blob: bytes, *, kind: str, record_id: str) -> bytes:
    """Decrypt a blob made by :func:`encrypt` for the same ``kind`` and ``record_id``.

    Raises
    ------
    DecryptionError
        Malformed blob, key version not in the ring (named), or authentication failure: wrong
        key, wrong record or kind, relabelled version, or tampered bytes (indistinguishable).
    """
    version, view = _parse(blob)
    cipher = ring._cipher(version)
    aad = associated_data(kind, record_id, version)
    try:
        return cipher.decrypt(view[8:HEADER_SIZE], view[HEADER_SIZE:], aad)
    except InvalidTag:
        raise DecryptionError(
            f"cannot decrypt the {kind!r} record: its context does not match "
            "(wrong key, wrong record or tampered)"
        ) from None


def rewrap(ring: DataKeyRing, blob: bytes, *, kind: str, record_id: str) -> bytes:
    """Re-encrypt a blob under ``ring.current`` (fresh nonce), for key rotation.

    A blob already under the current version is authenticated and returned unchanged, so a
    rewrap pass also proves every record decrypts before old versions are destroyed.
    ``DecryptionError`` as for :func:`decrypt`.
    """
    plaintext = decrypt(ring, blob, kind=kind, record_id=record_id)
    if key_version(blob) == ring.current:
        return bytes(blob)
    return encrypt(ring, plaintext, kind=kind, record_id=record_id)

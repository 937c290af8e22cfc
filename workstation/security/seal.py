"""Sealing to public keys: hybrid post-quantum HPKE (RFC 9180), one message, many recipients.

Recipients hold X-Wing style hybrid keys, HPKE KEM ``MLKEM768-X25519`` (id 0x647a: ML-KEM-768,
FIPS 203, combined with X25519), used in the suite (KEM 0x647a, KDF HKDF-SHA256, AEAD
AES-256-GCM), base mode. The payload is encrypted once with AES-256-GCM under a random 32-byte
content key; the content key is HPKE-sealed to each recipient. Breaking a message needs both
ML-KEM-768 and X25519 broken.

Keys
----
A recipient private key is a 32-byte seed, expanded as in X-Wing /
draft-ietf-hpke-pq: ``SHAKE256(seed, 96) = d || z || x`` where ``d || z`` (64 bytes) is the
ML-KEM-768 key-generation seed and ``x`` (32 bytes) the X25519 private key. The public key
(``RecipientPublicKey.raw``, 1216 bytes) is ``ML-KEM-768 public key (1184) || X25519 public key
(32)``, the KEM's own encoding. Key id: ``sha256(b"mws-hpke-recipient-v1" + raw)[:16].hex()``.

Wire format, version 1 (integers unsigned big endian)::

    offset  size      field
    0       4         magic b"MWS1"
    4       2         n: recipient count (1 ... 65535)
    6       n * 1186  recipient entries, each:
                        16    key id (raw bytes of the 32-hex-char id); ids are distinct
                        2     length of the sealed content key: 1168 in version 1
                        1168  HPKE single-shot output: enc (1120) || AES-256-GCM(content key) (48)
    H       12        payload nonce              (H = 6 + n * 1186; bytes [0, H) are the header)
    H + 12  m + 16    payload: AES-256-GCM ciphertext of the m-byte plaintext, then the tag

Bindings:

* HPKE ``info`` for every recipient = ``b"mws-seal-v1/key\\0" || uint16(len(purpose)) ||
  purpose || SHA-256(b"MWS1" || uint16(n) || all n key ids in order || payload nonce)``. The
  sealed entries cannot be part of that digest (they are its output), so it covers the recipient
  list instead; the payload AAD below then covers the entries themselves.
* Payload AAD = ``b"mws-seal-v1/payload\\0" || uint16(len(purpose)) || purpose || header`` (the
  whole header: count, every key id, every sealed key).

So adding, removing, reordering or swapping a recipient entry, changing the purpose, or
flipping any byte makes opening fail. Nonce reuse is not a concern: each content key is fresh
and encrypts exactly one payload.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from workstation.security.aead import _encrypt_after
from workstation.security.errors import DecryptionError, SecurityError

ALGORITHM = "hpke-mlkem768-x25519"
MAGIC = b"MWS1"
SUITE = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)

SEED_SIZE = 32
MLKEM768_PUBLIC_SIZE = 1184
X25519_PUBLIC_SIZE = 32
PUBLIC_SIZE = MLKEM768_PUBLIC_SIZE + X25519_PUBLIC_SIZE  # 1216
KEY_ID_SIZE = 16
CONTENT_KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
SEALED_KEY_SIZE = hpke.KEM.MLKEM768_X25519.enc_length() + CONTENT_KEY_SIZE + TAG_SIZE  # 1168
ENTRY_SIZE = KEY_ID_SIZE + 2 + SEALED_KEY_SIZE
MAX_RECIPIENTS = 2**16 - 1
MAX_PURPOSE_BYTES = 1024

_KEY_ID_DOMAIN = b"mws-hpke-recipient-v1"
_INFO_DOMAIN = b"mws-seal-v1/key\x00"
_AAD_DOMAIN = b"mws-seal-v1/payload\x00"
_U16 = struct.Struct(">H")


def _key_id(raw: bytes) -> str:
    return hashlib.sha256(_KEY_ID_DOMAIN + raw).digest()[:KEY_ID_SIZE].hex()


@dataclass(frozen=True)
class RecipientPublicKey:
    """The public half of a recipient key: what senders seal to.

    Parameters
    ----------
    raw
        ML-KEM-768 public key (1184 bytes) || X25519 public key (32 bytes); ``ValueError`` if it
        is not a valid key.
    """

    raw: bytes
    _hpke: hpke.MLKEM768X25519PublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.raw, bytes | bytearray) or len(self.raw) != PUBLIC_SIZE:
            raise ValueError(f"a recipient public key is {PUBLIC_SIZE} bytes")
        raw = bytes(self.raw)
        key = hpke.MLKEM768X25519PublicKey(
            mlkem.MLKEM768PublicKey.from_public_bytes(raw[:MLKEM768_PUBLIC_SIZE]),
            x25519.X25519PublicKey.from_public_bytes(raw[MLKEM768_PUBLIC_SIZE:]),
        )
        object.__setattr__(self, "raw", raw)
        object.__setattr__(self, "_hpke", key)

    @property
    def key_id(self) -> str:
        """32 hex characters identifying this key (see module docstring)."""
        return _key_id(self.raw)

    def to_json(self) -> dict[str, str]:
        """A JSON-ready dictionary: algorithm, key id and the base64 raw key."""
        return {
            "alg": ALGORITHM,
            "key_id": self.key_id,
            "public": base64.b64encode(self.raw).decode(),
        }

    @classmethod
    def from_json(cls, value: Any) -> RecipientPublicKey:
        """Parse :meth:`to_json` output, checking the key id if present.

        Raises :class:`SecurityError` if malformed or if the key id does not match.
        """
        try:
            if value["alg"] != ALGORITHM:
                raise SecurityError(f"unsupported recipient key algorithm {value['alg']!r}")
            key = cls(base64.b64decode(value["public"], validate=True))
        except (KeyError, TypeError, ValueError) as error:
            raise SecurityError(f"malformed recipient public key: {error}") from error
        if "key_id" in value and value["key_id"] != key.key_id:
            raise SecurityError("recipient public key does not match its key id")
        return key


class RecipientKey:
    """A recipient's private key (hybrid ML-KEM-768 + X25519), from a 32-byte seed.

    Never serialised in the clear here: the key store wraps :meth:`private_bytes`.
    """

    def __init__(self, seed: bytes) -> None:
        if not isinstance(seed, bytes | bytearray) or len(seed) != SEED_SIZE:
            raise ValueError(f"a recipient key seed is {SEED_SIZE} bytes")
        self._seed = bytes(seed)
        digest = hashes.Hash(hashes.SHAKE256(digest_size=96))
        digest.update(self._seed)
        expanded = digest.finalize()
        ml = mlkem.MLKEM768PrivateKey.from_seed_bytes(expanded[:64])
        xk = x25519.X25519PrivateKey.from_private_bytes(expanded[64:])
        self._hpke = hpke.MLKEM768X25519PrivateKey(ml, xk)
        self._public = RecipientPublicKey(
            ml.public_key().public_bytes_raw() + xk.public_key().public_bytes_raw()
        )

    def __repr__(self) -> str:
        return f"RecipientKey(key_id={self.key_id!r})"

    @classmethod
    def generate(cls) -> RecipientKey:
        """A new random key."""
        return cls(os.urandom(SEED_SIZE))

    def public_key(self) -> RecipientPublicKey:
        """The public half, to give to senders."""
        return self._public

    @property
    def key_id(self) -> str:
        """The key id of :meth:`public_key`."""
        return self._public.key_id

    def private_bytes(self) -> bytes:
        """The 32-byte seed (layout in the module docstring): wrap before storing."""
        return self._seed

    @classmethod
    def from_private_bytes(cls, raw: bytes) -> RecipientKey:
        """Inverse of :meth:`private_bytes`."""
        return cls(raw)


def _purpose(purpose: str) -> bytes:
    if not isinstance(purpose, str) or not purpose:
        raise ValueError("a sealing purpose is a non-empty string")
    data = purpose.encode()
    if len(data) > MAX_PURPOSE_BYTES:
        raise ValueError(f"a sealing purpose is at most {MAX_PURPOSE_BYTES} bytes (UTF-8)")
    return _U16.pack(len(data)) + data


def _info(purpose: bytes, ids: Sequence[bytes], nonce: bytes) -> bytes:
    listing = hashlib.sha256(MAGIC + _U16.pack(len(ids)) + b"".join(ids) + nonce).digest()
    return _INFO_DOMAIN + purpose + listing


def seal(plaintext: bytes, recipients: Sequence[RecipientPublicKey], *, purpose: str) -> bytes:
    """Encrypt ``plaintext`` so that each of ``recipients`` (and nobody else) can open it.

    Parameters
    ----------
    plaintext
        Any bytes-like payload.
    recipients
        1 to 65535 distinct public keys; the order is kept in the header.
    purpose
        What the message is for (e.g. ``"report-share"``); opening needs the same string.

    Returns
    -------
    bytes
        The message in the wire format of the module docstring.
    """
    label = _purpose(purpose)
    recipients = list(recipients)
    if not recipients:
        raise ValueError("seal needs at least one recipient")
    if len(recipients) > MAX_RECIPIENTS:
        raise ValueError(f"seal takes at most {MAX_RECIPIENTS} recipients")
    if not all(isinstance(r, RecipientPublicKey) for r in recipients):
        raise TypeError("recipients must be RecipientPublicKey objects")
    ids = [bytes.fromhex(r.key_id) for r in recipients]
    if len(set(ids)) != len(ids):
        raise ValueError("the same recipient is listed twice")

    content_key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(NONCE_SIZE)
    info = _info(label, ids, nonce)
    parts = [MAGIC, _U16.pack(len(recipients))]
    for key_id, recipient in zip(ids, recipients, strict=True):
        sealed = SUITE.encrypt(content_key, recipient._hpke, info=info)
        if len(sealed) != SEALED_KEY_SIZE:  # pragma: no cover - guards the format constant
            raise AssertionError("unexpected HPKE output length")
        parts += [key_id, _U16.pack(len(sealed)), sealed]
    header = b"".join(parts)
    aad = _AAD_DOMAIN + label + header
    return _encrypt_after(header + nonce, AESGCM(content_key), nonce, plaintext, aad)


@dataclass(frozen=True)
class _Parsed:
    ids: list[bytes]
    sealed: list[bytes]
    header: bytes
    nonce: bytes
    payload: memoryview


def _parse(blob: bytes) -> _Parsed:
    view = memoryview(blob)
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    size = view.nbytes
    if size < 6 or view[:4] != MAGIC:
        raise DecryptionError("not a sealed message (unknown format)")
    count = _U16.unpack_from(view, 4)[0]
    if count == 0:
        raise DecryptionError("malformed sealed message: no recipients")
    header_size = 6 + count * ENTRY_SIZE
    if size < header_size + NONCE_SIZE + TAG_SIZE:
        raise DecryptionError("malformed sealed message: truncated")
    ids: list[bytes] = []
    sealed: list[bytes] = []
    for offset in range(6, header_size, ENTRY_SIZE):
        length = _U16.unpack_from(view, offset + KEY_ID_SIZE)[0]
        if length != SEALED_KEY_SIZE:
            raise DecryptionError("malformed sealed message: unsupported recipient entry")
        ids.append(bytes(view[offset : offset + KEY_ID_SIZE]))
        start = offset + KEY_ID_SIZE + 2
        sealed.append(bytes(view[start : start + SEALED_KEY_SIZE]))
    if len(set(ids)) != len(ids):
        raise DecryptionError("malformed sealed message: a recipient is listed twice")
    return _Parsed(
        ids=ids,
        sealed=sealed,
        header=bytes(view[:header_size]),
        nonce=bytes(view[header_size : header_size + NONCE_SIZE]),
        payload=view[header_size + NONCE_SIZE :],
    )


def recipients_of(blob: bytes) -> list[str]:
    """The key ids the message is sealed to, in header order (``DecryptionError`` if malformed).

    The list is not authenticated until the message is opened.
    """
    return [key_id.hex() for key_id in _parse(blob).ids]


def open_sealed(blob: bytes, recipient: RecipientKey, *, purpose: str) -> bytes:
    """Decrypt a message made by :func:`seal` with one recipient's private key.

    Raises
    ------
    DecryptionError
        Malformed message, not sealed to this key, wrong purpose, or tampered (the last two
        cannot be told apart).
    """
    label = _purpose(purpose)
    message = _parse(blob)
    key_id = recipient.key_id
    try:
        index = message.ids.index(bytes.fromhex(key_id))
    except ValueError:
        raise DecryptionError(f"this message is not sealed to key {key_id}") from None
    info = _info(label, message.ids, message.nonce)
    try:
        content_key = SUITE.decrypt(message.sealed[index], recipient._hpke, info=info)
    except (InvalidTag, ValueError):
        raise DecryptionError(
            f"cannot open the message with key {key_id}: wrong purpose or tampered"
        ) from None
    if len(content_key) != CONTENT_KEY_SIZE:
        raise DecryptionError("malformed sealed message: bad content key")
    aad = _AAD_DOMAIN + label + message.header
    try:
        return AESGCM(content_key).decrypt(message.nonce, message.payload, aad)
    except InvalidTag:
        raise DecryptionError(
            "cannot open the message: its header or payload was tampered with (or wrong purpose)"
        ) from None

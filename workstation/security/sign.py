"""Hybrid signatures: Ed25519 + ML-DSA-65 (FIPS 204). A signature verifies only if both do.

Both halves sign the same domain-separated message: ``b"medical-workstation/sig/v1\\0" +
context + b"\\0" + data`` (ML-DSA additionally gets ``context`` as its FIPS 204 context string).
The ``context`` names what is signed (``"bundle-manifest"``, ``"trust-root"``, ...), so a
signature made for one purpose never verifies for another.

Keys are identified by their fingerprint: the first 16 bytes (hex) of SHA-256 over
``b"mws-hybrid-sig-v1" + ed25519_public + mldsa65_public``.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa

from workstation.security.errors import SignatureError

ALGORITHM = "ed25519+ml-dsa-65"
_DOMAIN = b"medical-workstation/sig/v1\x00"


def _message(context: str, data: bytes) -> bytes:
    if not context or "\x00" in context:
        raise ValueError("a signature context is a non-empty string without NUL")
    return _DOMAIN + context.encode() + b"\x00" + data


def fingerprint(ed25519_public: bytes, mldsa_public: bytes) -> str:
    """The key id of a hybrid public key (32 hex characters)."""
    digest = hashlib.sha256(b"mws-hybrid-sig-v1" + ed25519_public + mldsa_public).digest()
    return digest[:16].hex()


def _pair_json(key_id: str, ed25519_half: bytes, mldsa_half: bytes) -> dict[str, str]:
    """The JSON shape shared by signatures and public keys: both halves in base64."""
    return {
        "alg": ALGORITHM,
        "key_id": key_id,
        "ed25519": base64.b64encode(ed25519_half).decode(),
        "ml_dsa_65": base64.b64encode(mldsa_half).decode(),
    }


@dataclass(frozen=True)
class HybridSignature:
    """One hybrid signature: both halves and the id of the key that made them."""

    key_id: str
    ed25519: bytes
    ml_dsa_65: bytes

    def to_json(self) -> dict[str, str]:
        """A JSON-ready dictionary (base64 halves)."""
        return _pair_json(self.key_id, self.ed25519, self.ml_dsa_65)

    @classmethod
    def from_json(cls, value: Any) -> HybridSignature:
        """Parse :meth:`to_json` output; malformed input raises :class:`SignatureError`."""
        try:
            if value["alg"] != ALGORITHM:
                raise SignatureError(f"unsupported signature algorithm {value['alg']!r}")
            return cls(
                key_id=str(value["key_id"]),
                ed25519=base64.b64decode(value["ed25519"], validate=True),
                ml_dsa_65=base64.b64decode(value["ml_dsa_65"], validate=True),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise SignatureError(f"malformed signature: {error}") from error


@dataclass(frozen=True)
class HybridPublicKey:
    """The verifying half of a hybrid signing key."""

    ed25519: bytes  # 32 bytes raw
    ml_dsa_65: bytes  # 1952 bytes raw

    @property
    def key_id(self) -> str:
        """The fingerprint identifying this key."""
        return fingerprint(self.ed25519, self.ml_dsa_65)

    def verify(self, signature: HybridSignature, data: bytes, *, context: str) -> None:
        """Raise :class:`SignatureError` unless both halves verify over ``data``."""
        if signature.key_id != self.key_id:
            raise SignatureError(
                f"signature is by key {signature.key_id}, not {self.key_id}", uid=signature.key_id
            )
        message = _message(context, data)
        try:
            ed25519.Ed25519PublicKey.from_public_bytes(self.ed25519).verify(
                signature.ed25519, message
            )
        except (InvalidSignature, ValueError) as error:
            raise SignatureError("the Ed25519 half of the signature does not verify") from error
        try:
            mldsa.MLDSA65PublicKey.from_public_bytes(self.ml_dsa_65).verify(
                signature.ml_dsa_65, message, context.encode()
            )
        except (InvalidSignature, ValueError) as error:
            raise SignatureError("the ML-DSA-65 half of the signature does not verify") from error

    def to_json(self) -> dict[str, str]:
        """A JSON-ready dictionary (base64 raw public keys and the key id)."""
        return _pair_json(self.key_id, self.ed25519, self.ml_dsa_65)

    @classmethod
    def from_json(cls, value: Any) -> HybridPublicKey:
        """Parse :meth:`to_json` output, checking the key id if present."""
        try:
            key = cls(
                ed25519=base64.b64decode(value["ed25519"], validate=True),
                ml_dsa_65=base64.b64decode(value["ml_dsa_65"], validate=True),
            )
            ed25519.Ed25519PublicKey.from_public_bytes(key.ed25519)
            mldsa.MLDSA65PublicKey.from_public_bytes(key.ml_dsa_65)
        except (KeyError, TypeError, ValueError) as error:
            raise SignatureError(f"malformed public key: {error}") from error
        if "key_id" in value and value["key_id"] != key.key_id:
            raise SignatureError("public key does not match its key id")
        return key


class HybridSigningKey:
    """A hybrid private signing key (Ed25519 + ML-DSA-65). Never serialised in the clear here;
    the key store wraps :meth:`private_bytes`."""

    def __init__(self, ed25519_seed: bytes, mldsa_seed: bytes) -> None:
        self._ed = ed25519.Ed25519PrivateKey.from_private_bytes(ed25519_seed)
        self._ml = mldsa.MLDSA65PrivateKey.from_seed_bytes(mldsa_seed)
        self.public_key = HybridPublicKey(
            self._ed.public_key().public_bytes_raw(), self._ml.public_key().public_bytes_raw()
        )

    @classmethod
    def generate(cls) -> HybridSigningKey:
        """A new random key."""
        ed = ed25519.Ed25519PrivateKey.generate()
        ml = mldsa.MLDSA65PrivateKey.generate()
        return cls(ed.private_bytes_raw(), ml.private_bytes_raw())

    @property
    def key_id(self) -> str:
        """The fingerprint of the public key."""
        return self.public_key.key_id

    def private_bytes(self) -> bytes:
        """The two 32-byte seeds, concatenated (64 bytes): wrap before storing."""
        return self._ed.private_bytes_raw() + self._ml.private_bytes_raw()

    @classmethod
    def from_private_bytes(cls, raw: bytes) -> HybridSigningKey:
        """Inverse of :meth:`private_bytes`."""
        if len(raw) != 64:
            raise ValueError("a hybrid signing key is 64 bytes (two seeds)")
        return cls(raw[:32], raw[32:])

    def sign(self, data: bytes, *, context: str) -> HybridSignature:
        """Sign ``data`` for ``context`` with both algorithms."""
        message = _message(context, data)
        return HybridSignature(
            key_id=self.key_id,
            ed25519=self._ed.sign(message),
            ml_dsa_65=self._ml.sign(message, context.encode()),
        )

"""Hybrid Ed25519 + ML-DSA-65 signatures: RFC 8032 and FIPS 204 known answers, round trips,
either half refused, context and key binding, JSON forms and malformed input."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519, mldsa
from hypothesis import given, settings
from hypothesis import strategies as st

from workstation.security.errors import SignatureError
from workstation.security.sign import (
    ALGORITHM,
    HybridPublicKey,
    HybridSignature,
    HybridSigningKey,
    fingerprint,
)

MLDSA65_SIGNATURE_SIZE = 3309

# RFC 8032 section 7.1, TEST 1 (empty message).
RFC8032_TEST1 = {
    "secret": "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    "public": "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    "signature": "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
    "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
}


# -- known answers -----------------------------------------------------------------------------
def _vectors_file(*parts: str) -> Path:
    vectors = pytest.importorskip("cryptography_vectors", reason="pip install cryptography_vectors")
    return Path(vectors.__file__).parent.joinpath(*parts)


def _rsp(path: Path) -> Iterator[dict[str, str]]:
    """``key = value`` blocks of a KAT ``.rsp`` file (each block starts at ``count``)."""
    entry: dict[str, str] = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if not sep:
            continue
        if name.strip() == "count" and entry:
            yield entry
            entry = {}
        entry[name.strip()] = value.strip()
    if entry:
        yield entry


def test_ed25519_rfc8032_test1() -> None:
    key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(RFC8032_TEST1["secret"]))
    assert key.public_key().public_bytes_raw().hex() == RFC8032_TEST1["public"]
    assert key.sign(b"").hex() == RFC8032_TEST1["signature"]


def test_ed25519_reference_vectors() -> None:
    """The reference implementation's sign.input (its first lines are RFC 8032 TESTs 1-3)."""
    lines = _vectors_file("asymmetric", "Ed25519", "sign.input").read_text().splitlines()
    assert lines[0].split(":")[1] == RFC8032_TEST1["public"]
    for line in lines[::4]:  # every 4th of 1024 keeps this well under a second
        secret, public, message, signed, _ = line.split(":")
        seed, message = bytes.fromhex(secret[:64]), bytes.fromhex(message)
        signature = bytes.fromhex(signed)[:64]
        key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
        assert key.public_key().public_bytes_raw() == bytes.fromhex(public)
        assert key.sign(message) == signature  # Ed25519 is deterministic
        key.public_key().verify(signature, message)


def _mldsa65_entries() -> list[dict[str, str]]:
    return list(_rsp(_vectors_file("asymmetric", "MLDSA", "kat_MLDSA_65_det_pure.rsp")))


def test_mldsa65_fips204_vectors() -> None:
    """Key generation from the 32-byte seed ``xi`` and verification of the KAT signatures
    (pure ML-DSA with a context string). cryptography signs hedged, so signatures are checked
    by verification, not equality."""
    entries = _mldsa65_entries()
    assert len(entries) == 100
    for e in entries:
        key = mldsa.MLDSA65PrivateKey.from_seed_bytes(bytes.fromhex(e["xi"]))
        public = key.public_key()
        assert public.public_bytes_raw() == bytes.fromhex(e["pk"]), e["count"]
        message, context = bytes.fromhex(e["msg"]), bytes.fromhex(e["ctx"])
        signed = bytes.fromhex(e["sm"])
        signature = signed[:MLDSA65_SIGNATURE_SIZE]
        assert signed[MLDSA65_SIGNATURE_SIZE:] == message
        public.verify(signature, message, context)
        with pytest.raises(InvalidSignature):
            public.verify(signature, message + b"\x00", context)
        with pytest.raises(InvalidSignature):
            public.verify(signature, message, context + b"\x00")


def test_hybrid_key_from_known_seeds() -> None:
    """Our key class with RFC 8032 and FIPS 204 seeds yields both standard public keys."""
    e = _mldsa65_entries()[0]
    key = HybridSigningKey(bytes.fromhex(RFC8032_TEST1["secret"]), bytes.fromhex(e["xi"]))
    assert key.public_key.ed25519.hex() == RFC8032_TEST1["public"]
    assert key.public_key.ml_dsa_65 == bytes.fromhex(e["pk"])
    digest = hashlib.sha256(b"mws-hybrid-sig-v1" + key.public_key.ed25519 + bytes.fromhex(e["pk"]))
    assert key.key_id == digest.digest()[:16].hex()
    assert key.private_bytes() == bytes.fromhex(RFC8032_TEST1["secret"] + e["xi"])


# -- round trips -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def key() -> HybridSigningKey:
    return HybridSigningKey.generate()


@pytest.fixture(scope="module")
def other() -> HybridSigningKey:
    return HybridSigningKey.generate()


def test_round_trip(key: HybridSigningKey) -> None:
    for data in (b"", b"manifest", bytes(range(256)) * 100):
        signature = key.sign(data, context="bundle-manifest")
        assert signature.key_id == key.key_id
        assert len(signature.ed25519) == 64
        assert len(signature.ml_dsa_65) == MLDSA65_SIGNATURE_SIZE
        key.public_key.verify(signature, data, context="bundle-manifest")


def test_private_bytes_round_trip(key: HybridSigningKey) -> None:
    raw = key.private_bytes()
    assert len(raw) == 64
    again = HybridSigningKey.from_private_bytes(raw)
    assert again.public_key == key.public_key and again.key_id == key.key_id
    key.public_key.verify(again.sign(b"d", context="c"), b"d", context="c")
    with pytest.raises(ValueError):
        HybridSigningKey.from_private_bytes(raw[:-1])


def test_key_id_is_the_fingerprint(key: HybridSigningKey) -> None:
    public = key.public_key
    assert key.key_id == public.key_id == fingerprint(public.ed25519, public.ml_dsa_65)
    assert len(key.key_id) == 32 and int(key.key_id, 16) >= 0


# -- refusals ----------------------------------------------------------------------------------
def _flip(data: bytes, position: int, mask: int = 1) -> bytes:
    out = bytearray(data)
    out[position] ^= mask
    return bytes(out)


def test_either_half_flipped_is_refused_naming_the_half(key: HybridSigningKey) -> None:
    signature = key.sign(b"data", context="trust-root")
    bad_ed = replace(signature, ed25519=_flip(signature.ed25519, 10))
    bad_ml = replace(signature, ml_dsa_65=_flip(signature.ml_dsa_65, 1000))
    with pytest.raises(SignatureError, match="Ed25519 half"):
        key.public_key.verify(bad_ed, b"data", context="trust-root")
    with pytest.raises(SignatureError, match="ML-DSA-65 half"):
        key.public_key.verify(bad_ml, b"data", context="trust-root")
    # Halves from two different signatures of the same key do not combine either.
    second = key.sign(b"other", context="trust-root")
    mixed = replace(signature, ml_dsa_65=second.ml_dsa_65)
    with pytest.raises(SignatureError, match="ML-DSA-65 half"):
        key.public_key.verify(mixed, b"data", context="trust-root")


def test_truncated_halves_are_refused(key: HybridSigningKey) -> None:
    signature = key.sign(b"data", context="c")
    for bad in (
        replace(signature, ed25519=signature.ed25519[:-1]),
        replace(signature, ed25519=b""),
        replace(signature, ml_dsa_65=signature.ml_dsa_65[:-1]),
        replace(signature, ml_dsa_65=signature.ml_dsa_65 + b"\x00"),
    ):
        with pytest.raises(SignatureError):
            key.public_key.verify(bad, b"data", context="c")


def test_wrong_context_or_data_is_refused(key: HybridSigningKey) -> None:
    signature = key.sign(b"data", context="bundle-manifest")
    for context in ("trust-root", "bundle-manifes", "bundle-manifest2"):
        with pytest.raises(SignatureError):
            key.public_key.verify(signature, b"data", context=context)
    with pytest.raises(SignatureError):
        key.public_key.verify(signature, b"datA", context="bundle-manifest")
    # Context and data are separated: ("ab", "c") is not ("a", "bc").
    split = key.sign(b"c", context="ab")
    with pytest.raises(SignatureError):
        key.public_key.verify(split, b"bc", context="a")


def test_invalid_context_is_a_programming_error(key: HybridSigningKey) -> None:
    for context in ("", "a\x00b"):
        with pytest.raises(ValueError):
            key.sign(b"data", context=context)


def test_wrong_key_is_refused(key: HybridSigningKey, other: HybridSigningKey) -> None:
    signature = key.sign(b"data", context="c")
    with pytest.raises(SignatureError, match=f"by key {key.key_id}, not {other.key_id}"):
        other.public_key.verify(signature, b"data", context="c")
    # Relabelling the signature with the other key's id does not help.
    relabelled = replace(signature, key_id=other.key_id)
    with pytest.raises(SignatureError, match="half"):
        other.public_key.verify(relabelled, b"data", context="c")


_SIGNER = HybridSigningKey.generate()
_SIGNATURE = _SIGNER.sign(b"release 1.2.0", context="bundle-manifest")


@settings(max_examples=60, deadline=None)
@given(
    half=st.sampled_from(["ed25519", "ml_dsa_65"]),
    data=st.data(),
    mask=st.integers(1, 255),
)
def test_any_flip_in_either_half_is_refused(half: str, data: st.DataObject, mask: int) -> None:
    value = getattr(_SIGNATURE, half)
    position = data.draw(st.integers(0, len(value) - 1), label="position")
    tampered = replace(_SIGNATURE, **{half: _flip(value, position, mask)})
    name = "Ed25519" if half == "ed25519" else "ML-DSA-65"
    with pytest.raises(SignatureError, match=f"{name} half"):
        _SIGNER.public_key.verify(tampered, b"release 1.2.0", context="bundle-manifest")


# -- JSON --------------------------------------------------------------------------------------
def test_signature_json_round_trip(key: HybridSigningKey) -> None:
    signature = key.sign(b"data", context="c")
    doc = json.loads(json.dumps(signature.to_json()))
    assert doc["alg"] == ALGORITHM and doc["key_id"] == key.key_id
    parsed = HybridSignature.from_json(doc)
    assert parsed == signature
    key.public_key.verify(parsed, b"data", context="c")


def test_public_key_json_round_trip(key: HybridSigningKey) -> None:
    doc = json.loads(json.dumps(key.public_key.to_json()))
    assert doc["key_id"] == key.key_id
    assert HybridPublicKey.from_json(doc) == key.public_key
    del doc["key_id"]
    assert HybridPublicKey.from_json(doc) == key.public_key


def test_public_key_json_with_wrong_key_id(key: HybridSigningKey, other: HybridSigningKey) -> None:
    doc = key.public_key.to_json()
    doc["key_id"] = other.key_id
    with pytest.raises(SignatureError, match="does not match its key id"):
        HybridPublicKey.from_json(doc)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(alg="rsa-pss"),
        lambda d: d.pop("alg"),
        lambda d: d.pop("ed25519"),
        lambda d: d.pop("ml_dsa_65"),
        lambda d: d.update(ed25519="not base64!"),
        lambda d: d.update(ml_dsa_65=12),
        lambda d: d.update(ed25519=None),
    ],
)
def test_malformed_signature_json(key: HybridSigningKey, mutate: Any) -> None:
    doc = key.sign(b"data", context="c").to_json()
    mutate(doc)
    with pytest.raises(SignatureError):
        HybridSignature.from_json(doc)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.pop("ed25519"),
        lambda d: d.update(ed25519=_b64(b"\x01" * 31)),
        lambda d: d.update(ml_dsa_65=_b64(b"\x01" * 100)),
        lambda d: d.update(ml_dsa_65="***"),
        lambda d: d.update(ed25519=[]),
    ],
)
def test_malformed_public_key_json(key: HybridSigningKey, mutate: Any) -> None:
    doc = key.public_key.to_json()
    mutate(doc)
    with pytest.raises(SignatureError):
        HybridPublicKey.from_json(doc)


_SCALARS = st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.floats()
_FIELD_VALUES = _SCALARS | st.just(ALGORITHM) | st.just(_b64(b"x" * 32)) | st.lists(_SCALARS)
_DOCS = st.dictionaries(
    st.sampled_from(["alg", "key_id", "ed25519", "ml_dsa_65"]), _FIELD_VALUES, max_size=4
)


@settings(max_examples=150, deadline=None)
@given(value=_DOCS | _SCALARS | st.lists(_SCALARS, max_size=3))
def test_json_junk_raises_only_signature_error(value: Any) -> None:
    with pytest.raises(SignatureError):
        HybridPublicKey.from_json(value)
    try:
        signature = HybridSignature.from_json(value)
    except SignatureError:
        return
    # Structurally valid junk must still fail verification, with SignatureError only.
    with pytest.raises(SignatureError):
        _SIGNER.public_key.verify(signature, b"release 1.2.0", context="bundle-manifest")

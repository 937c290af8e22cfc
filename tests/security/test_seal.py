"""Hybrid HPKE sealing: RFC 9180 / draft-ietf-hpke-pq and FIPS 203 known answers, round trips,
several recipients, header binding, tampering and junk input."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.bindings._rust import openssl as rust_openssl
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import ec, mlkem, x25519
from hypothesis import given, settings
from hypothesis import strategies as st

from workstation.security import seal as sealing
from workstation.security.errors import DecryptionError, SecurityError
from workstation.security.seal import (
    RecipientKey,
    RecipientPublicKey,
    open_sealed,
    recipients_of,
    seal,
)


# -- known answers -----------------------------------------------------------------------------
def _vectors_file(*parts: str) -> Path:
    vectors = pytest.importorskip("cryptography_vectors", reason="pip install cryptography_vectors")
    return Path(vectors.__file__).parent.joinpath(*parts)


def _rsp(path: Path, limit: int) -> Iterator[dict[str, str]]:
    """The first ``limit`` ``key = value`` blocks of a KAT ``.rsp`` file (blocks start at
    ``count``)."""
    entry: dict[str, str] = {}
    with path.open() as lines:
        for line in lines:
            name, sep, value = line.partition("=")
            if not sep:
                continue
            name = name.strip()
            if name == "count" and entry:
                yield entry
                limit -= 1
                if limit == 0:
                    return
                entry = {}
            entry[name] = value.strip()
    if entry:
        yield entry


def test_mlkem768_fips203_vectors() -> None:
    """ML-KEM-768 key generation from (d, z), decapsulation, and implicit rejection."""
    entries = list(_rsp(_vectors_file("asymmetric", "MLKEM", "kat_MLKEM_768.rsp"), 25))
    assert len(entries) == 25
    for e in entries:
        key = mlkem.MLKEM768PrivateKey.from_seed_bytes(bytes.fromhex(e["d"] + e["z"]))
        assert key.public_key().public_bytes_raw() == bytes.fromhex(e["pk"]), e["count"]
        assert key.decapsulate(bytes.fromhex(e["ct"])) == bytes.fromhex(e["ss"])
        assert key.decapsulate(bytes.fromhex(e["ct_n"])) == bytes.fromhex(e["ss_n"])


_KEMS = {
    0x0010: hpke.KEM.P256,
    0x0011: hpke.KEM.P384,
    0x0012: hpke.KEM.P521,
    0x0020: hpke.KEM.X25519,
    0x0041: hpke.KEM.MLKEM768,
    0x0042: hpke.KEM.MLKEM1024,
    0x647A: hpke.KEM.MLKEM768_X25519,
}
_KDFS = {
    0x0001: hpke.KDF.HKDF_SHA256,
    0x0002: hpke.KDF.HKDF_SHA384,
    0x0003: hpke.KDF.HKDF_SHA512,
    0x0010: hpke.KDF.SHAKE128,
    0x0011: hpke.KDF.SHAKE256,
}
_AEADS = {0x0001: hpke.AEAD.AES_128_GCM, 0x0002: hpke.AEAD.AES_256_GCM}
_AEADS[0x0003] = hpke.AEAD.CHACHA20_POLY1305
_CURVES = {0x0010: ec.SECP256R1(), 0x0011: ec.SECP384R1(), 0x0012: ec.SECP521R1()}


def _hpke_private_key(kem_id: int, sk: bytes) -> Any:
    if kem_id == 0x0020:
        return x25519.X25519PrivateKey.from_private_bytes(sk)
    if kem_id in _CURVES:
        return ec.derive_private_key(int.from_bytes(sk, "big"), _CURVES[kem_id])
    if kem_id == 0x0041:
        return mlkem.MLKEM768PrivateKey.from_seed_bytes(sk)
    if kem_id == 0x0042:
        return mlkem.MLKEM1024PrivateKey.from_seed_bytes(sk)
    return RecipientKey.from_private_bytes(sk)._hpke  # 0x647a: our own key derivation


def _hpke_vectors() -> list[dict[str, Any]]:
    rfc = json.loads(_vectors_file("HPKE", "test-vectors.json").read_text())
    pq = json.loads(_vectors_file("HPKE", "hpke-pq-test-vectors.json").read_text())
    return [
        v
        for v in rfc + pq
        if v["mode"] == 0
        and v["kem_id"] in _KEMS
        and v["kdf_id"] in _KDFS
        and v["aead_id"] in _AEADS
    ]


def test_hpke_rfc9180_and_pq_vectors() -> None:
    """Base-mode vectors of RFC 9180 and draft-ietf-hpke-pq for every suite cryptography
    supports, ours (KEM 0x647a, X-Wing) included; 0x647a keys come from our seed expansion."""
    decrypt_with_aad = getattr(rust_openssl.hpke, "_decrypt_with_aad", None)
    if decrypt_with_aad is None:
        pytest.skip("this cryptography build has no HPKE decrypt with AAD")
    vectors = _hpke_vectors()
    suites = {(v["kem_id"], v["kdf_id"], v["aead_id"]) for v in vectors}
    assert any(s[0] == 0x647A for s in suites) and any(s[2] == 0x0002 for s in suites)
    assert len(vectors) >= 20
    for v in vectors:
        suite = hpke.Suite(_KEMS[v["kem_id"]], _KDFS[v["kdf_id"]], _AEADS[v["aead_id"]])
        key = _hpke_private_key(v["kem_id"], bytes.fromhex(v["skRm"]))
        first = v["encryptions"][0]  # the single-shot API is sequence number 0
        plaintext = decrypt_with_aad(
            suite,
            bytes.fromhex(v["enc"] + first["ct"]),
            key,
            info=bytes.fromhex(v["info"]),
            aad=bytes.fromhex(first["aad"]),
        )
        assert plaintext == bytes.fromhex(first["pt"]), (v["kem_id"], v["kdf_id"], v["aead_id"])


def test_recipient_key_derivation_matches_xwing_vectors() -> None:
    """Our 32-byte seed -> public key is the KEM's DeriveKeyPair/X-Wing expansion."""
    pq = json.loads(_vectors_file("HPKE", "hpke-pq-test-vectors.json").read_text())
    xwing = [v for v in pq if v["kem_id"] == 0x647A]
    assert xwing
    for v in xwing:
        key = RecipientKey.from_private_bytes(bytes.fromhex(v["skRm"]))
        assert key.public_key().raw == bytes.fromhex(v["pkRm"])
        assert len(v["enc"]) // 2 == hpke.KEM.MLKEM768_X25519.enc_length()


# -- keys --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def keys() -> list[RecipientKey]:
    return [RecipientKey.generate() for _ in range(4)]


def test_key_ids_and_private_bytes(keys: list[RecipientKey]) -> None:
    key = keys[0]
    public = key.public_key()
    assert len(public.raw) == 1216
    expected = hashlib.sha256(b"mws-hpke-recipient-v1" + public.raw).digest()[:16].hex()
    assert key.key_id == public.key_id == expected
    raw = key.private_bytes()
    assert len(raw) == 32
    again = RecipientKey.from_private_bytes(raw)
    assert again.public_key() == public and again.key_id == key.key_id
    assert raw.hex() not in repr(key) and key.key_id in repr(key)
    assert len({k.key_id for k in keys}) == len(keys)
    for bad in (b"", bytes(31), bytes(33)):
        with pytest.raises(ValueError):
            RecipientKey.from_private_bytes(bad)


def test_public_key_json(keys: list[RecipientKey]) -> None:
    public = keys[1].public_key()
    doc = json.loads(json.dumps(public.to_json()))
    assert doc["key_id"] == public.key_id
    assert RecipientPublicKey.from_json(doc) == public
    del doc["key_id"]
    assert RecipientPublicKey.from_json(doc) == public


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.update(alg="rsa"),
        lambda d: d.update(key_id="0" * 32),
        lambda d: d.update(public="not base64!"),
        lambda d: d.update(public=d["public"][:-8]),
        lambda d: d.update(public=12),
        lambda d: d.pop("public"),
        lambda d: d.pop("alg"),
    ],
)
def test_public_key_json_malformed(keys: list[RecipientKey], mutate: Any) -> None:
    doc = keys[1].public_key().to_json()
    mutate(doc)
    with pytest.raises(SecurityError):
        RecipientPublicKey.from_json(doc)


_JSON_SCALARS = (
    st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.binary(max_size=8)
)
_KEY_DOCS = st.dictionaries(
    st.sampled_from(["alg", "key_id", "public"]),
    _JSON_SCALARS | st.just(sealing.ALGORITHM) | st.lists(_JSON_SCALARS, max_size=3),
)


@settings(max_examples=100, deadline=None)
@given(value=_KEY_DOCS | _JSON_SCALARS | st.lists(_JSON_SCALARS, max_size=3))
def test_public_key_json_junk(value: Any) -> None:
    with pytest.raises(SecurityError):
        RecipientPublicKey.from_json(value)


def test_public_key_validation() -> None:
    with pytest.raises(ValueError):
        RecipientPublicKey(b"\x00" * 100)
    with pytest.raises(ValueError):
        RecipientPublicKey("ab" * 608)  # type: ignore[arg-type]


# -- round trips -------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [0, 1, 1024, 70_000])
def test_round_trip(keys: list[RecipientKey], size: int) -> None:
    plaintext = os.urandom(size)
    blob = seal(plaintext, [keys[0].public_key()], purpose="report-share")
    assert type(blob) is bytes
    assert len(blob) == 6 + sealing.ENTRY_SIZE + 12 + size + 16
    assert open_sealed(blob, keys[0], purpose="report-share") == plaintext


def test_wire_format_is_as_documented(keys: list[RecipientKey]) -> None:
    ids = [k.key_id for k in keys[:2]]
    blob = seal(b"hello", [k.public_key() for k in keys[:2]], purpose="p")
    assert blob[:4] == b"MWS1" and struct.unpack(">H", blob[4:6]) == (2,)
    for i, key_id in enumerate(ids):
        entry = blob[6 + i * 1186 : 6 + (i + 1) * 1186]
        assert entry[:16].hex() == key_id and struct.unpack(">H", entry[16:18]) == (1168,)
    assert recipients_of(blob) == ids
    assert len(blob) == 6 + 2 * 1186 + 12 + 5 + 16


def test_three_recipients_open_and_a_fourth_cannot(keys: list[RecipientKey]) -> None:
    blob = seal(b"shared findings", [k.public_key() for k in keys[:3]], purpose="share")
    for key in keys[:3]:
        assert open_sealed(blob, key, purpose="share") == b"shared findings"
    with pytest.raises(DecryptionError, match=f"not sealed to key {keys[3].key_id}"):
        open_sealed(blob, keys[3], purpose="share")


def test_wrong_purpose_is_refused(keys: list[RecipientKey]) -> None:
    blob = seal(b"x", [keys[0].public_key()], purpose="report-share")
    for purpose in ("report-shar", "Report-share", "backup"):
        with pytest.raises(DecryptionError, match="wrong purpose or tampered"):
            open_sealed(blob, keys[0], purpose=purpose)


def test_each_message_is_fresh(keys: list[RecipientKey]) -> None:
    a = seal(b"x", [keys[0].public_key()], purpose="p")
    b = seal(b"x", [keys[0].public_key()], purpose="p")
    assert a != b and a[6:22] == b[6:22]  # same key id, different everything else


def test_seal_argument_checks(keys: list[RecipientKey]) -> None:
    public = keys[0].public_key()
    with pytest.raises(ValueError, match="at least one"):
        seal(b"x", [], purpose="p")
    with pytest.raises(ValueError, match="twice"):
        seal(b"x", [public, keys[1].public_key(), public], purpose="p")
    with pytest.raises(ValueError):
        seal(b"x", [public], purpose="")
    with pytest.raises(ValueError):
        seal(b"x", [public], purpose="p" * 2000)
    with pytest.raises(TypeError):
        seal(b"x", [public.raw], purpose="p")  # type: ignore[list-item]


# -- header binding ----------------------------------------------------------------------------
def _entries(blob: bytes) -> tuple[list[bytes], bytes]:
    count = struct.unpack(">H", blob[4:6])[0]
    size = sealing.ENTRY_SIZE
    entries = [blob[6 + i * size : 6 + (i + 1) * size] for i in range(count)]
    return entries, blob[6 + count * size :]


def _assemble(entries: list[bytes], rest: bytes) -> bytes:
    return b"MWS1" + struct.pack(">H", len(entries)) + b"".join(entries) + rest


def test_removed_or_reordered_entries_are_refused(keys: list[RecipientKey]) -> None:
    blob = seal(b"payload", [k.public_key() for k in keys[:3]], purpose="p")
    entries, rest = _entries(blob)
    removed = _assemble([entries[0], entries[2]], rest)
    reordered = _assemble([entries[1], entries[0], entries[2]], rest)
    for candidate in (removed, reordered):
        for key in (keys[0], keys[2]):
            with pytest.raises(DecryptionError):
                open_sealed(candidate, key, purpose="p")


def test_added_or_swapped_entries_are_refused(keys: list[RecipientKey]) -> None:
    publics = [k.public_key() for k in keys]
    blob = seal(b"payload", publics[:2], purpose="p")
    other = seal(b"other", [publics[3], publics[0]], purpose="p")
    entries, rest = _entries(blob)
    other_entries, _ = _entries(other)
    added = _assemble([*entries, other_entries[0]], rest)  # smuggle recipient 3 in
    for key in (keys[0], keys[1], keys[3]):
        with pytest.raises(DecryptionError):
            open_sealed(added, key, purpose="p")
    # Swap in recipient 0's entry from another message: the content key differs, and the
    # header binding refuses it even if that were not so.
    swapped = _assemble([other_entries[1], entries[1]], rest)
    for key in (keys[0], keys[1]):
        with pytest.raises(DecryptionError):
            open_sealed(swapped, key, purpose="p")


# -- tampering and junk ------------------------------------------------------------------------
_KEYS = [RecipientKey.generate() for _ in range(2)]
_BLOB = seal(os.urandom(200), [k.public_key() for k in _KEYS], purpose="fuzz")


def _opens(blob: bytes) -> None:
    """Every outcome other than DecryptionError fails the test (IndexError, struct.error...)."""
    for key in _KEYS:
        with pytest.raises(DecryptionError):
            open_sealed(blob, key, purpose="fuzz")


@settings(max_examples=250, deadline=None)
@given(data=st.data())
def test_any_single_byte_flip_is_refused(data: st.DataObject) -> None:
    # Half the draws anywhere, half in the short non-key parts (magic, count, ids, lengths).
    size = len(_BLOB)
    position = data.draw(
        st.integers(0, size - 1) | st.sampled_from([*range(24), *range(1192, 1210), size - 1]),
        label="position",
    )
    mask = data.draw(st.integers(1, 255), label="mask")
    tampered = bytearray(_BLOB)
    tampered[position] ^= mask
    _opens(bytes(tampered))


@settings(max_examples=100, deadline=None)
@given(cut=st.integers(0, len(_BLOB) - 1))
def test_truncation_is_refused(cut: int) -> None:
    _opens(_BLOB[:cut])
    if cut < 6 + 2 * sealing.ENTRY_SIZE + 28:
        with pytest.raises(DecryptionError):
            recipients_of(_BLOB[:cut])


_HEADERISH = st.builds(
    lambda count, body: b"MWS1" + struct.pack(">H", count) + body,
    st.integers(0, 65535) | st.sampled_from([0, 1, 2, 65535]),
    st.binary(max_size=3000),
)


@settings(max_examples=150, deadline=None)
@given(junk=st.binary(max_size=64) | _HEADERISH)
def test_junk_raises_only_decryption_error(junk: bytes) -> None:
    _opens(junk)
    try:
        ids = recipients_of(junk)
    except DecryptionError:
        return
    assert all(len(i) == 32 for i in ids)


@settings(max_examples=60, deadline=None)
@given(
    count=st.integers(0, 65535),
    length=st.integers(0, 65535),
    cut=st.integers(0, 2 * sealing.ENTRY_SIZE + 40),
)
def test_structural_fields_are_validated(count: int, length: int, cut: int) -> None:
    entries, rest = _entries(_BLOB)
    mangled = bytearray(_assemble(entries, rest))
    mangled[4:6] = struct.pack(">H", count)
    mangled[22:24] = struct.pack(">H", length)
    candidate = bytes(mangled[: len(mangled) - cut])
    if count == 2 and length == sealing.SEALED_KEY_SIZE and cut == 0:
        assert open_sealed(candidate, _KEYS[0], purpose="fuzz")
        return
    _opens(candidate)

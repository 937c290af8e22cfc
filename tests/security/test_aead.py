"""AES-256-GCM record envelope: NIST known answers for the primitive, round trips, context
binding, tamper detection, key ring rotation / rewrap / destruction."""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from workstation.security import aead
from workstation.security.aead import DataKeyRing, decrypt, encrypt, key_version, rewrap
from workstation.security.errors import DecryptionError


# -- known answers (NIST CAVP GCM vectors, shipped in cryptography_vectors) ---------------------
def _vectors_file(*parts: str) -> Path:
    vectors = pytest.importorskip("cryptography_vectors", reason="pip install cryptography_vectors")
    return Path(vectors.__file__).parent.joinpath(*parts)


def _rsp(path: Path) -> Iterator[dict[str, str]]:
    """Entries of a CAVP ``.rsp`` file, each with the ``[Name = value]`` section fields merged."""
    section: dict[str, str] = {}
    entry: dict[str, str] = {}
    for line in [*path.read_text().splitlines(), ""]:
        line = line.strip()
        if line.startswith("["):
            name, _, value = line.strip("[]").partition("=")
            section[name.strip()] = value.strip()
        elif "=" in line:
            name, _, value = line.partition("=")
            entry[name.strip()] = value.strip()
        elif line == "FAIL":
            entry["FAIL"] = "1"
        elif not line and entry:
            yield section | entry
            entry = {}


def _gcm_entries(name: str) -> list[dict[str, str]]:
    """The 256-bit key, 96-bit IV, 128-bit tag entries: the parameters this module uses."""
    path = _vectors_file("ciphers", "AES", "GCM", name)
    return [
        e
        for e in _rsp(path)
        if e["Keylen"] == "256" and e["IVlen"] == "96" and e["Taglen"] == "128"
    ]


def test_aes_gcm_nist_encrypt_vectors() -> None:
    entries = _gcm_entries("gcmEncryptExtIV256.rsp")
    assert len(entries) >= 100
    for e in entries:
        key, iv = bytes.fromhex(e["Key"]), bytes.fromhex(e["IV"])
        pt, aad = bytes.fromhex(e["PT"]), bytes.fromhex(e["AAD"])
        expected = bytes.fromhex(e["CT"]) + bytes.fromhex(e["Tag"])
        assert AESGCM(key).encrypt(iv, pt, aad) == expected, f"count {e['Count']}"
        assert AESGCM(key).decrypt(iv, expected, aad) == pt


def test_aes_gcm_nist_decrypt_vectors_including_failures() -> None:
    entries = _gcm_entries("gcmDecrypt256.rsp")
    failures = [e for e in entries if "FAIL" in e]
    assert len(entries) >= 100 and failures
    for e in entries:
        key, iv = bytes.fromhex(e["Key"]), bytes.fromhex(e["IV"])
        data = bytes.fromhex(e["CT"]) + bytes.fromhex(e["Tag"])
        aad = bytes.fromhex(e["AAD"])
        if "FAIL" in e:
            with pytest.raises(InvalidTag):
                AESGCM(key).decrypt(iv, data, aad)
        else:
            assert AESGCM(key).decrypt(iv, data, aad) == bytes.fromhex(e["PT"])


# -- round trips and the wire format -----------------------------------------------------------
@pytest.fixture(scope="module")
def ring() -> DataKeyRing:
    return DataKeyRing.generate()


@pytest.mark.parametrize("size", [0, 1, 31, 4096, 65535, 65536, 1 << 20])
def test_round_trip_sizes(ring: DataKeyRing, size: int) -> None:
    plaintext = os.urandom(size)
    blob = encrypt(ring, plaintext, kind="result", record_id="r-1")
    assert type(blob) is bytes
    assert len(blob) == aead.HEADER_SIZE + size + aead.TAG_SIZE
    assert decrypt(ring, blob, kind="result", record_id="r-1") == plaintext


def test_wire_format_is_as_documented(ring: DataKeyRing) -> None:
    plaintext = b"findings: none"
    blob = encrypt(ring, plaintext, kind="report", record_id="1.2.3")
    assert blob[:4] == b"MWA1"
    assert struct.unpack(">I", blob[4:8])[0] == ring.current == key_version(blob)
    nonce = blob[8:20]
    aad = b"MWA1" + struct.pack(">I", 6) + b"report" + struct.pack(">I", 5) + b"1.2.3"
    aad += struct.pack(">I", ring.current)
    assert aead.associated_data("report", "1.2.3", ring.current) == aad
    # The bare primitive with the documented parameters opens it: nothing else is hidden.
    assert AESGCM(ring.keys[ring.current]).decrypt(nonce, blob[20:], aad) == plaintext


def test_buffer_inputs(ring: DataKeyRing) -> None:
    data = bytearray(os.urandom(70_000))
    for value in (data, memoryview(data), bytes(data)):
        blob = encrypt(ring, value, kind="k", record_id="r")
        assert decrypt(ring, bytearray(blob), kind="k", record_id="r") == bytes(data)
        assert decrypt(ring, memoryview(blob), kind="k", record_id="r") == bytes(data)


def test_fresh_nonce_each_time(ring: DataKeyRing) -> None:
    blobs = {encrypt(ring, b"same", kind="k", record_id="r") for _ in range(50)}
    assert len(blobs) == 50


def test_empty_context_is_refused(ring: DataKeyRing) -> None:
    for kind, record_id in (("", "r"), ("k", ""), (None, "r")):
        with pytest.raises(ValueError):
            encrypt(ring, b"x", kind=kind, record_id=record_id)  # type: ignore[arg-type]


# -- context binding ---------------------------------------------------------------------------
def test_associated_data_is_length_prefixed() -> None:
    assert aead.associated_data("ab", "c", 1) != aead.associated_data("a", "bc", 1)
    assert aead.associated_data("k", "r", 1) != aead.associated_data("k", "r", 2)


@pytest.mark.parametrize(
    ("kind", "record_id"),
    [("result", "r-2"), ("report", "r-1"), ("resul", "tr-1"), ("result-", "1"), ("result", "r-1 ")],
)
def test_other_context_is_refused(ring: DataKeyRing, kind: str, record_id: str) -> None:
    blob = encrypt(ring, b"secret", kind="result", record_id="r-1")
    with pytest.raises(DecryptionError, match="wrong key, wrong record or tampered") as info:
        decrypt(ring, blob, kind=kind, record_id=record_id)
    assert "secret" not in str(info.value)


def test_swapped_ciphertexts_are_refused(ring: DataKeyRing) -> None:
    a = encrypt(ring, b"alpha", kind="result", record_id="a")
    b = encrypt(ring, b"beta", kind="result", record_id="b")
    with pytest.raises(DecryptionError):
        decrypt(ring, a, kind="result", record_id="b")
    with pytest.raises(DecryptionError):
        decrypt(ring, b, kind="result", record_id="a")
    # Splicing a's header onto b's body fails too.
    with pytest.raises(DecryptionError):
        decrypt(ring, a[:20] + b[20:], kind="result", record_id="b")


def test_relabelled_key_version_is_refused() -> None:
    ring = DataKeyRing.generate().rotated()
    # Version 2 blob, header relabelled as version 1 (a key that exists): must not decrypt.
    blob = encrypt(ring, b"x" * 40, kind="k", record_id="r")
    relabelled = blob[:4] + struct.pack(">I", 1) + blob[8:]
    with pytest.raises(DecryptionError, match="wrong key"):
        decrypt(ring, relabelled, kind="k", record_id="r")
    # Even under a ring whose version 1 *is* the key that encrypted: the version is bound.
    same_key = DataKeyRing({1: ring.keys[2]}, 1)
    with pytest.raises(DecryptionError, match="wrong key"):
        decrypt(same_key, relabelled, kind="k", record_id="r")


def test_wrong_key_is_refused(ring: DataKeyRing) -> None:
    blob = encrypt(ring, b"x", kind="k", record_id="r")
    with pytest.raises(DecryptionError, match="wrong key"):
        decrypt(DataKeyRing.generate(), blob, kind="k", record_id="r")


# -- tampering and junk ------------------------------------------------------------------------
_BLOB_RING = DataKeyRing.generate()
_BLOB = encrypt(_BLOB_RING, os.urandom(300), kind="study", record_id="1.2.840.1")


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_any_single_byte_flip_is_refused(data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(_BLOB) - 1), label="position")
    mask = data.draw(st.integers(1, 255), label="mask")
    tampered = bytearray(_BLOB)
    tampered[position] ^= mask
    with pytest.raises(DecryptionError):
        decrypt(_BLOB_RING, bytes(tampered), kind="study", record_id="1.2.840.1")


@settings(max_examples=100, deadline=None)
@given(cut=st.integers(0, len(_BLOB) - 1))
def test_truncation_is_refused(cut: int) -> None:
    with pytest.raises(DecryptionError):
        decrypt(_BLOB_RING, _BLOB[:cut], kind="study", record_id="1.2.840.1")


@settings(max_examples=200, deadline=None)
@given(junk=st.binary(max_size=80) | st.binary(max_size=60).map(lambda b: b"MWA1" + b))
def test_junk_raises_only_decryption_error(junk: bytes) -> None:
    with pytest.raises(DecryptionError):
        decrypt(_BLOB_RING, junk, kind="study", record_id="1.2.840.1")
    with contextlib.suppress(DecryptionError):  # a well-formed header may parse
        assert isinstance(key_version(junk), int)


# -- the key ring ------------------------------------------------------------------------------
def test_ring_generate_rotate_without() -> None:
    ring = DataKeyRing.generate()
    assert ring.current == 1 and ring.versions == (1,) and len(ring.keys[1]) == 32
    rotated = ring.rotated()
    assert rotated.current == 2 and rotated.versions == (1, 2)
    assert rotated.keys[1] == ring.keys[1] and rotated.keys[2] != ring.keys[1]
    assert ring.versions == (1,)  # immutable: the old ring is unchanged
    assert rotated.rotated().current == 3
    assert rotated.without(1).versions == (2,)
    with pytest.raises(ValueError, match="current"):
        rotated.without(2)
    with pytest.raises(ValueError, match="not in the key ring"):
        rotated.without(7)
    with pytest.raises(TypeError):
        rotated.keys[9] = bytes(32)  # type: ignore[index]


def test_ring_repr_hides_keys() -> None:
    ring = DataKeyRing.generate().rotated()
    text = repr(ring) + str(ring)
    assert "versions=[1, 2]" in text
    for key in ring.keys.values():
        assert key.hex() not in text and repr(key) not in text


@pytest.mark.parametrize(
    ("keys", "current"),
    [({1: bytes(16)}, 1), ({1: bytes(32)}, 2), ({0: bytes(32)}, 0), ({2**32: bytes(32)}, 2**32)],
)
def test_ring_validation(keys: dict[int, bytes], current: int) -> None:
    with pytest.raises(ValueError):
        DataKeyRing(keys, current)


def test_ring_serialisation() -> None:
    ring = DataKeyRing.generate().rotated().rotated().without(2)
    raw = ring.private_bytes()
    assert len(raw) == 12 + 2 * 36
    assert DataKeyRing.from_private_bytes(raw) == ring
    for bad in (b"", raw[:-1], b"XXXX" + raw[4:], raw + b"\0"):
        with pytest.raises(ValueError):
            DataKeyRing.from_private_bytes(bad)


def test_rotation_rewrap_and_destruction() -> None:
    ring = DataKeyRing.generate()
    records = {f"r{i}": os.urandom(100 + i) for i in range(4)}
    old = {rid: encrypt(ring, pt, kind="result", record_id=rid) for rid, pt in records.items()}
    assert {key_version(b) for b in old.values()} == {1}

    ring = ring.rotated()
    # Old blobs still decrypt; new ones use version 2.
    for rid, blob in old.items():
        assert decrypt(ring, blob, kind="result", record_id=rid) == records[rid]
    assert key_version(encrypt(ring, b"new", kind="result", record_id="n")) == 2

    # Rewrap all but r3; rewrapping a current blob returns it unchanged.
    rewrapped = {
        rid: rewrap(ring, blob, kind="result", record_id=rid)
        for rid, blob in old.items()
        if rid != "r3"
    }
    assert {key_version(b) for b in rewrapped.values()} == {2}
    again = rewrap(ring, rewrapped["r0"], kind="result", record_id="r0")
    assert again == rewrapped["r0"]
    with pytest.raises(DecryptionError):
        rewrap(ring, old["r1"], kind="result", record_id="r2")  # wrong context: refused

    ring = ring.without(1)
    for rid, blob in rewrapped.items():
        assert decrypt(ring, blob, kind="result", record_id=rid) == records[rid]
    with pytest.raises(DecryptionError, match=r"key version 1 is not in the key ring \(destroyed"):
        decrypt(ring, old["r3"], kind="result", record_id="r3")
    with pytest.raises(DecryptionError, match="key version 1"):
        rewrap(ring, old["r3"], kind="result", record_id="r3")

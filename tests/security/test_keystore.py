"""The key store: wrapping at rest, passphrase / keyring KEKs, tamper detection, data key
lifecycle (rotate, re-wrap, destroy)."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import keyring
import keyring.backend
import pytest
from keyring.backends import chainer, fail

from workstation.security import aead
from workstation.security._keyfile import mac, subkeys
from workstation.security.errors import KeyStoreError, SecurityError
from workstation.security.keystore import (
    FILE_NAME,
    KEYRING_SERVICE,
    PASSPHRASE_ENV,
    Argon2Params,
    KeyStore,
    default_folder,
    keyring_available,
    rewrap_all,
)

FAST = Argon2Params(memory_kib=64, iterations=1, lanes=1)  # tests only: milliseconds
SECRET = "correct horse battery"


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A real (in-memory) keyring backend, plugged in the way the keyring library documents."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        from keyring.errors import PasswordDeleteError

        if self.entries.pop((service, username), None) is None:
            raise PasswordDeleteError(username)


@pytest.fixture(autouse=True)
def _hermetic(monkeypatch: pytest.MonkeyPatch) -> object:
    """No passphrase in the environment and no OS keyring (never the user's real one)."""
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    before = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.set_keyring(before)


@pytest.fixture
def memory_keyring() -> MemoryKeyring:
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    return backend


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "home" / "keys"


def _create(folder: Path, **kwargs: object) -> KeyStore:
    return KeyStore.create(folder, passphrase=SECRET, kdf=FAST, **kwargs)  # type: ignore[arg-type]


def _doc(folder: Path) -> dict:
    return json.loads((folder / FILE_NAME).read_text())


def _write(folder: Path, doc: dict) -> None:
    (folder / FILE_NAME).write_text(json.dumps(doc))


# -- round trip -------------------------------------------------------------------------------


def test_create_open_round_trip(folder: Path) -> None:
    created = _create(folder)
    opened = KeyStore.open(folder, passphrase=SECRET)

    assert opened.signing_key().private_bytes() == created.signing_key().private_bytes()
    assert opened.recipient_key().private_bytes() == created.recipient_key().private_bytes()
    assert dict(opened.data_keys().keys) == dict(created.data_keys().keys)
    assert opened.data_keys().current == 1
    signature = opened.signing_key().sign(b"data", context="test")
    created.signing_key().public_key.verify(signature, b"data", context="test")

    info = opened.public_info()
    assert info == created.public_info()
    assert info["signing_key"]["key_id"] == created.signing_key().key_id
    assert info["recipient_key"]["key_id"] == created.recipient_key().key_id
    assert info["data_keys"] == {"versions": [1], "current": 1}
    assert info["kek"] == {
        "source": "passphrase",
        "kdf": "argon2id",
        "memory_kib": 64,
        "iterations": 1,
        "lanes": 1,
    }
    doc = _doc(folder)
    assert doc["format"] == "medical-workstation-keystore" and doc["version"] == 1
    assert doc["signing"]["public"] == created.signing_key().public_key.to_json()
    assert doc["recipient"]["public"] == created.recipient_key().public_key().to_json()


def test_default_folder_follows_workstation_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKSTATION_HOME", str(tmp_path))
    assert default_folder() == tmp_path.resolve() / "keys"
    _create(default_folder())
    assert (tmp_path / "keys" / FILE_NAME).is_file()


def test_default_argon2_parameters(folder: Path) -> None:
    params = Argon2Params()
    assert (params.memory_kib, params.iterations, params.lanes) == (64 * 1024, 3, 4)
    KeyStore.create(folder, passphrase=SECRET)
    KeyStore.open(folder, passphrase=SECRET)
    kek = _doc(folder)["kek"]
    assert (kek["kdf"], kek["memory_kib"], kek["iterations"], kek["lanes"]) == (
        "argon2id",
        65536,
        3,
        4,
    )
    assert len(base64.b64decode(kek["salt"])) == 16


def test_wrong_passphrase_is_refused_clearly(folder: Path) -> None:
    _create(folder)
    with pytest.raises(KeyStoreError, match="wrong passphrase") as caught:
        KeyStore.open(folder, passphrase="not the passphrase")
    assert SECRET not in str(caught.value) and "not the passphrase" not in str(caught.value)


def test_missing_store_says_run_init(folder: Path) -> None:
    with pytest.raises(KeyStoreError, match=r"no key store .*workstation keys init"):
        KeyStore.open(folder, passphrase=SECRET)


def test_passphrase_sources(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(KeyStoreError, match=PASSPHRASE_ENV):
        KeyStore.create(folder, kdf=FAST)
    KeyStore.create(folder, kdf=FAST, prompt=lambda: SECRET)
    with pytest.raises(KeyStoreError, match=PASSPHRASE_ENV):
        KeyStore.open(folder)
    asked: list[bool] = []
    KeyStore.open(folder, prompt=lambda: asked.append(True) or SECRET)
    assert asked == [True]
    monkeypatch.setenv(PASSPHRASE_ENV, SECRET)
    KeyStore.open(folder, prompt=lambda: pytest.fail("the environment comes first"))


def test_short_passphrase_is_refused(folder: Path) -> None:
    with pytest.raises(KeyStoreError, match="at least 8"):
        KeyStore.create(folder, passphrase="short", kdf=FAST)
    assert not folder.exists()


def test_init_refuses_to_overwrite_without_force(folder: Path) -> None:
    first = _create(folder)
    before = (folder / FILE_NAME).read_bytes()
    with pytest.raises(KeyStoreError, match=r"already exists.*--force"):
        _create(folder)
    assert (folder / FILE_NAME).read_bytes() == before
    second = _create(folder, force=True)
    assert second.signing_key().key_id != first.signing_key().key_id
    opened = KeyStore.open(folder, passphrase=SECRET)
    assert opened.signing_key().key_id == second.signing_key().key_id


# -- at rest ----------------------------------------------------------------------------------


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_file_and_folder_permissions(folder: Path) -> None:
    folder.mkdir(parents=True, mode=0o755)
    os.chmod(folder, 0o755)
    store = _create(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / FILE_NAME).stat().st_mode) == 0o600
    store.rotate_data_key()
    assert stat.S_IMODE((folder / FILE_NAME).stat().st_mode) == 0o600
    assert not list(folder.glob("*.tmp"))


def test_no_secret_in_the_file(folder: Path) -> None:
    store = _create(folder)
    store.rotate_data_key()
    raw = (folder / FILE_NAME).read_bytes()
    secrets = [
        store.signing_key().private_bytes(),
        store.signing_key().private_bytes()[:32],
        store.signing_key().private_bytes()[32:],
        store.recipient_key().private_bytes(),
        *store.data_keys().keys.values(),
    ]
    for secret in secrets:
        for encoded in (secret, secret.hex().encode(), base64.b64encode(secret)):
            assert encoded not in raw
    assert SECRET.encode() not in raw


# -- tampering --------------------------------------------------------------------------------


def _flip(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[len(raw) // 2] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def _swap_data_keys(doc: dict) -> None:
    wrapped = doc["data_keys"]["wrapped"]
    wrapped["1"], wrapped["2"] = wrapped["2"], wrapped["1"]


def _tamper_signing(doc: dict) -> None:
    doc["signing"]["wrapped"] = _flip(doc["signing"]["wrapped"])


def _tamper_recipient(doc: dict) -> None:
    doc["recipient"]["wrapped"] = _flip(doc["recipient"]["wrapped"])


def _tamper_data_key(doc: dict) -> None:
    doc["data_keys"]["wrapped"]["1"] = _flip(doc["data_keys"]["wrapped"]["1"])


def _roll_back_current(doc: dict) -> None:
    doc["data_keys"]["current"] = 1


def _replace_public_key(doc: dict) -> None:
    from workstation.security.sign import HybridSigningKey

    doc["signing"]["public"] = HybridSigningKey.generate().public_key.to_json()


def _swap_private_keys(doc: dict) -> None:
    doc["signing"]["wrapped"], doc["recipient"]["wrapped"] = (
        doc["recipient"]["wrapped"],
        doc["signing"]["wrapped"],
    )


@pytest.mark.parametrize(
    "tamper",
    [
        _tamper_signing,
        _tamper_recipient,
        _tamper_data_key,
        _swap_data_keys,
        _swap_private_keys,
        _roll_back_current,
        _replace_public_key,
    ],
)
def test_tampered_file_is_refused(folder: Path, tamper) -> None:
    _create(folder).rotate_data_key()
    doc = _doc(folder)
    tamper(doc)
    _write(folder, doc)
    with pytest.raises(KeyStoreError, match=r"modified|tampered|corrupt"):
        KeyStore.open(folder, passphrase=SECRET)


def test_swapped_items_do_not_unwrap_even_with_a_valid_mac(folder: Path) -> None:
    """Defence in depth: the associated data binds each wrapped item to its slot."""
    _create(folder).rotate_data_key()
    doc = _doc(folder)
    _swap_data_keys(doc)
    kek = FAST.derive(SECRET, base64.b64decode(doc["kek"]["salt"]))
    doc["mac"]["value"] = base64.b64encode(mac(subkeys(kek)[1], doc)).decode()
    _write(folder, doc)
    with pytest.raises(KeyStoreError, match=r"tampered.*data-key/"):
        KeyStore.open(folder, passphrase=SECRET)


@pytest.mark.parametrize("content", [b"", b"not json", b"[]", b'{"format": "other"}'])
def test_corrupt_file_is_refused(folder: Path, content: bytes) -> None:
    _create(folder)
    (folder / FILE_NAME).write_bytes(content)
    with pytest.raises(KeyStoreError, match=r"JSON|not a workstation key store"):
        KeyStore.open(folder, passphrase=SECRET)


def test_truncated_document_is_refused(folder: Path) -> None:
    _create(folder)
    doc = _doc(folder)
    del doc["recipient"]
    _write(folder, doc)
    with pytest.raises(KeyStoreError, match="corrupt"):
        KeyStore.open(folder, passphrase=SECRET)


def test_exorbitant_kdf_parameters_are_refused_before_deriving(folder: Path) -> None:
    _create(folder)
    doc = _doc(folder)
    doc["kek"]["memory_kib"] = 1 << 40
    _write(folder, doc)
    with pytest.raises(KeyStoreError, match="unsupported Argon2id parameters"):
        KeyStore.open(folder, passphrase=SECRET)


def test_newer_format_version_is_refused(folder: Path) -> None:
    _create(folder)
    doc = _doc(folder)
    doc["version"] = 2
    _write(folder, doc)
    with pytest.raises(KeyStoreError, match="format version 2"):
        KeyStore.open(folder, passphrase=SECRET)


# -- data key lifecycle -----------------------------------------------------------------------


def test_rotate_keeps_old_ciphertexts_readable(folder: Path) -> None:
    store = _create(folder)
    old = aead.encrypt(store.data_keys(), b"report", kind="result", record_id="r1")
    assert store.rotate_data_key() == 2
    reopened = KeyStore.open(folder, passphrase=SECRET)
    ring = reopened.data_keys()
    assert (sorted(ring.keys), ring.current) == ([1, 2], 2)
    assert aead.decrypt(ring, old, kind="result", record_id="r1") == b"report"
    new = aead.encrypt(ring, b"later", kind="result", record_id="r2")
    assert aead.key_version(old) == 1 and aead.key_version(new) == 2
    assert reopened.public_info()["data_keys"] == {"versions": [1, 2], "current": 2}


class _Records:
    """A minimal ciphertext source, as the encrypted store will be."""

    def __init__(self, items: list[tuple[str, str, bytes]]) -> None:
        self.items = items

    def blobs(self) -> list[tuple[str, str, bytes]]:
        return list(self.items)


def test_rewrap_then_destroy(folder: Path) -> None:
    store = _create(folder)
    ring = store.data_keys()
    a = ("result", "a", aead.encrypt(ring, b"alpha", kind="result", record_id="a"))
    b = ("result", "b", aead.encrypt(ring, b"beta", kind="result", record_id="b"))
    store.rotate_data_key()
    fresh = ("result", "c", aead.encrypt(store.data_keys(), b"gamma", kind="result", record_id="c"))

    rewrapped = list(rewrap_all(store, [a, fresh]))
    assert [aead.key_version(blob) for _, _, blob in rewrapped] == [2, 2]
    assert rewrapped[1] == fresh  # already current: passed through unchanged

    with pytest.raises(KeyStoreError, match=r"1 ciphertext\(s\) are still under .* 1"):
        store.destroy_data_key(1, sources=[_Records([*rewrapped, b])])
    store.destroy_data_key(1, sources=[_Records(rewrapped)])

    reopened = KeyStore.open(folder, passphrase=SECRET)
    ring = reopened.data_keys()
    assert sorted(ring.keys) == [2]
    assert aead.decrypt(ring, rewrapped[0][2], kind="result", record_id="a") == b"alpha"
    with pytest.raises(SecurityError):
        aead.decrypt(ring, b[2], kind="result", record_id="b")


def test_destroy_refuses_the_current_and_unknown_versions(folder: Path) -> None:
    store = _create(folder)
    with pytest.raises(KeyStoreError, match="current"):
        store.destroy_data_key(1)
    store.rotate_data_key()
    with pytest.raises(KeyStoreError, match="current"):
        store.destroy_data_key(2)
    with pytest.raises(KeyStoreError, match="no data key version 7"):
        store.destroy_data_key(7)
    assert sorted(KeyStore.open(folder, passphrase=SECRET).data_keys().keys) == [1, 2]


def test_concurrent_change_is_detected(folder: Path) -> None:
    _create(folder)
    first = KeyStore.open(folder, passphrase=SECRET)
    second = KeyStore.open(folder, passphrase=SECRET)
    first.rotate_data_key()
    with pytest.raises(KeyStoreError, match="changed since it was opened"):
        second.rotate_data_key()
    assert dict(KeyStore.open(folder, passphrase=SECRET).data_keys().keys) == dict(
        first.data_keys().keys
    )


# -- OS keyring -------------------------------------------------------------------------------


def test_keyring_detection(memory_keyring: MemoryKeyring) -> None:
    assert keyring_available()
    keyring.set_keyring(fail.Keyring())
    assert not keyring_available()
    keyring.set_keyring(chainer.ChainerBackend())  # no usable backends behind it
    if not chainer.ChainerBackend().backends:
        assert not keyring_available()


def test_keyring_kek(folder: Path, memory_keyring: MemoryKeyring) -> None:
    store = KeyStore.create(folder, passphrase=None)  # auto: the keyring wins without a passphrase
    doc = _doc(folder)
    assert doc["kek"]["source"] == "keyring" and "salt" not in doc["kek"]
    assert list(memory_keyring.entries) == [(KEYRING_SERVICE, f"keystore-{doc['store_id']}")]
    kek = base64.b64decode(next(iter(memory_keyring.entries.values())))
    assert len(kek) == 32 and kek not in (folder / FILE_NAME).read_bytes()

    opened = KeyStore.open(folder)
    assert opened.signing_key().key_id == store.signing_key().key_id
    assert opened.public_info()["kek"] == {"source": "keyring", "service": KEYRING_SERVICE}

    (entry,) = memory_keyring.entries
    memory_keyring.entries[entry] = base64.b64encode(os.urandom(32)).decode()
    with pytest.raises(KeyStoreError, match="keyring's key does not unlock"):
        KeyStore.open(folder)
    del memory_keyring.entries[entry]
    with pytest.raises(KeyStoreError, match="keyring has no key"):
        KeyStore.open(folder)
    keyring.set_keyring(fail.Keyring())
    with pytest.raises(KeyStoreError, match="keyring, which is not available"):
        KeyStore.open(folder)


def test_passphrase_wins_over_keyring_when_given(
    folder: Path, memory_keyring: MemoryKeyring
) -> None:
    _create(folder)
    assert _doc(folder)["kek"]["source"] == "passphrase" and not memory_keyring.entries


def test_force_reinit_removes_the_old_keyring_entry(
    folder: Path, memory_keyring: MemoryKeyring
) -> None:
    KeyStore.create(folder, use_keyring=True)
    old = set(memory_keyring.entries)
    KeyStore.create(folder, use_keyring=True, force=True)
    new = set(memory_keyring.entries)
    assert len(new) == 1 and not old & new
    KeyStore.open(folder)


def test_keyring_required_but_missing(folder: Path) -> None:
    with pytest.raises(KeyStoreError, match="no OS keyring"):
        KeyStore.create(folder, use_keyring=True)


def test_concurrent_key_derivations_complete() -> None:
    """Workers unlocking the key store at once (models, plugins, sync at GUI start-up) must not
    deadlock: cryptography's Argon2id hangs when two threads derive at the same time."""
    import os
    import threading

    from workstation.security._kek import Argon2Params

    params = Argon2Params(memory_kib=8 * 1024, iterations=1, lanes=4)
    keys: list[bytes] = []
    threads = [
        threading.Thread(
            target=lambda: keys.append(params.derive("a passphrase", os.urandom(16))), daemon=True
        )
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(keys) == 4 and all(len(k) == 32 for k in keys)

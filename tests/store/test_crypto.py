"""Encryption at rest: no PHI in the files, ciphertexts bound to their place, rotation."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import sqlalchemy as sa

from store.store_kit import (
    FINDING_TEXT,
    PATIENT_ID,
    PATIENT_NAME,
    STUDY_UID,
    MakeStore,
    sample_result,
)
from workstation.security.aead import DataKeyRing
from workstation.security.errors import KeyStoreError
from workstation.security.keystore import Argon2Params, KeyStore
from workstation.store import RecordCorruptError, ResultStore, StoreError, create_engine
from workstation.store.crypto import Cipher, EncryptedBytes, Sealed

PLANTED = (PATIENT_NAME, PATIENT_ID, STUDY_UID, FINDING_TEXT, "Quentessa", "Zyxwvut")


def _forms(text: str) -> list[bytes]:
    raw = text.encode()
    return [raw, text.encode("utf-16-le"), base64.b64encode(raw), raw.hex().encode()]


def _sql(store: ResultStore, statement: str, **params: object) -> list[sa.Row]:
    with store.engine.begin() as connection:
        result = connection.execute(sa.text(statement), params)
        return list(result) if result.returns_rows else []


def test_no_plaintext_phi_in_the_database_files(tmp_path: Path, make_store: MakeStore) -> None:
    store = make_store(f"sqlite:///{tmp_path / 'results.db'}")
    result_id = store.save_result(sample_result(maps=2))
    store.get_result(result_id)  # a read also writes (the audit event)
    store.close()
    files = sorted(tmp_path.iterdir())
    assert any(f.name == "results.db" for f in files)
    for path in files:
        data = path.read_bytes()
        for planted in PLANTED:
            for form in _forms(planted):
                assert form not in data, f"{planted!r} in clear in {path.name}"
    # and the map data really are there, encrypted: the rows exist and are not the plaintext
    engine = create_engine(f"sqlite:///{tmp_path / 'results.db'}")
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM map_chunks")).scalar_one() == 2
    engine.dispose()


def test_no_plaintext_phi_in_postgres(postgres_url: str, make_store: MakeStore) -> None:
    store = make_store(postgres_url)
    store.save_result(sample_result())
    for table in ("studies", "analyses", "findings", "explanation_maps", "map_chunks"):
        for row in _sql(store, f"SELECT * FROM {table}"):
            dump = repr(tuple(bytes(v) if isinstance(v, memoryview) else v for v in row))
            for planted in PLANTED:
                assert planted not in dump and planted.encode().hex() not in dump, table


def test_a_wrong_key_fails_loudly(sqlite_url: str, make_store: MakeStore) -> None:
    result_id = make_store(sqlite_url).save_result(sample_result())
    stranger = make_store(sqlite_url, keys=DataKeyRing.generate())
    with pytest.raises(RecordCorruptError, match="does not decrypt"):
        stranger.get_result(result_id)


@pytest.mark.parametrize(
    ("statement", "where"),
    [
        # the two findings' contents exchanged (rows of one column)
        (
            "UPDATE findings SET content = CASE WHEN id = :a THEN "
            "(SELECT content FROM findings WHERE id = :b) ELSE "
            "(SELECT content FROM findings WHERE id = :a) END WHERE id IN (:a, :b)",
            "findings.content",
        ),
        # a finding's content put into the analysis' parameters (another table and column)
        (
            "UPDATE analyses SET parameters = (SELECT content FROM findings WHERE id = :a)",
            "analyses.parameters",
        ),
        # two chunks of one map exchanged
        (
            'UPDATE map_chunks SET data = CASE WHEN "index" = 0 THEN '
            '(SELECT data FROM map_chunks WHERE "index" = 1) ELSE '
            '(SELECT data FROM map_chunks WHERE "index" = 0) END',
            "map_chunks.data",
        ),
        # the tag's last byte changed (to 0x00, or to 0x01 where it was 0x00 already: the test
        # must change it, or 1 run in 256 would tamper with nothing)
        (
            "UPDATE findings SET content = CAST(substr(content, 1, length(content) - 1) "
            "|| CASE WHEN substr(content, -1) = x'00' THEN x'01' ELSE x'00' END AS BLOB) "
            "WHERE id = :a",
            "findings.content",
        ),
    ],
    ids=["swap-rows", "other-column", "swap-chunks", "tampered"],
)
def test_moved_or_tampered_ciphertext_fails_loudly(
    sqlite_url: str, make_store: MakeStore, statement: str, where: str
) -> None:
    store = make_store(sqlite_url)
    result_id = store.save_result(sample_result(map_bytes=1_500_000))
    a, b = (row.id for row in _sql(store, "SELECT id FROM findings ORDER BY ordinal"))
    _sql(store, statement, a=a, b=b)
    [map_id] = [row.id for row in _sql(store, "SELECT id FROM explanation_maps")]
    with pytest.raises(RecordCorruptError, match=where.replace(".", r"\.")):
        store.get_result(result_id)
        store.read_map(map_id)


def test_a_truncated_map_is_refused(db_url: str, make_store: MakeStore) -> None:
    store = make_store(db_url)
    store.save_result(sample_result(map_bytes=1_500_000))
    [map_id] = [row.id for row in _sql(store, "SELECT id FROM explanation_maps")]
    _sql(store, 'DELETE FROM map_chunks WHERE "index" = 1')
    with pytest.raises(RecordCorruptError, match="incomplete"):
        store.read_map(map_id)


def test_plaintext_never_reaches_an_encrypted_column(
    sqlite_url: str, make_store: MakeStore
) -> None:
    from sqlalchemy.exc import StatementError

    store = make_store(sqlite_url)
    findings = sa.Table("findings", sa.MetaData(), sa.Column("content", EncryptedBytes()))
    with (
        pytest.raises(StatementError, match="takes a Sealed value"),
        store.engine.begin() as connection,
    ):
        connection.execute(findings.insert().values(content=b"in clear"))
    cipher = Cipher(DataKeyRing.generate())
    secret = b"left frontal lesion"  # long enough that random ciphertext cannot contain it
    sealed = cipher.seal(secret, "findings", "row-1", "content")
    assert isinstance(sealed, Sealed) and secret not in sealed.blob
    assert cipher.open(sealed, "findings", "row-1", "content") == secret
    with pytest.raises(RecordCorruptError, match=r"findings\.text of row row-1"):
        cipher.open(sealed, "findings", "row-1", "text")


def _keystore(folder: Path) -> KeyStore:
    return KeyStore.create(
        folder, passphrase="correct horse battery", kdf=Argon2Params(64, 1, 1), use_keyring=False
    )


def test_rotate_rewrap_and_retire(db_url: str, tmp_path: Path, make_store: MakeStore) -> None:
    keys = _keystore(tmp_path / "keys")
    store = make_store(db_url, keys=keys.data_keys)  # the live ring: rotation is seen at once
    before = store.save_result(sample_result(map_bytes=1_200_000))
    assert set(store.key_versions()) == {1}

    assert keys.rotate_data_key() == 2
    after = store.save_result(sample_result(maps=0))
    assert store.key_versions() == {1: 7, 2: 3}  # same study: no new identifiers
    with pytest.raises(KeyStoreError, match="7 ciphertext"):
        keys.destroy_data_key(1, sources=[store])

    assert store.rewrap() == 7
    assert store.rewrap() == 0  # idempotent: an interrupted pass can run again
    assert set(store.key_versions()) == {2}
    keys.destroy_data_key(1, sources=[store])
    assert keys.data_keys().versions == (2,)

    reopened = KeyStore.open(tmp_path / "keys", passphrase="correct horse battery")
    again = make_store(db_url, keys=reopened.data_keys)
    assert again.get_result(before).findings[0].text == FINDING_TEXT
    assert again.get_result(after).parameters["threshold"] == 0.5
    [map_header] = again.get_result(before).maps
    assert len(again.read_map(map_header.id)) == 1_200_000
    assert "keys.rewrap" in [e["action"] for e in again.audit.export()]


def test_retired_key_without_rewrap_fails_loudly(sqlite_url: str, make_store: MakeStore) -> None:
    ring = DataKeyRing.generate()
    result_id = make_store(sqlite_url, keys=ring).save_result(sample_result(maps=0))
    rotated = ring.rotated().without(1)
    with pytest.raises(RecordCorruptError, match="key version 1 is not in the key ring"):
        make_store(sqlite_url, keys=rotated).get_result(result_id)


def test_store_errors_derive_from_the_root() -> None:
    from workstation.core.errors import WorkstationError

    assert issubclass(RecordCorruptError, StoreError)
    assert issubclass(StoreError, WorkstationError)

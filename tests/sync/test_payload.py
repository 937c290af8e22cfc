"""The de-identified, sealed result payload: round trip, no identifiers anywhere."""

from __future__ import annotations

import json

import pytest

from sync.sync_kit import SECRET_IDENTIFIERS, Keys, new_result
from workstation.security.errors import DecryptionError
from workstation.security.seal import RecipientKey
from workstation.store import NewResult, ResultStore, StudyRef
from workstation.sync.payload import (
    PURPOSE,
    build_document,
    decode,
    encode,
    open_payload,
    scrub,
    seal_result,
)


def _plain(store: ResultStore, result_id: str) -> bytes:
    result = store.get_result(result_id, purpose="export")
    maps = [store.read_map(m.id, purpose="export") for m in result.maps]
    return encode(build_document(result, maps))


def test_round_trip(store: ResultStore, keys: Keys) -> None:
    result_id = store.save_result(new_result(7, map_size=300_000))
    other = RecipientKey.generate()
    blob = seal_result(store, result_id, [keys.recipient.public_key(), other.public_key()])
    for key in (keys.recipient, other):
        opened = open_payload(blob, key)
        doc = opened.document
        assert doc["schema"] == 1 and doc["kind"] == "analysis"
        assert doc["result_id"] == result_id and doc["study"] == "ps-0007"
        assert doc["model"] == {"name": "brain-lesion", "version": "1.2.0"}
        assert doc["input_hash"] == f"{7:064x}"
        assert doc["findings"] == [
            {"label": "lesion", "text": "left frontal, 12 mm", "values": {"volume_ml": 1.5, "i": 7}}
        ]
        assert doc["maps"][0]["method"] == "gradcam" and doc["maps"][0]["size"] == 300_000
        assert opened.maps == (bytes([7]) * 300_000,)
    with pytest.raises(DecryptionError):
        open_payload(blob, RecipientKey.generate())


def test_purpose_is_bound(store: ResultStore, keys: Keys) -> None:
    from workstation.security.seal import open_sealed, seal

    blob = seal(b"x", [keys.recipient.public_key()], purpose="something-else")
    with pytest.raises(DecryptionError):
        open_payload(blob, keys.recipient)
    assert PURPOSE == "medws-result-v1"
    plain = _plain(store, store.save_result(new_result(1)))
    assert (
        open_sealed(
            seal(plain, [keys.recipient.public_key()], purpose=PURPOSE),
            keys.recipient,
            purpose=PURPOSE,
        )
        == plain
    )


def test_no_identifiers_in_plaintext_or_blob(store: ResultStore, keys: Keys) -> None:
    base = new_result(3)
    leaky = NewResult(
        study=base.study,
        model_name=base.model_name,
        model_version=base.model_version,
        input_hash=base.input_hash,
        parameters={
            "threshold": 0.5,
            "identifiers": dict(base.study.identifiers),
            "nested": [{"PatientName": "Doe^Janet-Zzyzx", "kept": 1}],
            "summary": {"provenance": {"study_uid": "1.2.826.0.1.3680043.99.1234567.42"}},
        },
        findings=base.findings,
        maps=[
            type(base.maps[0])(
                "gradcam", b"\x01" * 100, {"shape": [1], "Patient ID": "MRN-99887766"}
            )
        ],
    )
    result_id = store.save_result(leaky)
    plain = _plain(store, result_id)
    blob = seal_result(store, result_id, [keys.recipient.public_key()])
    for secret in SECRET_IDENTIFIERS:
        assert secret.encode() not in plain, secret
        assert secret.encode() not in blob, secret
    doc = open_payload(blob, keys.recipient).document
    text = json.dumps(doc)
    assert all(secret not in text for secret in SECRET_IDENTIFIERS)
    assert doc["parameters"] == {
        "threshold": 0.5,
        "nested": [{"kept": 1}],
        "summary": {"provenance": {}},
    }
    assert doc["maps"][0]["meta"] == {"shape": [1]}
    assert "identifiers" not in text.lower()


def test_plain_result_has_no_identifiers(store: ResultStore) -> None:
    result_id = store.save_result(new_result(5))
    plain = _plain(store, result_id)
    assert all(secret.encode() not in plain for secret in SECRET_IDENTIFIERS)
    decoded = decode(plain).document
    assert set(decoded) == {
        "schema", "kind", "result_id", "study", "created", "model", "input_hash",
        "parameters", "findings", "maps",
    }  # fmt: skip


def test_decode_rejects_altered_maps(store: ResultStore) -> None:
    plain = bytearray(_plain(store, store.save_result(new_result(2))))
    plain[-1] ^= 1
    with pytest.raises(ValueError, match="altered"):
        decode(bytes(plain))
    with pytest.raises(ValueError):
        decode(b"nope")


def test_scrub_keeps_everything_else() -> None:
    assert scrub({"a": [{"b": 1, "series_uid": "x"}], "Accession Number": "y", "t": "z"}) == {
        "a": [{"b": 1}],
        "t": "z",
    }
    assert StudyRef("p").identifiers == {}

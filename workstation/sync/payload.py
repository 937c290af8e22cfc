"""The de-identified result document sent to the registry, and its sealed container.

Container (``medws-result-v1``), sealed with :func:`workstation.security.seal.seal` to the
site's recipients under the purpose ``"medws-result-v1"``::

    b"MWSR" || uint8 version (1) || uint32 n (big endian) || n bytes UTF-8 JSON || map bytes

The JSON document (schema 1)::

    {"schema": 1, "kind": "analysis", "result_id", "study" (the pseudonym), "created",
     "model": {"name", "version"}, "input_hash", "parameters",
     "findings": [{"label", "text", "values"}],
     "maps": [{"method", "meta", "size", "sha256", "offset"}]}

``offset`` counts from the first byte after the JSON. The study's real identifiers never enter
the document: a :class:`~workstation.store.Result` carries only the pseudonym, and keys that
name identifiers (``identifiers``, ``patient_id``, ``study_uid`` ...) are dropped from
parameters, finding values and map metadata wherever they are nested. Finding text is kept: the
whole container is end-to-end encrypted for the site; the registry sees ciphertext only.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workstation.security.seal import RecipientKey, RecipientPublicKey, open_sealed, seal

if TYPE_CHECKING:
    from workstation.store import Result, ResultStore

__all__ = [
    "IDENTIFIER_KEYS",
    "PURPOSE",
    "ResultPayload",
    "build_document",
    "decode",
    "encode",
    "open_payload",
    "seal_result",
]

PURPOSE = "medws-result-v1"
SCHEMA = 1
MAGIC = b"MWSR"
VERSION = 1
_HEAD = struct.Struct(">4sBI")

IDENTIFIER_KEYS = frozenset(
    {
        "identifiers",
        "patientname",
        "patientid",
        "patientbirthdate",
        "birthdate",
        "patientaddress",
        "otherpatientids",
        "studyuid",
        "studyinstanceuid",
        "seriesuid",
        "seriesinstanceuid",
        "sopinstanceuid",
        "sopuid",
        "accessionnumber",
        "accession",
        "institutionname",
        "referringphysicianname",
        "medicalrecordnumber",
        "mrn",
    }
)
"""Key names (lower case, without ``_ - space``) that are never sent."""


def _normal(key: str) -> str:
    return "".join(c for c in key.lower() if c not in "_- ")


def scrub(value: Any) -> Any:
    """``value`` with every mapping key naming an identifier removed, recursively."""
    if isinstance(value, Mapping):
        return {
            str(k): scrub(v) for k, v in value.items() if _normal(str(k)) not in IDENTIFIER_KEYS
        }
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value


@dataclass(frozen=True)
class ResultPayload:
    """An opened container: the JSON document and the maps' bytes, in document order."""

    document: dict[str, Any]
    maps: tuple[bytes, ...]


def build_document(result: Result, maps: Sequence[bytes]) -> ResultPayload:
    """The de-identified document of ``result``; ``maps`` are its maps' bytes, in order."""
    if len(maps) != len(result.maps):
        raise ValueError("one bytes object per map is needed")
    entries, offset = [], 0
    for header, data in zip(result.maps, maps, strict=True):
        entries.append(
            {
                "method": header.method,
                "meta": scrub(dict(header.meta)),
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "offset": offset,
            }
        )
        offset += len(data)
    document = {
        "schema": SCHEMA,
        "kind": "analysis",
        "result_id": result.id,
        "study": result.study,
        "created": result.created,
        "model": {"name": result.model_name, "version": result.model_version},
        "input_hash": result.input_hash,
        "parameters": scrub(dict(result.parameters)),
        "findings": [
            {"label": f.label, "text": f.text, "values": scrub(dict(f.values))}
            for f in result.findings
        ],
        "maps": entries,
    }
    return ResultPayload(document, tuple(bytes(m) for m in maps))


def encode(payload: ResultPayload) -> bytes:
    """The container's plaintext bytes."""
    text = json.dumps(payload.document, ensure_ascii=False, sort_keys=True, allow_nan=False)
    head = text.encode("utf-8")
    return b"".join([_HEAD.pack(MAGIC, VERSION, len(head)), head, *payload.maps])


def decode(plaintext: bytes) -> ResultPayload:
    """Inverse of :func:`encode`; ``ValueError`` if malformed or a map's digest differs."""
    if len(plaintext) < _HEAD.size:
        raise ValueError("not a result container: too short")
    magic, version, length = _HEAD.unpack_from(plaintext)
    if magic != MAGIC or version != VERSION:
        raise ValueError("not a result container (unknown format or version)")
    end = _HEAD.size + length
    if len(plaintext) < end:
        raise ValueError("truncated result container")
    document = json.loads(plaintext[_HEAD.size : end].decode("utf-8"))
    body = memoryview(plaintext)[end:]
    maps = []
    for entry in document.get("maps", []):
        start, size = int(entry["offset"]), int(entry["size"])
        data = bytes(body[start : start + size])
        if len(data) != size or hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise ValueError("a map in the result container is truncated or altered")
        maps.append(data)
    return ResultPayload(document, tuple(maps))


def seal_result(
    store: ResultStore, result_id: str, recipients: Sequence[RecipientPublicKey]
) -> bytes:
    """Read ``result_id`` (audited as an export), build, encode and seal it."""
    result = store.get_result(result_id, purpose="export")
    maps = [store.read_map(m.id, purpose="export") for m in result.maps]
    return seal(encode(build_document(result, maps)), _distinct(recipients), purpose=PURPOSE)


def _distinct(recipients: Sequence[RecipientPublicKey]) -> list[RecipientPublicKey]:
    seen: dict[str, RecipientPublicKey] = {}
    for key in recipients:
        seen.setdefault(key.key_id, key)
    if not seen:
        raise ValueError("no recipients to seal the result to")
    return list(seen.values())


def open_payload(blob: bytes, recipient_key: RecipientKey) -> ResultPayload:
    """Open a sealed result with one recipient's private key (``DecryptionError``,
    ``ValueError``)."""
    return decode(open_sealed(blob, recipient_key, purpose=PURPOSE))

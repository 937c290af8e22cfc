"""The registry's side of the signed model metadata (see :mod:`.routes_model_updates`): the
stored documents, and the snapshots and timestamps the registry signs with its ``registry``
role key."""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

import sqlalchemy as sa
from fastapi import HTTPException
from sqlalchemy.orm import Session

from workstation.registry.db import stamp
from workstation.registry.models import ModelMetadata

__all__ = [
    "NO_KEY",
    "ROLES",
    "document",
    "issue",
    "put",
    "registry_key",
    "renew",
    "stored",
    "trust",
]

log = logging.getLogger(__name__)

ROLES = ("timestamp", "snapshot", "targets")
SNAPSHOT_TTL = dt.timedelta(days=7)
TIMESTAMP_TTL = dt.timedelta(days=1)
TIMESTAMP_RENEW = dt.timedelta(hours=12)  # re-issue a timestamp expiring sooner than this
SNAPSHOT_RENEW = dt.timedelta(days=1)  # ... and a snapshot
NO_KEY = "no registry signing key configured (serve --registry-key FILE)"


def trust(settings: Any) -> Any:
    from workstation.security.errors import SecurityError
    from workstation.security.trust import TrustRoots, shipped_root_path

    try:
        return TrustRoots.load(settings.trust_root or shipped_root_path())
    except SecurityError as error:
        raise HTTPException(
            503, detail=f"the registry's trust root is not usable: {error}"
        ) from None


def registry_key(settings: Any) -> Any:
    """The registry role's signing key (503 when none is configured or it cannot be read)."""
    from workstation.security.sign import HybridSigningKey

    if settings.registry_key is None:
        raise HTTPException(503, detail=NO_KEY)
    try:
        return HybridSigningKey.from_private_bytes(settings.registry_key.read_bytes())
    except (OSError, ValueError) as error:
        raise HTTPException(
            503, detail=f"the registry signing key is not usable: {error}"
        ) from None


def stored(session: Session, *, lock: bool = False) -> dict[str, ModelMetadata]:
    stmt = sa.select(ModelMetadata)
    if lock and session.bind is not None and session.bind.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return {row.role: row for row in session.scalars(stmt)}


def put(session: Session, rows: dict[str, ModelMetadata], role: str, raw: bytes) -> None:
    version = int(json.loads(raw)["signed"]["version"])
    row = rows.get(role)
    if row is None:
        row = ModelMetadata(role=role, version=version, raw=raw, updated=stamp())
        session.add(row)
        rows[role] = row
    else:
        row.version, row.raw, row.updated = version, raw, stamp()


def issue(
    session: Session,
    rows: dict[str, ModelMetadata],
    key: Any,
    trust: Any,
    now: dt.datetime,
    *,
    snapshot: bool,
) -> None:
    """Sign and store a new timestamp (and first a new snapshot when ``snapshot``), each one
    version above the stored one; checked against the trust root before it is stored."""
    from workstation.security._model_metadata_checks import (
        SNAPSHOT,
        TIMESTAMP,
        MetadataError,
        parse,
    )
    from workstation.security.model_metadata import sign_metadata, snapshot_signed, timestamp_signed

    def version(role: str) -> int:
        return rows[role].version + 1 if role in rows else 1

    try:
        if snapshot:
            signed = snapshot_signed(
                rows["targets"].raw, version=version("snapshot"), expires=now + SNAPSHOT_TTL
            )
            raw = sign_metadata(signed, keys=[key])
            parse(SNAPSHOT, raw, trust, now)
            put(session, rows, "snapshot", raw)
        signed = timestamp_signed(
            rows["snapshot"].raw, version=version("timestamp"), expires=now + TIMESTAMP_TTL
        )
        raw = sign_metadata(signed, keys=[key])
        parse(TIMESTAMP, raw, trust, now)
    except MetadataError as error:
        raise HTTPException(
            503, detail=f"the registry key is not a trusted registry key: {error}"
        ) from None
    put(session, rows, "timestamp", raw)


def document(row: ModelMetadata) -> Any:
    """The stored document's parsed parts, unverified (it was verified when stored)."""
    from workstation.security._model_metadata_checks import DOC_TYPES, Document
    from workstation.security.trust import parse_time

    signed = json.loads(row.raw)["signed"]
    expires = parse_time(signed["expires"], "expires")
    return Document(DOC_TYPES[row.role], row.raw, signed, int(signed["version"]), expires)


def renew(db: Any, settings: Any, now: dt.datetime) -> None:
    """Re-issue the timestamp (and the snapshot) when they are about to expire. Without a
    usable registry key the stored documents stay as they are (logged): clients judge expiry."""
    if settings.registry_key is None:
        return
    try:
        with db.sessions.begin() as session:
            rows = stored(session, lock=True)
            if set(rows) != set(ROLES):
                return
            snapshot = document(rows["snapshot"]).expires - now < SNAPSHOT_RENEW
            if not snapshot and document(rows["timestamp"]).expires - now >= TIMESTAMP_RENEW:
                return
            issue(session, rows, registry_key(settings), trust(settings), now, snapshot=snapshot)
    except HTTPException as error:
        log.warning("model metadata not renewed: %s", error.detail)

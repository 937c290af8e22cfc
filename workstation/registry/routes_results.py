"""Sealed results: workstations upload ciphertext the registry cannot open; users fetch it.

``POST /results`` takes the sealed message (:func:`workstation.security.seal.seal` wire format)
as the raw body with an ``Idempotency-Key``. Exactly once: the body is streamed to a temporary
file in ``settings.blobs`` (hashed as it arrives, fsynced), renamed to ``blobs/<id>``, and only
then is the row inserted, in one transaction with its audit event and webhook deliveries. A
retry with the same key returns the stored result (200, ``duplicate: true``) and never stores a
second copy; the same key with a different body is a conflict (409).

A crash between the rename and the commit leaves a blob file without a row. It is harmless: no
row points at it, nothing serves it, and the retry stores the result under a new id (the
orphan can be swept by age). The registry only reads the recipient key ids from the header
(:func:`~workstation.security.seal.recipients_of`); a body that does not parse is refused (422).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from workstation.registry import audit, webhooks
from workstation.registry.db import new_id, stamp
from workstation.registry.identity import Identity, require
from workstation.registry.models import Role, SealedResult
from workstation.registry.pagination import Cursor, Limit, page
from workstation.security import seal
from workstation.security.errors import DecryptionError

__all__ = ["Spooled", "audited_file", "keyset_page", "router", "spool_body"]

router = APIRouter(tags=["results"])

_KIND = re.compile(r"^[a-z0-9][a-z0-9._-]{0,49}$")
_CHUNK = 1024 * 1024


@dataclass
class Spooled:
    """A request body written to a temporary file: its path, SHA-256 and size."""

    path: Path
    sha256: str
    size: int
    content_type: str


def _too_large(limit: int) -> HTTPException:
    return HTTPException(413, detail=f"the body is larger than {limit} bytes")


async def spool_body(request: Request, folder: Path, limit: int) -> Spooled:
    """Stream ``request``'s body into a new file in ``folder`` (413 past ``limit`` bytes)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f".upload-{new_id()}"
    sha, size = hashlib.sha256(), 0
    try:
        with open(path, "xb") as handle:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                sha.update(chunk)
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    content_type = request.headers.get("content-type", "application/octet-stream")
    return Spooled(path, sha.hexdigest(), size, content_type)


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


async def _upload(request: Request) -> AsyncIterator[Spooled]:
    settings = request.app.state.settings
    spooled = await spool_body(request, settings.blobs, settings.max_upload_bytes)
    try:
        yield spooled
    finally:
        spooled.path.unlink(missing_ok=True)  # renamed into place when accepted


Upload = Annotated[Spooled, Depends(_upload)]
Workstation = Annotated[Identity, Depends(require(Role.WORKSTATION))]
Anyone = Annotated[
    Identity, Depends(require(Role.ADMIN, Role.CLINICIAN, Role.VIEWER, Role.WORKSTATION))
]
Downloader = Annotated[Identity, Depends(require(Role.ADMIN, Role.CLINICIAN, Role.WORKSTATION))]


def _recipients(path: Path) -> list[str]:
    """The key ids in a sealed message's header, reading only the header (422 if malformed)."""
    with open(path, "rb") as handle:
        start = handle.read(6)
        count = int.from_bytes(start[4:6], "big") if len(start) == 6 else 0
        rest = 6 + count * seal.ENTRY_SIZE + seal.NONCE_SIZE + seal.TAG_SIZE - len(start)
        prefix = start + handle.read(max(0, rest))
    try:
        return seal.recipients_of(prefix)
    except DecryptionError as error:
        raise HTTPException(422, detail=f"the body is not a sealed result: {error}") from None


def keyset_page(
    session: Session,
    stmt: Any,
    time_column: Any,
    id_column: Any,
    *,
    limit: int,
    cursor: str | None,
) -> tuple[list[Any], str | None]:
    """One page ordered by ``time|id`` (unique, sortable), with an opaque cursor."""
    key = time_column + "|" + id_column
    if cursor:
        stmt = stmt.where(key > cursor)
    rows = list(session.scalars(stmt.order_by(time_column, id_column).limit(limit + 1)))
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    return rows, f"{getattr(last, time_column.key)}|{getattr(last, id_column.key)}"


def describe(row: SealedResult) -> dict[str, Any]:
    return {
        "id": row.id,
        "site_id": row.site_id,
        "workstation_id": row.workstation_id,
        "kind": row.kind,
        "size": row.size,
        "sha256": row.sha256,
        "received": row.received,
        "recipients": json.loads(row.recipients),
    }


def _receipt(row: SealedResult, duplicate: bool) -> dict[str, Any]:
    return {
        "id": row.id,
        "sha256": row.sha256,
        "size": row.size,
        "received": row.received,
        "duplicate": duplicate,
    }


def _existing(session: Session, workstation_id: str, key: str) -> SealedResult | None:
    return session.scalars(
        sa.select(SealedResult).where(
            SealedResult.workstation_id == workstation_id, SealedResult.idempotency_key == key
        )
    ).first()


def _replay(row: SealedResult, sha256: str, response: Response) -> dict[str, Any]:
    if row.sha256 != sha256:
        raise HTTPException(409, detail="this Idempotency-Key was used for a different body")
    response.status_code = 200
    return _receipt(row, duplicate=True)


@router.post("/results", status_code=201, summary="Upload a sealed result (workstations)")
def upload_result(
    request: Request,
    response: Response,
    identity: Workstation,
    upload: Upload,
    idempotency_key: Annotated[str, Header(min_length=1, max_length=200)],
    x_result_kind: Annotated[str, Header()] = "analysis",
) -> dict[str, Any]:
    """Store the body (a sealed message) once per ``Idempotency-Key``; 201 new, 200 replay."""
    if not _KIND.match(x_result_kind):
        raise HTTPException(422, detail="X-Result-Kind: lowercase letters, digits, . _ -")
    if identity.site_id is None:
        raise HTTPException(403, detail="this workstation belongs to no site")
    db = request.app.state.db
    with db.sessions() as session:
        found = _existing(session, identity.id, idempotency_key)
        if found is not None:
            return _replay(found, upload.sha256, response)
    recipients = _recipients(upload.path)
    blobs: Path = request.app.state.settings.blobs
    result_id = new_id()
    target = blobs / result_id
    os.replace(upload.path, target)
    fsync_dir(blobs)
    row = SealedResult(
        id=result_id,
        site_id=identity.site_id,
        workstation_id=identity.id,
        idempotency_key=idempotency_key,
        kind=x_result_kind,
        size=upload.size,
        sha256=upload.sha256,
        recipients=json.dumps(recipients),
        received=stamp(),
    )
    try:
        with db.sessions.begin() as session:
            session.add(row)
            session.flush()
            audit.record(
                session,
                actor=identity.actor,
                action="result.receive",
                object_type="result",
                object_id=result_id,
                details={"size": upload.size, "kind": x_result_kind},
            )
            payload = {"result_id": result_id, "site_id": identity.site_id, "size": upload.size}
            webhooks.enqueue(session, "result.received", identity.site_id, payload)
    except IntegrityError:
        target.unlink(missing_ok=True)  # a concurrent retry won; ours is an unreferenced copy
        with db.sessions() as session:
            found = _existing(session, identity.id, idempotency_key)
        if found is None:
            raise
        return _replay(found, upload.sha256, response)
    response.headers["Location"] = f"/results/{result_id}"
    return _receipt(row, duplicate=False)


@router.get("/results", summary="List sealed results (a site's; every site for admins)")
def list_results(
    request: Request,
    identity: Anyone,
    limit: Limit = 100,
    cursor: Cursor = None,
    site_id: Annotated[str | None, Query(max_length=36)] = None,
) -> dict[str, Any]:
    """Results by time received; admins see every site (or ``site_id``), others their own."""
    if identity.role is not Role.ADMIN:
        if site_id is not None and site_id != identity.site_id:
            raise HTTPException(403, detail="another site's results")
        site_id = identity.site_id
        if site_id is None:
            raise HTTPException(403, detail="this identity belongs to no site")
    stmt = sa.select(SealedResult)
    if site_id is not None:
        stmt = stmt.where(SealedResult.site_id == site_id)
    with request.app.state.db.sessions() as session:
        rows, next_cursor = keyset_page(
            session, stmt, SealedResult.received, SealedResult.id, limit=limit, cursor=cursor
        )
    return page([describe(r) for r in rows], next_cursor)


def audited_file(
    session: Session,
    identity: Identity,
    path: Path,
    *,
    action: str,
    object_type: str,
    object_id: str,
    details: dict[str, Any],
    filename: str,
    sha256: str,
    missing: str,
) -> FileResponse:
    """Record the download in ``session``'s transaction and stream ``path`` (410 if it is gone)."""
    if not path.is_file():
        raise HTTPException(410, detail=missing)
    audit.record(
        session,
        actor=identity.actor,
        action=action,
        object_type=object_type,
        object_id=object_id,
        details=details,
    )
    return FileResponse(
        path,
        media_type="application/octet-stream",
        filename=filename,
        headers={"X-Content-SHA256": sha256},
    )


def _visible(session: Session, identity: Identity, result_id: str) -> SealedResult:
    row = session.get(SealedResult, result_id)
    if row is None:
        raise HTTPException(404, detail="no such result")
    if not identity.may_see_site(row.site_id):
        raise HTTPException(403, detail="another site's result")
    return row


@router.get("/results/{result_id}", summary="A sealed result's metadata")
def get_result(request: Request, identity: Anyone, result_id: str) -> dict[str, Any]:
    with request.app.state.db.sessions() as session:
        return describe(_visible(session, identity, result_id))


@router.get("/results/{result_id}/blob", summary="Download a sealed result (ciphertext)")
def get_blob(request: Request, identity: Downloader, result_id: str) -> FileResponse:
    """The sealed message exactly as uploaded (viewers may not download)."""
    blobs: Path = request.app.state.settings.blobs
    with request.app.state.db.sessions.begin() as session:
        row = _visible(session, identity, result_id)
        return audited_file(
            session,
            identity,
            blobs / row.id,
            action="result.download",
            object_type="result",
            object_id=row.id,
            details={"size": row.size},
            filename=f"{row.id}.mws",
            sha256=row.sha256,
            missing="the result's blob is missing from storage",
        )

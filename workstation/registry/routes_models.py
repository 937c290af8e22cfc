"""The model catalogue: admins publish signed model bundles (``.mwb``) to a channel, for one
site or all; workstations and clinicians download them.

A bundle is verified before it is accepted: :func:`~workstation.security.bundle.open_bundle`
against the trust root (``settings.trust_root`` or the shipped one), kind ``model``, then every
payload byte (``verify_payload``). A tampered, expired or untrusted bundle is refused (422,
with the reason). Accepted bundles are stored content-addressed as ``bundles/<sha256>.mwb``
(one file for every release of the same bytes). The body is either the bundle itself
(``application/octet-stream``, with ``?channel=&site_id=``) or a multipart form with the file
in ``bundle`` (or ``file``) and the fields ``channel`` and ``site_id``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from workstation.registry import audit, webhooks
from workstation.registry.db import new_id, stamp
from workstation.registry.identity import Identity, require
from workstation.registry.models import ModelRelease, Role, Site
from workstation.registry.pagination import Cursor, Limit, page
from workstation.registry.routes_results import (
    Spooled,
    audited_file,
    fsync_dir,
    keyset_page,
    spool_body,
)

__all__ = ["CHANNELS", "MAX_BUNDLE_BYTES", "router"]

router = APIRouter(tags=["models"])

CHANNELS = ("shadow", "canary", "stable")
MAX_BUNDLE_BYTES = 8 * 1024**3  # models are larger than results; bounded by the disk anyway


async def _multipart(request: Request, spooled: Spooled, folder: Path) -> dict[str, str]:
    """Replace ``spooled`` by the form's ``bundle``/``file`` part; returns the text fields."""
    from starlette.datastructures import UploadFile

    fields: dict[str, str] = {}
    async with request.form(max_files=1, max_fields=10) as form:
        upload = form.get("bundle") or form.get("file")
        if not isinstance(upload, UploadFile):
            raise HTTPException(422, detail="the form needs the bundle file in 'bundle'")
        for name in ("channel", "site_id"):
            value = form.get(name)
            if isinstance(value, str) and value:
                fields[name] = value
        path = folder / f".upload-{new_id()}"
        sha, size = hashlib.sha256(), 0
        with open(path, "xb") as handle:
            while chunk := await upload.read(1024 * 1024):
                sha.update(chunk)
                size += len(chunk)
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
    spooled.path.unlink(missing_ok=True)
    spooled.path, spooled.sha256, spooled.size = path, sha.hexdigest(), size
    return fields


class _Upload:
    """The spooled bundle and its publication fields (query string or form)."""

    def __init__(self, spooled: Spooled, fields: dict[str, str]) -> None:
        self.spooled = spooled
        self.fields = fields


async def _upload(request: Request) -> AsyncIterator[_Upload]:
    settings = request.app.state.settings
    spooled = await spool_body(request, settings.bundles, MAX_BUNDLE_BYTES)
    try:
        fields = {k: v for k, v in request.query_params.items() if k in ("channel", "site_id")}
        if spooled.content_type.startswith("multipart/form-data"):
            spooled_body = spooled.path
            # The stream was consumed into the file; the form parser reads the cached body.
            request._body = spooled_body.read_bytes()
            fields.update(await _multipart(request, spooled, settings.bundles))
            spooled_body.unlink(missing_ok=True)
        yield _Upload(spooled, fields)
    finally:
        spooled.path.unlink(missing_ok=True)  # renamed into place when accepted


Upload = Annotated[_Upload, Depends(_upload)]
Admin = Annotated[Identity, Depends(require(Role.ADMIN))]
Anyone = Annotated[
    Identity, Depends(require(Role.ADMIN, Role.CLINICIAN, Role.VIEWER, Role.WORKSTATION))
]
Downloader = Annotated[Identity, Depends(require(Role.ADMIN, Role.CLINICIAN, Role.WORKSTATION))]


def _verify(path: Path, settings: Any) -> tuple[str, str]:
    """The verified bundle's name and version (422 with the reason when it is not acceptable)."""
    from workstation.security.bundle import open_bundle
    from workstation.security.errors import SecurityError
    from workstation.security.trust import TrustRoots, shipped_root_path

    trust = TrustRoots.load(settings.trust_root or shipped_root_path())
    try:
        with open_bundle(path, trust=trust, kind="model") as bundle:
            bundle.verify_payload()
            return bundle.name, str(bundle.version)
    except SecurityError as error:
        raise HTTPException(422, detail=f"the bundle was refused: {error}") from None


def describe(row: ModelRelease) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "version": row.version,
        "channel": row.channel,
        "site_id": row.site_id,
        "sha256": row.sha256,
        "size": row.size,
        "published": row.published,
        "published_by": row.published_by,
    }


def _duplicate(session: Session, name: str, version: str, channel: str, site: str | None) -> bool:
    stmt = sa.select(ModelRelease.id).where(
        ModelRelease.name == name,
        ModelRelease.version == version,
        ModelRelease.channel == channel,
        ModelRelease.site_id.is_(None) if site is None else ModelRelease.site_id == site,
    )
    return session.execute(stmt).first() is not None


@router.post("/models", status_code=201, summary="Publish a signed model bundle (admins)")
def publish_model(request: Request, identity: Admin, upload: Upload) -> dict[str, Any]:
    """Verify the bundle, store it and list it in ``channel`` (for ``site_id`` or all sites)."""
    channel = upload.fields.get("channel", "")
    site_id = upload.fields.get("site_id") or None
    if channel not in CHANNELS:
        raise HTTPException(422, detail=f"channel must be one of {', '.join(CHANNELS)}")
    settings = request.app.state.settings
    db = request.app.state.db
    spooled = upload.spooled
    if spooled.size == 0:
        raise HTTPException(422, detail="the body is empty; send the bundle")
    name, version = _verify(spooled.path, settings)
    with db.sessions() as session:
        if site_id is not None and session.get(Site, site_id) is None:
            raise HTTPException(422, detail="no such site")
        if _duplicate(session, name, version, channel, site_id):
            raise HTTPException(409, detail=f"{name} {version} is already in {channel}")
    bundles: Path = settings.bundles
    os.replace(spooled.path, bundles / f"{spooled.sha256}.mwb")  # content-addressed
    fsync_dir(bundles)
    row = ModelRelease(
        id=new_id(),
        name=name,
        version=version,
        channel=channel,
        site_id=site_id,
        sha256=spooled.sha256,
        size=spooled.size,
        published=stamp(),
        published_by=identity.actor,
    )
    try:
        with db.sessions.begin() as session:
            session.add(row)
            session.flush()
            audit.record(
                session,
                actor=identity.actor,
                action="model.publish",
                object_type="model",
                object_id=row.id,
                details={"name": name, "version": version, "channel": channel},
            )
            payload = {
                "release_id": row.id,
                "name": name,
                "version": version,
                "channel": channel,
                "site_id": site_id,
                "sha256": row.sha256,
            }
            webhooks.enqueue(session, "model.published", site_id, payload)
    except IntegrityError:  # a concurrent publish of the same release (the file is shared)
        raise HTTPException(409, detail=f"{name} {version} is already in {channel}") from None
    return describe(row)


@router.get("/models", summary="List model releases (a site's and the global ones)")
def list_models(
    request: Request,
    identity: Anyone,
    limit: Limit = 100,
    cursor: Cursor = None,
    channel: Annotated[str | None, Query(max_length=20)] = None,
    name: Annotated[str | None, Query(max_length=100)] = None,
    site_id: Annotated[str | None, Query(max_length=36)] = None,
) -> dict[str, Any]:
    """Admins see every release (or one site's with ``site_id``); others their site's and the
    global ones."""
    stmt = sa.select(ModelRelease)
    if identity.role is Role.ADMIN:
        if site_id is not None:
            stmt = stmt.where(ModelRelease.site_id == site_id)
    else:
        if site_id is not None and site_id != identity.site_id:
            raise HTTPException(403, detail="another site's models")
        own = ModelRelease.site_id == identity.site_id
        stmt = stmt.where(sa.or_(ModelRelease.site_id.is_(None), own))
    if channel is not None:
        stmt = stmt.where(ModelRelease.channel == channel)
    if name is not None:
        stmt = stmt.where(ModelRelease.name == name)
    with request.app.state.db.sessions() as session:
        rows, next_cursor = keyset_page(
            session, stmt, ModelRelease.published, ModelRelease.id, limit=limit, cursor=cursor
        )
    return page([describe(r) for r in rows], next_cursor)


def _allowed(session: Session, identity: Identity, release_id: str) -> ModelRelease:
    row = session.get(ModelRelease, release_id)
    if row is None:
        raise HTTPException(404, detail="no such model release")
    if row.site_id is not None and not identity.may_see_site(row.site_id):
        raise HTTPException(403, detail="another site's model release")
    return row


@router.get("/models/{release_id}", summary="A model release")
def get_model(request: Request, identity: Anyone, release_id: str) -> dict[str, Any]:
    with request.app.state.db.sessions() as session:
        return describe(_allowed(session, identity, release_id))


@router.get("/models/{release_id}/bundle", summary="Download a model bundle")
def get_bundle(request: Request, identity: Downloader, release_id: str) -> FileResponse:
    """The signed bundle as published (viewers may list releases but not download them)."""
    bundles: Path = request.app.state.settings.bundles
    with request.app.state.db.sessions.begin() as session:
        row = _allowed(session, identity, release_id)
        return audited_file(
            session,
            identity,
            bundles / f"{row.sha256}.mwb",
            action="model.download",
            object_type="model",
            object_id=row.id,
            details={"name": row.name, "version": row.version},
            filename=f"{row.name}-{row.version}.mwb",
            sha256=row.sha256,
            missing="the bundle is missing from storage",
        )

"""Administration (admin only, except a site's recipients, which its workstations read):
sites, users, enrolment tokens, workstations and the audit chain's check.

Listings follow :mod:`workstation.registry.pagination` (``limit``, ``cursor``; ``items``,
``next_cursor``). Responses never include password hashes, key hashes or enrolment tokens
other than the one just issued.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from workstation.registry import audit, bootstrap
from workstation.registry.db import stamp
from workstation.registry.identity import DbSession, Identity, hash_key, require
from workstation.registry.models import (
    Challenge,
    EnrolmentToken,
    Role,
    Site,
    User,
    Workstation,
)
from workstation.registry.pagination import Cursor, Limit, page, paginate

__all__ = ["router"]

router = APIRouter(prefix="/admin", tags=["admin"])

Admin = Annotated[Identity, Depends(require(Role.ADMIN))]
AdminOrWorkstation = Annotated[Identity, Depends(require(Role.ADMIN, Role.WORKSTATION))]


class SiteRequest(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    recipients: list[dict[str, Any]] = Field(default_factory=list, max_length=50)


class UserRequest(BaseModel):
    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=1024)
    role: Role
    site_id: str | None = None


class EnrolmentRequest(BaseModel):
    site_id: str
    valid_s: int = Field(default=86_400, ge=60, le=30 * 86_400)


def _recipients(values: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Validated, canonical RecipientPublicKey JSON (422 on a malformed one)."""
    from workstation.security.errors import SecurityError
    from workstation.security.seal import RecipientPublicKey

    out = []
    for index, value in enumerate(values):
        try:
            out.append(RecipientPublicKey.from_json(value).to_json())
        except SecurityError as error:
            raise HTTPException(422, detail=f"recipients[{index}]: {error}") from None
    return out


def _site_json(site: Site) -> dict[str, Any]:
    return {
        "id": site.id,
        "name": site.name,
        "created": site.created,
        "recipients": json.loads(site.recipients or "[]"),
    }


def _user_json(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "role": user.role,
        "site_id": user.site_id,
        "created": user.created,
        "locked_until": user.locked_until,
        "failed_attempts": user.failed_attempts,
    }


def _workstation_json(ws: Workstation) -> dict[str, Any]:
    return {
        "id": ws.id,
        "name": ws.name,
        "site_id": ws.site_id,
        "enrolled": ws.enrolled,
        "revoked": ws.revoked,
        "signing_key_id": json.loads(ws.signing_key).get("key_id"),
        "recipient_key_id": json.loads(ws.recipient_key).get("key_id"),
    }


@router.post("/sites", status_code=201)
def create_site(body: SiteRequest, identity: Admin, session: DbSession) -> dict[str, Any]:
    """A new site, optionally with extra recipients its results are sealed to."""
    recipients = _recipients(body.recipients)
    try:
        site = bootstrap.create_site(
            session, body.name, recipients=recipients, actor=identity.actor
        )
    except ValueError as error:
        raise HTTPException(409, detail=str(error)) from None
    session.commit()
    return _site_json(site)


@router.get("/sites")
def list_sites(
    identity: Admin, session: DbSession, limit: Limit = 100, cursor: Cursor = None
) -> dict[str, Any]:
    """All sites, by id."""
    rows, next_cursor = paginate(session, sa.select(Site), Site.id, limit=limit, cursor=cursor)
    return page([_site_json(row) for row in rows], next_cursor)


@router.get("/sites/{site_id}/recipients")
def site_recipients(
    site_id: str, identity: AdminOrWorkstation, session: DbSession
) -> list[dict[str, Any]]:
    """Everyone a site's results are sealed to: its extra recipients and the recipient keys of
    its enrolled (not revoked) workstations. Admins, and workstations of that site only."""
    if identity.role is not Role.ADMIN and identity.site_id != site_id:
        raise HTTPException(403, detail="a workstation may only read its own site's recipients")
    site = session.get(Site, site_id)
    if site is None:
        raise HTTPException(404, detail="no such site")
    keys = list(json.loads(site.recipients or "[]"))
    stmt = sa.select(Workstation.recipient_key).where(
        Workstation.site_id == site_id, Workstation.revoked.is_(False)
    )
    keys += [json.loads(text) for text in session.scalars(stmt.order_by(Workstation.id))]
    out: dict[str, dict[str, Any]] = {}
    for key in keys:
        out.setdefault(str(key["key_id"]), {"key_id": str(key["key_id"]), "public": key})
    return list(out.values())


@router.post("/users", status_code=201)
def create_user(body: UserRequest, identity: Admin, session: DbSession) -> dict[str, Any]:
    """A new user (admins belong to no site; everyone else to one)."""
    if body.site_id is not None and session.get(Site, body.site_id) is None:
        raise HTTPException(422, detail="no such site")
    taken = sa.select(User.id).where(User.username == body.username)
    if session.scalars(taken).first() is not None:
        raise HTTPException(409, detail=f"a user named {body.username!r} exists already")
    try:
        user = bootstrap.create_user(
            session, body.username, body.password, body.role,
            site_id=body.site_id, actor=identity.actor,
        )  # fmt: skip
    except ValueError as error:
        raise HTTPException(422, detail=str(error)) from None
    session.commit()
    return _user_json(user)


@router.get("/users")
def list_users(
    identity: Admin, session: DbSession, limit: Limit = 100, cursor: Cursor = None
) -> dict[str, Any]:
    """All users, by id."""
    rows, next_cursor = paginate(session, sa.select(User), User.id, limit=limit, cursor=cursor)
    return page([_user_json(row) for row in rows], next_cursor)


@router.post("/users/{user_id}/unlock")
def unlock_user(user_id: str, identity: Admin, session: DbSession) -> dict[str, Any]:
    """Lift a lockout and reset the failed sign-in count."""
    user = session.get(User, user_id)
    if user is None:
        raise HTTPException(404, detail="no such user")
    user.failed_attempts = 0
    user.locked_until = None
    audit.record(
        session, actor=identity.actor, action="user.unlock", object_type="user",
        object_id=user.id,
    )  # fmt: skip
    session.commit()
    return _user_json(user)


@router.post("/enrolment-tokens", status_code=201)
def issue_enrolment_token(
    body: EnrolmentRequest, identity: Admin, session: DbSession
) -> dict[str, Any]:
    """A one-time enrolment token for a site (shown once; only its hash is kept)."""
    if session.get(Site, body.site_id) is None:
        raise HTTPException(404, detail="no such site")
    token = bootstrap.issue_enrolment_token(
        session, body.site_id, valid_s=body.valid_s, actor=identity.actor
    )
    row = session.scalars(
        sa.select(EnrolmentToken).where(EnrolmentToken.token_hash == hash_key(token))
    ).one()
    session.commit()
    return {"id": row.id, "site_id": row.site_id, "token": token, "expires": row.expires}


@router.get("/workstations")
def list_workstations(
    identity: Admin,
    session: DbSession,
    limit: Limit = 100,
    cursor: Cursor = None,
    site_id: str | None = None,
) -> dict[str, Any]:
    """Enrolled workstations (revoked ones included), by id; optionally of one site."""
    stmt = sa.select(Workstation)
    if site_id is not None:
        stmt = stmt.where(Workstation.site_id == site_id)
    rows, next_cursor = paginate(session, stmt, Workstation.id, limit=limit, cursor=cursor)
    return page([_workstation_json(row) for row in rows], next_cursor)


@router.post("/workstations/{workstation_id}/revoke")
def revoke_workstation(workstation_id: str, identity: Admin, session: DbSession) -> dict[str, Any]:
    """Revoke a workstation: its tokens stop working and it is no longer a recipient."""
    ws = session.get(Workstation, workstation_id)
    if ws is None:
        raise HTTPException(404, detail="no such workstation")
    ws.revoked = True
    session.execute(sa.delete(Challenge).where(Challenge.workstation_id == ws.id))
    audit.record(
        session, actor=identity.actor, action="workstation.revoke",
        object_type="workstation", object_id=ws.id, details={"site_id": ws.site_id},
    )  # fmt: skip
    session.commit()
    return _workstation_json(ws)


@router.get("/audit/verify")
def verify_audit(identity: Admin, session: DbSession) -> dict[str, Any]:
    """Check the audit trail's hash chain: ``ok`` and the problems found (each names its event)."""
    problems = audit.verify(session)
    return {"ok": not problems, "problems": problems, "checked_at": stamp()}

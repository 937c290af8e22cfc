"""Sign-in: users by password (argon2id, lockout), workstations by challenge-response (their
enrolled hybrid signing key), sign-out (token revocation) and API keys.

Choices: an unknown user and a wrong password get the same 401 and take about as long (a dummy
hash is verified); a locked account gets 423 saying until when (so lockout, unlike a wrong
password, reveals that the username exists: the price of telling a real user what happened).
``/auth/challenge`` answers 404 for an unknown or revoked workstation (workstation ids are
random UUIDs, not secrets worth hiding). A nonce is consumed by its first use, valid or not.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field

from workstation.registry import audit
from workstation.registry.db import new_id, stamp
from workstation.registry.identity import (
    DbSession,
    Identity,
    hash_key,
    issue_token,
    new_key,
    require,
)
from workstation.registry.models import ApiKey, Challenge, RevokedToken, Role, User, Workstation
from workstation.registry.pagination import Cursor, Limit, page, paginate
from workstation.registry.passwords import hash_password, needs_rehash, verify_password

__all__ = ["WORKSTATION_AUTH_CONTEXT", "router"]

router = APIRouter(prefix="/auth", tags=["auth"])

WORKSTATION_AUTH_CONTEXT = "medws-registry-auth"
_BAD_LOGIN = "unknown username or wrong password"

AnyUser = Annotated[Identity, Depends(require(Role.ADMIN, Role.CLINICIAN, Role.VIEWER))]
AnyCaller = Annotated[
    Identity, Depends(require(Role.ADMIN, Role.CLINICIAN, Role.VIEWER, Role.WORKSTATION))
]


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=1024)


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


class ChallengeResponse(BaseModel):
    nonce: str
    expires: str


class WorkstationLogin(BaseModel):
    workstation_id: str = Field(min_length=1, max_length=36)
    nonce: str = Field(min_length=64, max_length=64, pattern="^[0-9a-f]{64}$")
    signature: dict[str, Any]


class ApiKeyRequest(BaseModel):
    name: str = Field(min_length=1, max_length=100)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """A hash no password matches: verified for unknown users so they take as long."""
    return hash_password(secrets.token_urlsafe(24))


def _db(request: Request) -> Any:
    return request.app.state.db


def _settings(request: Request) -> Any:
    return request.app.state.settings


@router.post("/login", response_model=TokenResponse)
def login(body: LoginRequest, request: Request) -> TokenResponse:
    """A user's access token for username and password.

    The password is verified outside any transaction (argon2 is slow on purpose; holding the
    database's write lock meanwhile would serialise every sign-in); the outcome is then
    recorded in a short transaction that re-reads the user, so concurrent failures all count.
    """
    settings = _settings(request)
    db = _db(request)
    with db.sessions() as session:
        user = session.scalars(sa.select(User).where(User.username == body.username)).first()
        stored = user.password_hash if user is not None else None
        locked = user.locked_until if user is not None else None
    if locked is not None and locked > stamp():
        matches = False
    else:
        locked = None
        matches = verify_password(stored or _dummy_hash(), body.password)
    error: HTTPException | None = None
    identity: Identity | None = None
    actor = f"user:{body.username}"
    with db.sessions.begin() as session:
        user = session.scalars(sa.select(User).where(User.username == body.username)).first()
        if user is None or user.password_hash != stored:  # unknown (or changed meanwhile)
            audit.record(
                session, actor=actor, action="auth.login_failed", object_type="user",
                object_id=user.id if user is not None else "unknown",
            )  # fmt: skip
            error = HTTPException(401, detail=_BAD_LOGIN)
        elif locked is not None or (user.locked_until or "") > stamp():
            audit.record(
                session, actor=actor, action="auth.locked", object_type="user",
                object_id=user.id, details={"refused": True},
            )  # fmt: skip
            error = _locked(str(user.locked_until or locked))
        elif not matches:
            user.failed_attempts = (user.failed_attempts or 0) + 1
            audit.record(
                session, actor=actor, action="auth.login_failed", object_type="user",
                object_id=user.id, details={"attempts": user.failed_attempts},
            )  # fmt: skip
            error = HTTPException(401, detail=_BAD_LOGIN)
            if user.failed_attempts >= settings.lockout_attempts:
                user.failed_attempts = 0
                user.locked_until = stamp(plus=settings.lockout_s)
                audit.record(
                    session, actor=actor, action="auth.locked", object_type="user",
                    object_id=user.id, details={"seconds": settings.lockout_s},
                )  # fmt: skip
                error = _locked(user.locked_until)
        else:
            user.failed_attempts = 0
            user.locked_until = None
            if needs_rehash(user.password_hash):
                user.password_hash = hash_password(body.password)
            identity = Identity("user", user.id, user.username, Role(user.role), user.site_id)
            audit.record(
                session, actor=actor, action="auth.login", object_type="user", object_id=user.id
            )
    if error is not None or identity is None:  # the failure and its count are committed
        raise error or HTTPException(401, detail=_BAD_LOGIN)
    token, ttl = issue_token(settings, identity)
    return TokenResponse(access_token=token, expires_in=ttl)


def _locked(until: str) -> HTTPException:
    return HTTPException(
        423, detail=f"too many failed sign-ins: this account is locked until {until} "
        "(or until an administrator unlocks it)",
    )  # fmt: skip


@router.post("/logout", status_code=204)
def logout(identity: AnyCaller, session: DbSession) -> Response:
    """Revoke the access token this request carries."""
    if identity.jti is None:
        raise HTTPException(
            400, detail="an API key is not signed out; revoke it with DELETE /auth/api-keys/{id}"
        )
    expires = datetime.fromtimestamp(identity.expires or 0, UTC)
    if session.get(RevokedToken, identity.jti) is None:
        session.add(RevokedToken(jti=identity.jti, expires=stamp(expires)))
    audit.record(
        session, actor=identity.actor, action="auth.logout", object_type=identity.kind,
        object_id=identity.id,
    )  # fmt: skip
    session.commit()
    return Response(status_code=204)


@router.get("/challenge", response_model=ChallengeResponse)
def challenge(
    request: Request, workstation_id: Annotated[str, Query(min_length=1, max_length=36)]
) -> ChallengeResponse:
    """A single-use nonce for an enrolled workstation to sign (404: unknown or revoked)."""
    nonce = secrets.token_bytes(32).hex()
    expires = stamp(plus=_settings(request).challenge_ttl_s)
    with _db(request).sessions.begin() as session:
        row = session.get(Workstation, workstation_id)
        if row is None or row.revoked:
            raise HTTPException(404, detail="no enrolled workstation with this id (or revoked)")
        session.execute(sa.delete(Challenge).where(Challenge.expires < stamp()))
        session.add(Challenge(nonce=nonce, workstation_id=workstation_id, expires=expires))
    return ChallengeResponse(nonce=nonce, expires=expires)


@router.post("/workstation", response_model=TokenResponse)
def workstation_login(body: WorkstationLogin, request: Request) -> TokenResponse:
    """A workstation's access token for its signature over a fresh challenge nonce."""
    from workstation.security.errors import SecurityError
    from workstation.security.sign import HybridPublicKey, HybridSignature

    refused = HTTPException(401, detail="challenge refused: unknown, used or expired nonce")
    with _db(request).sessions.begin() as session:  # consume the nonce whatever follows
        row = session.get(Challenge, body.nonce)
        if row is None or row.workstation_id != body.workstation_id:
            row = None
        else:
            expired = row.expires < stamp()
            deleted = session.execute(sa.delete(Challenge).where(Challenge.nonce == body.nonce))
            if deleted.rowcount != 1 or expired:
                row = None
    if row is None:
        raise refused
    with _db(request).sessions.begin() as session:
        ws = session.get(Workstation, body.workstation_id)
        if ws is None or ws.revoked:
            raise HTTPException(401, detail="this workstation's enrolment was revoked")
        try:
            key = HybridPublicKey.from_json(_json(ws.signing_key))
            key.verify(
                HybridSignature.from_json(body.signature),
                bytes.fromhex(body.nonce),
                context=WORKSTATION_AUTH_CONTEXT,
            )
        except SecurityError:
            ok = False
        else:
            ok = True
        audit.record(
            session, actor=f"workstation:{ws.name}",
            action="auth.workstation" if ok else "auth.workstation_failed",
            object_type="workstation", object_id=ws.id,
        )  # fmt: skip
        identity = Identity("workstation", ws.id, ws.name, Role.WORKSTATION, ws.site_id)
    if not ok:
        raise HTTPException(401, detail="the signature does not verify with the enrolled key")
    token, ttl = issue_token(_settings(request), identity)
    return TokenResponse(access_token=token, expires_in=ttl)


def _json(text: str) -> Any:
    import json

    return json.loads(text)


def _key_json(row: ApiKey) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "created": row.created, "revoked": row.revoked}


@router.post("/api-keys", status_code=201)
def create_api_key(body: ApiKeyRequest, identity: AnyUser, session: DbSession) -> dict[str, Any]:
    """A new API key for the signed-in user: ``key`` is shown once, only its SHA-256 is kept."""
    if identity.kind != "user":
        raise HTTPException(403, detail="sign in with a password to create API keys")
    key = new_key("mwk_")
    row = ApiKey(
        id=new_id(), user_id=identity.id, key_hash=hash_key(key), name=body.name,
        created=stamp(), revoked=False,
    )  # fmt: skip
    session.add(row)
    session.flush()
    audit.record(
        session, actor=identity.actor, action="apikey.create", object_type="api_key",
        object_id=row.id,
    )  # fmt: skip
    session.commit()
    return {**_key_json(row), "key": key}


@router.get("/api-keys")
def list_api_keys(
    identity: AnyUser, session: DbSession, limit: Limit = 100, cursor: Cursor = None
) -> dict[str, Any]:
    """The caller's own API keys (never the keys themselves)."""
    stmt = sa.select(ApiKey).where(ApiKey.user_id == identity.id)
    rows, next_cursor = paginate(session, stmt, ApiKey.id, limit=limit, cursor=cursor)
    return page([_key_json(row) for row in rows], next_cursor)


@router.delete("/api-keys/{key_id}")
def revoke_api_key(key_id: str, identity: AnyUser, session: DbSession) -> dict[str, Any]:
    """Revoke an API key (its owner or an admin)."""
    row = session.get(ApiKey, key_id)
    if row is None or (row.user_id != identity.id and identity.role is not Role.ADMIN):
        raise HTTPException(404, detail="no such API key of yours")
    row.revoked = True
    audit.record(
        session, actor=identity.actor, action="apikey.revoke", object_type="api_key",
        object_id=row.id,
    )  # fmt: skip
    session.commit()
    return _key_json(row)

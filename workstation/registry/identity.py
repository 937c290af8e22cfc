"""Who is calling: access tokens (JWT, revocable), API keys, and role checks.

Every request but ``/health*``, ``/metrics``, the docs, ``/auth/*`` sign-in and ``/enrol``
carries ``Authorization: Bearer <access token>`` (a JWT issued by ``/auth/login`` to a user or
by ``/auth/workstation`` to an enrolled workstation, HS256 with the registry's secret, short
lived, revocable by its ``jti``) or ``X-API-Key: <key>`` (a user's key for automation; only its
SHA-256 is stored). :func:`require` turns that into an :class:`Identity` and checks the role.

Roles: ``admin`` (everything, every site), ``clinician`` (read their site's results and
models), ``viewer`` (list their site's results and models, no downloads), ``workstation``
(upload its site's results, pull its site's models).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session

from workstation.registry.db import new_id, stamp
from workstation.registry.models import ApiKey, RevokedToken, Role, User, Workstation

__all__ = [
    "DbSession",
    "Identity",
    "db_session",
    "hash_key",
    "issue_token",
    "new_key",
    "require",
    "settings_of",
]

ALGORITHM = "HS256"


@dataclass(frozen=True)
class Identity:
    """An authenticated caller."""

    kind: str  # "user" | "workstation" | "api-key"
    id: str  # user id or workstation id
    name: str  # username or workstation name (audit actor; never patient data)
    role: Role
    site_id: str | None
    jti: str | None = None
    expires: int | None = None

    @property
    def actor(self) -> str:
        return f"{self.kind}:{self.name}"

    def may_see_site(self, site_id: str | None) -> bool:
        return self.role is Role.ADMIN or (site_id is not None and site_id == self.site_id)


def settings_of(request: Request) -> Any:
    return request.app.state.settings


def db_session(request: Request) -> Any:
    """One database session per request."""
    with request.app.state.db.sessions() as session:
        yield session


DbSession = Annotated[Session, Depends(db_session)]
"""A route parameter: this request's database session."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key(prefix: str) -> str:
    """A random secret with a recognisable prefix (``mwk_`` API keys, ``mwe_`` enrolment)."""
    return f"{prefix}{secrets.token_urlsafe(32)}"


def issue_token(settings: Any, identity: Identity) -> tuple[str, int]:
    """A signed access token for ``identity`` and its lifetime in seconds."""
    import jwt

    issued = int(datetime.now(UTC).timestamp())
    claims = {
        "sub": identity.id,
        "kind": identity.kind,
        "name": identity.name,
        "role": identity.role.value,
        "site": identity.site_id,
        "iat": issued,
        "exp": issued + settings.token_ttl_s,
        "jti": new_id(),
    }
    return jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM), settings.token_ttl_s


def _unauthorised(detail: str) -> HTTPException:
    return HTTPException(401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def _from_token(token: str, settings: Any, session: Session) -> Identity:
    import jwt

    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret,
            algorithms=[ALGORITHM],
            options={"require": ["exp", "iat", "sub", "jti"]},
        )
    except jwt.ExpiredSignatureError:
        raise _unauthorised("the access token expired; sign in again") from None
    except jwt.InvalidTokenError:
        raise _unauthorised("the access token is not valid") from None
    if session.get(RevokedToken, str(claims["jti"])) is not None:
        raise _unauthorised("the access token was revoked")
    identity = Identity(
        kind=str(claims["kind"]),
        id=str(claims["sub"]),
        name=str(claims.get("name", "")),
        role=Role(claims["role"]),
        site_id=claims.get("site"),
        jti=str(claims["jti"]),
        expires=int(claims["exp"]),
    )
    if identity.kind == "workstation":
        row = session.get(Workstation, identity.id)
        if row is None or row.revoked:
            raise _unauthorised("this workstation's enrolment was revoked")
    elif session.get(User, identity.id) is None:
        raise _unauthorised("the user no longer exists")
    return identity


def _from_api_key(key: str, session: Session) -> Identity:
    row = session.scalars(sa.select(ApiKey).where(ApiKey.key_hash == hash_key(key))).first()
    if row is None or row.revoked:
        raise _unauthorised("unknown or revoked API key")
    user = session.get(User, row.user_id)
    if user is None:
        raise _unauthorised("the API key's user no longer exists")
    return Identity("api-key", user.id, user.username, Role(user.role), user.site_id)


def authenticate(request: Request, session: Session) -> Identity:
    """The caller of ``request`` (401 when there is none or it is not valid)."""
    settings = settings_of(request)
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return _from_token(header[7:].strip(), settings, session)
    key = request.headers.get("x-api-key")
    if key:
        return _from_api_key(key, session)
    raise _unauthorised("sign in first (Authorization: Bearer <token> or X-API-Key)")


def require(*roles: Role) -> Callable[..., Identity]:
    """A dependency: the authenticated caller, 403 unless its role is one of ``roles``."""
    allowed = set(roles)

    def dependency(request: Request, session: Annotated[Session, Depends(db_session)]) -> Identity:
        try:
            identity = authenticate(request, session)
        finally:
            # End the lookup's transaction: on SQLite every transaction is BEGIN IMMEDIATE, and
            # the handler's own transactions must not wait behind this one.
            session.rollback()
        request.state.identity = identity  # for the rate limiter and the access log
        if identity.role not in allowed:
            raise HTTPException(403, detail=f"a {identity.role.value} may not do this")
        return identity

    return dependency


def expired_revocations(session: Session) -> int:
    """Forget revocations of tokens that have expired anyway; returns how many."""
    result = session.execute(sa.delete(RevokedToken).where(RevokedToken.expires < stamp()))
    return int(result.rowcount or 0)

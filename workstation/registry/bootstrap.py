"""Administrative actions outside HTTP: the first admin, sites, enrolment tokens (the
``workstation-registry admin`` commands and the tests use them). Each is audited."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from workstation.registry import audit
from workstation.registry.db import new_id, stamp
from workstation.registry.identity import hash_key, new_key
from workstation.registry.models import EnrolmentToken, Role, Site, User
from workstation.registry.passwords import hash_password

__all__ = ["create_site", "create_user", "issue_enrolment_token"]


def create_site(
    session: Session, name: str, *, recipients: Sequence[Any] = (), actor: str = "admin-cli"
) -> Site:
    """A new site; ``recipients`` are RecipientPublicKey JSON objects its results are sealed to
    besides its workstations (e.g. a research recipient)."""
    if session.scalars(sa.select(Site).where(Site.name == name)).first() is not None:
        raise ValueError(f"a site named {name!r} exists already")
    site = Site(id=new_id(), name=name, recipients=json.dumps(list(recipients)), created=stamp())
    session.add(site)
    session.flush()
    audit.record(session, actor=actor, action="site.create", object_type="site", object_id=site.id)
    return site


def create_user(
    session: Session,
    username: str,
    password: str,
    role: Role | str,
    *,
    site_id: str | None = None,
    actor: str = "admin-cli",
) -> User:
    """A new user; every role but admin belongs to a site."""
    role = Role(role)
    if role is Role.WORKSTATION:
        raise ValueError("workstations enrol with a token; they are not users")
    if role is not Role.ADMIN and site_id is None:
        raise ValueError(f"a {role.value} belongs to a site")
    if session.scalars(sa.select(User).where(User.username == username)).first() is not None:
        raise ValueError(f"a user named {username!r} exists already")
    user = User(
        id=new_id(),
        username=username,
        role=role.value,
        site_id=site_id,
        password_hash=hash_password(password),
        created=stamp(),
    )
    session.add(user)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="user.create",
        object_type="user",
        object_id=user.id,
        details={"role": role.value},
    )
    return user


def issue_enrolment_token(
    session: Session, site_id: str, *, valid_s: int = 86_400, actor: str = "admin-cli"
) -> str:
    """A one-time enrolment token for ``site_id`` (shown once; only its hash is kept)."""
    if session.get(Site, site_id) is None:
        raise ValueError(f"no site {site_id}")
    token = new_key("mwe_")
    row = EnrolmentToken(
        id=new_id(),
        token_hash=hash_key(token),
        site_id=site_id,
        expires=stamp(plus=valid_s),
        created_by=actor,
    )
    session.add(row)
    session.flush()
    audit.record(
        session, actor=actor, action="enrolment.issue", object_type="site", object_id=site_id
    )
    return token

"""Enrolment: a workstation trades a one-time enrolment token for its registration.

The workstation sends its public keys (hybrid signing key for challenge-response sign-in,
recipient key results are sealed to); the token is claimed atomically, so of two concurrent
uses exactly one succeeds. Unknown or expired token: 401; used token: 409.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from workstation.registry import audit
from workstation.registry.db import new_id, stamp
from workstation.registry.identity import hash_key
from workstation.registry.models import EnrolmentToken, Site, Workstation

__all__ = ["router"]

router = APIRouter(tags=["enrolment"])


class EnrolRequest(BaseModel):
    token: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=200)
    signing_key: dict[str, Any]
    recipient_key: dict[str, Any]


class EnrolResponse(BaseModel):
    workstation_id: str
    site_id: str
    site_name: str


def _parse_keys(body: EnrolRequest) -> tuple[str, str]:
    """Both public keys as canonical JSON text (422 when either does not parse)."""
    from workstation.security.errors import SecurityError
    from workstation.security.seal import RecipientPublicKey
    from workstation.security.sign import HybridPublicKey

    try:
        signing = HybridPublicKey.from_json(body.signing_key).to_json()
    except SecurityError as error:
        raise HTTPException(
            422, detail=f"signing_key is not a hybrid public key: {error}"
        ) from None
    try:
        recipient = RecipientPublicKey.from_json(body.recipient_key).to_json()
    except SecurityError as error:
        raise HTTPException(
            422, detail=f"recipient_key is not a recipient public key: {error}"
        ) from None
    return json.dumps(signing, sort_keys=True), json.dumps(recipient, sort_keys=True)


@router.post("/enrol", status_code=201, response_model=EnrolResponse)
def enrol(body: EnrolRequest, request: Request) -> EnrolResponse:
    """Register a workstation with a one-time enrolment token."""
    signing, recipient = _parse_keys(body)
    token_hash = hash_key(body.token)
    workstation_id = new_id()
    with request.app.state.db.sessions.begin() as session:
        claimed = session.execute(
            sa.update(EnrolmentToken)
            .where(
                EnrolmentToken.token_hash == token_hash,
                EnrolmentToken.used_by.is_(None),
                EnrolmentToken.expires > stamp(),
            )
            .values(used_by=workstation_id)
        )
        token = session.scalars(
            sa.select(EnrolmentToken).where(EnrolmentToken.token_hash == token_hash)
        ).first()
        if claimed.rowcount != 1 or token is None:
            if token is None:
                raise HTTPException(401, detail="unknown enrolment token")
            if token.used_by is not None:
                raise HTTPException(409, detail="this enrolment token was used already")
            raise HTTPException(401, detail="this enrolment token expired; ask for a new one")
        site = session.get(Site, token.site_id)
        if site is None:  # pragma: no cover - foreign key
            raise HTTPException(401, detail="the enrolment token's site no longer exists")
        session.add(
            Workstation(
                id=workstation_id, site_id=site.id, name=body.name, signing_key=signing,
                recipient_key=recipient, enrolled=stamp(), revoked=False,
            )
        )  # fmt: skip
        session.flush()
        audit.record(
            session, actor=f"workstation:{body.name}", action="workstation.enrol",
            object_type="workstation", object_id=workstation_id,
            details={"site_id": site.id, "token_id": token.id},
        )  # fmt: skip
        return EnrolResponse(workstation_id=workstation_id, site_id=site.id, site_name=site.name)

"""Webhook administration (admins): subscribe a URL to events, list, delete, see deliveries.

The secret that signs deliveries (see :mod:`workstation.registry.webhooks`) is shown once, in
the answer to ``POST /admin/webhooks``; listings never include it.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, Field

from workstation.registry import audit
from workstation.registry.db import new_id, stamp
from workstation.registry.identity import Identity, require
from workstation.registry.models import Role, Site, Webhook, WebhookDelivery
from workstation.registry.pagination import Cursor, Limit, page, paginate
from workstation.registry.webhooks import EVENTS

__all__ = ["router"]

router = APIRouter(prefix="/admin/webhooks", tags=["webhooks"])
Admin = Annotated[Identity, Depends(require(Role.ADMIN))]


class NewWebhook(BaseModel):
    url: str = Field(max_length=500)
    events: list[str] = Field(min_length=1, max_length=len(EVENTS))
    site_id: str | None = Field(default=None, max_length=36)


def describe(hook: Webhook) -> dict[str, Any]:
    return {
        "id": hook.id,
        "url": hook.url,
        "events": hook.events.split(","),
        "site_id": hook.site_id,
        "created": hook.created,
    }


@router.post("", status_code=201, summary="Subscribe a URL to events")
def create_webhook(request: Request, identity: Admin, body: NewWebhook) -> dict[str, Any]:
    """Returns the webhook with its signing ``secret`` (shown only here)."""
    parts = urlsplit(body.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HTTPException(422, detail="url must be an http(s) URL")
    unknown = sorted(set(body.events) - EVENTS)
    if unknown:
        raise HTTPException(422, detail=f"unknown events: {', '.join(unknown)}")
    hook = Webhook(
        id=new_id(),
        url=body.url,
        secret=f"whsec_{secrets.token_urlsafe(32)}",
        events=",".join(sorted(set(body.events))),
        site_id=body.site_id,
        created=stamp(),
    )
    with request.app.state.db.sessions.begin() as session:
        if body.site_id is not None and session.get(Site, body.site_id) is None:
            raise HTTPException(422, detail="no such site")
        session.add(hook)
        session.flush()
        audit.record(
            session,
            actor=identity.actor,
            action="webhook.create",
            object_type="webhook",
            object_id=hook.id,
            details={"events": hook.events},
        )
    return {**describe(hook), "secret": hook.secret}


@router.get("", summary="List webhooks (without secrets)")
def list_webhooks(
    request: Request, _identity: Admin, limit: Limit = 100, cursor: Cursor = None
) -> dict[str, Any]:
    with request.app.state.db.sessions() as session:
        rows, next_cursor = paginate(
            session, sa.select(Webhook), Webhook.id, limit=limit, cursor=cursor
        )
    return page([describe(r) for r in rows], next_cursor)


@router.delete("/{webhook_id}", status_code=204, summary="Delete a webhook and its deliveries")
def delete_webhook(request: Request, identity: Admin, webhook_id: str) -> Response:
    with request.app.state.db.sessions.begin() as session:
        hook = session.get(Webhook, webhook_id)
        if hook is None:
            raise HTTPException(404, detail="no such webhook")
        session.execute(sa.delete(WebhookDelivery).where(WebhookDelivery.webhook_id == hook.id))
        session.delete(hook)
        audit.record(
            session,
            actor=identity.actor,
            action="webhook.delete",
            object_type="webhook",
            object_id=webhook_id,
        )
    return Response(status_code=204)


@router.get("/{webhook_id}/deliveries", summary="A webhook's deliveries")
def list_deliveries(
    request: Request,
    _identity: Admin,
    webhook_id: str,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Each delivery's event, state (pending, done, failed), attempts and last error."""
    with request.app.state.db.sessions() as session:
        if session.get(Webhook, webhook_id) is None:
            raise HTTPException(404, detail="no such webhook")
        stmt = sa.select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
        rows, next_cursor = paginate(session, stmt, WebhookDelivery.id, limit=limit, cursor=cursor)
    items = [
        {
            "id": r.id,
            "event": r.event,
            "state": r.state,
            "attempts": r.attempts,
            "next_attempt": r.next_attempt,
            "last_error": r.last_error,
        }
        for r in rows
    ]
    return page(items, next_cursor)

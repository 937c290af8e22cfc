"""Outgoing webhooks: events are queued in the caller's transaction and delivered by a thread.

:func:`enqueue` adds one :class:`WebhookDelivery` per subscribed webhook in the same
transaction as the change it reports, so an event is queued exactly when its change commits.
The :class:`Dispatcher` POSTs due deliveries as JSON ``{"event", "id", "time", "data"}`` with

* ``X-Medws-Event``: the event name,
* ``X-Medws-Delivery``: the delivery id (stable across retries: receivers de-duplicate on it),
* ``X-Medws-Timestamp``: Unix seconds of this attempt,
* ``X-Medws-Signature``: ``sha256=<hex HMAC-SHA256(secret, raw body)>``
  (check it with :func:`verify_signature`).

A 2xx answer completes the delivery; anything else (or no answer in 5 s) is retried after
``2**attempts`` seconds (capped at 300 s, ±20 % jitter) until ``settings.webhook_attempts``
attempts, then the delivery is ``failed``. Delivery is at least once: a dispatcher claims a
delivery (pushes its ``next_attempt`` forward by a lease) before sending, so several workers do
not send it at the same time, but a crash after sending and before recording sends it again.
Payloads carry ids, sizes and names only, never patient data (:func:`enqueue` refuses nested
values).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.orm import Session

from workstation.registry.db import new_id, now, stamp
from workstation.registry.models import Webhook, WebhookDelivery

__all__ = ["EVENTS", "Dispatcher", "enqueue", "sign", "verify_signature"]

log = logging.getLogger(__name__)

EVENTS = frozenset({"result.received", "model.published"})
TIMEOUT_S = 5.0
MAX_BACKOFF_S = 300.0
LEASE_S = 60.0  # a claimed delivery is not picked up again for this long
BATCH = 50


def sign(secret: str, body: bytes) -> str:
    """The ``X-Medws-Signature`` header value for ``body``."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` (``X-Medws-Signature``) is ``body``'s signature (constant time)."""
    if not header or not header.startswith("sha256="):
        return False
    return hmac.compare_digest(sign(secret, body).encode(), header.strip().encode())


def _matches(hook: Webhook, event: str, site_id: str | None) -> bool:
    if event not in {e.strip() for e in hook.events.split(",")}:
        return False
    # A site's event goes to that site's webhooks and the global ones; a global event
    # (e.g. a model released to every site) goes to all.
    return hook.site_id is None or site_id is None or hook.site_id == site_id


def enqueue(
    session: Session, event: str, site_id: str | None, payload: Mapping[str, Any]
) -> list[WebhookDelivery]:
    """Queue ``event`` for every webhook subscribed to it, in ``session``'s transaction.

    ``payload`` values are str, int, float, bool or None (ids and sizes, never patient data).
    Returns the deliveries added (flushed, not committed).
    """
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}")
    for key, value in payload.items():
        if value is not None and not isinstance(value, str | int | float | bool):
            raise TypeError(f"webhook payload value {key!r} must be a scalar")
    hooks = session.scalars(sa.select(Webhook).where(Webhook.events.contains(event))).all()
    deliveries: list[WebhookDelivery] = []
    moment = stamp()
    for hook in hooks:
        if not _matches(hook, event, site_id):
            continue
        delivery_id = new_id()
        body = {"event": event, "id": delivery_id, "time": moment, "data": dict(payload)}
        deliveries.append(
            WebhookDelivery(
                id=delivery_id,
                webhook_id=hook.id,
                event=event,
                body=json.dumps(body, sort_keys=True, separators=(",", ":")),
                state="pending",
                attempts=0,
                next_attempt=moment,
            )
        )
    session.add_all(deliveries)
    session.flush()
    return deliveries


def backoff_s(attempts: int) -> float:
    """Seconds to wait after ``attempts`` failed attempts (exponential, capped, jittered)."""
    base = min(float(2 ** min(attempts, 16)), MAX_BACKOFF_S)
    return base * random.uniform(0.8, 1.2)


class Dispatcher:
    """Delivers queued webhooks from a background thread (:meth:`start`, :meth:`stop`);
    :meth:`run_once` does one pass, for tests and for callers without the thread."""

    def __init__(self, db: Any, settings: Any, *, interval_s: float = 1.0) -> None:
        self.db = db
        self.settings = settings
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="webhook-dispatcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it (at most one delivery timeout)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=TIMEOUT_S * 2 + 5)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.run_once() > 0
            except Exception:  # keep delivering; the database may be briefly unavailable
                log.exception("webhook dispatch failed")
                busy = False
            if not busy:
                self._stop.wait(self.interval_s)

    def _claim(self, moment: datetime) -> list[tuple[WebhookDelivery, Webhook]]:
        due = stamp(moment)
        claimed: list[tuple[WebhookDelivery, Webhook]] = []
        with self.db.sessions.begin() as session:
            rows = session.scalars(
                sa.select(WebhookDelivery)
                .where(WebhookDelivery.state == "pending", WebhookDelivery.next_attempt <= due)
                .order_by(WebhookDelivery.next_attempt)
                .limit(BATCH)
            ).all()
            lease = stamp(moment, plus=LEASE_S)
            for row in rows:
                taken = session.execute(
                    sa.update(WebhookDelivery)
                    .where(
                        WebhookDelivery.id == row.id,
                        WebhookDelivery.state == "pending",
                        WebhookDelivery.next_attempt == row.next_attempt,
                    )
                    .values(next_attempt=lease)
                    .execution_options(synchronize_session=False)
                )
                hook = session.get(Webhook, row.webhook_id)
                if taken.rowcount == 1 and hook is not None:
                    session.expunge(row)
                    claimed.append((row, hook))
        return claimed

    def _send(self, client: httpx.Client, delivery: WebhookDelivery, hook: Webhook) -> str | None:
        """POST one delivery; None on success, else why it failed."""
        body = delivery.body.encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "medws-registry-webhooks",
            "X-Medws-Event": delivery.event,
            "X-Medws-Delivery": delivery.id,
            "X-Medws-Timestamp": str(int(now().timestamp())),
            "X-Medws-Signature": sign(hook.secret, body),
        }
        try:
            response = client.post(hook.url, content=body, headers=headers)
        except httpx.HTTPError as error:
            return f"{type(error).__name__}: {error}"[:500]
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"

    def run_once(self, moment: datetime | None = None) -> int:
        """Send every delivery due at ``moment`` (default now); returns how many were tried."""
        moment = moment or now()
        claimed = self._claim(moment)
        if not claimed:
            return 0
        with httpx.Client(timeout=TIMEOUT_S, follow_redirects=False) as client:
            for delivery, hook in claimed:
                error = self._send(client, delivery, hook)
                self._record(delivery, error, moment)
        return len(claimed)

    def _record(self, delivery: WebhookDelivery, error: str | None, moment: datetime) -> None:
        attempts = delivery.attempts + 1
        values: dict[str, Any] = {"attempts": attempts, "last_error": error}
        if error is None:
            values["state"] = "done"
        elif attempts >= max(1, int(self.settings.webhook_attempts)):
            values["state"] = "failed"
            log.warning("webhook delivery %s failed for good: %s", delivery.id, error)
        else:
            delay = timedelta(seconds=backoff_s(attempts))
            values["next_attempt"] = stamp(moment + delay)
        with self.db.sessions.begin() as session:
            session.execute(
                sa.update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery.id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )

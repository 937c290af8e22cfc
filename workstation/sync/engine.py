"""Drain the store's sync outbox to the registry: :func:`sync_once` and :func:`run_forever`.

Per due outbox entry (kind ``result``): read the result (audited ``result.export``), build the
de-identified document, seal it for the site's recipients, upload it under the entry's
idempotency key (``result:<id>``), then mark the entry done. Outcomes:

* sent or duplicate (the registry already had that key and those bytes) -> ``outbox.done``;
* retryable (5xx, 429, network) -> ``outbox.failed`` with exponential backoff and full jitter
  (base 2 s, cap 15 min, at least the server's ``Retry-After``); the batch stops there and the
  remaining entries stay queued untouched (the registry is struggling or unreachable);
* permanent (409, 413, 422, an unreadable result) -> ``outbox.failed(retry_in=None)``;
* sign-in refused -> nothing is marked; the report carries the error.

Exactly once: the sealed bytes of an entry are spooled (``<spool>/<entry id>.sealed``, written
atomically) before the first upload and reused by every retry, so a retry after a lost response
(or a crash before ``done``) sends identical bytes and the registry answers "duplicate" instead
of storing a second row. Sealing is randomised; re-sealing would make a retry a 409 conflict.

Every item is audited ``sync.send`` or ``sync.failed`` with the result id and a status only.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workstation.core.files import write_atomic
from workstation.sync.client import (
    AuthenticationError,
    PermanentError,
    RegistryClient,
    RegistryUnavailable,
    RetryableError,
    SyncError,
)
from workstation.sync.payload import seal_result

if TYPE_CHECKING:
    from workstation.security.seal import RecipientPublicKey
    from workstation.store import OutboxItem, ResultStore

__all__ = ["SyncReport", "backoff", "run_forever", "sync_once"]

log = logging.getLogger(__name__)

BASE_S = 2.0
CAP_S = 15 * 60.0
RETRY_MAX_ATTEMPTS = 1000  # transient failures: ~days of capped backoff before giving up
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


def backoff(
    attempts: int,
    *,
    base: float = BASE_S,
    cap: float = CAP_S,
    rng: Callable[[], float] = random.random,
) -> float:
    """Full jitter: uniform in ``[0, min(cap, base * 2**attempts))`` seconds."""
    ceiling = cap if attempts >= 32 else min(cap, base * 2.0**attempts)
    return rng() * ceiling


@dataclass
class SyncReport:
    """What one :func:`sync_once` did; ``queued``: due entries left untouched this time."""

    sent: int = 0
    duplicates: int = 0
    retried: int = 0
    failed: int = 0
    queued: int = 0
    unreachable: bool = False
    error: str | None = None
    seconds: float = 0.0
    results: list[str] = field(default_factory=list)  # result ids delivered this time

    @property
    def delivered(self) -> int:
        """Sent plus duplicates."""
        return self.sent + self.duplicates

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return asdict(self)


class _Spool:
    """Sealed blobs by outbox entry id, so that retries resend identical bytes."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _path(self, entry_id: str) -> Path | None:
        if self.folder is None or not _SAFE_NAME.match(entry_id):
            return None
        return self.folder / f"{entry_id}.sealed"

    def get(self, entry_id: str) -> bytes | None:
        path = self._path(entry_id)
        if path is None:
            return None
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    def put(self, entry_id: str, blob: bytes) -> None:
        path = self._path(entry_id)
        if path is not None:
            write_atomic(path, blob, mode=0o600)

    def drop(self, entry_id: str) -> None:
        path = self._path(entry_id)
        if path is not None:
            path.unlink(missing_ok=True)


def _audit(store: ResultStore, action: str, item: OutboxItem, **details: Any) -> None:
    store.audit.record(
        actor=store.actor,
        action=action,
        object_type="analysis",
        object_id=item.object_id,
        details=details,
    )


def _recipients(
    client: RegistryClient, site_id: str, keys: Any, recipients: Sequence[RecipientPublicKey] | None
) -> list[RecipientPublicKey]:
    chosen = list(recipients) if recipients is not None else client.recipients(site_id)
    if keys is not None:  # the workstation can always read its own uploads back
        chosen.append(keys.recipient_key().public_key())
    if not chosen:
        raise AuthenticationError(f"site {site_id} has no recipient keys to seal results to")
    return chosen


def sync_once(
    store: ResultStore,
    client: RegistryClient,
    *,
    site_id: str,
    keys: Any = None,
    recipients: Sequence[RecipientPublicKey] | None = None,
    spool: Path | None = None,
    clock: Callable[[], float] = time.monotonic,
    limit: int = 100,
    rng: Callable[[], float] = random.random,
    max_attempts: int = RETRY_MAX_ATTEMPTS,
) -> SyncReport:
    """Send up to ``limit`` due outbox entries; never raises for registry trouble.

    Parameters
    ----------
    site_id
        The enrolled site (its recipient keys are fetched unless ``recipients`` is given).
    keys
        The key store (anything with ``recipient_key()``): its public key is added as a recipient.
    spool
        Folder for sealed blobs awaiting confirmation (``<home>/sync/spool``); ``None`` keeps
        none, so a retry after a lost response may end in a 409 conflict.
    clock
        Monotonic seconds, for the report's duration.
    rng
        Uniform ``[0, 1)`` for the backoff jitter.
    """
    started = clock()
    report = SyncReport()
    items = store.outbox.due(limit=limit)
    spooled = _Spool(spool)
    if not items:
        return report
    try:
        sealed_for = _recipients(client, site_id, keys, recipients)
    except RetryableError as error:
        report.unreachable = isinstance(error, RegistryUnavailable)
        report.error, report.queued = str(error), len(items)
        _defer(store, items[0], error, report, rng, max_attempts)
        report.queued -= 1
        report.seconds = clock() - started
        return report
    except SyncError as error:
        report.error, report.queued = str(error), len(items)
        report.seconds = clock() - started
        return report
    for index, item in enumerate(items):
        try:
            if item.kind != "result":
                raise PermanentError(f"unknown outbox entry kind {item.kind!r}")
            blob = spooled.get(item.id)
            if blob is None:
                blob = _seal(store, item, sealed_for)
                spooled.put(item.id, blob)
            upload = client.upload_result(item.idempotency_key, blob)
        except RetryableError as error:
            report.unreachable = isinstance(error, RegistryUnavailable)
            report.error = str(error)
            _defer(store, item, error, report, rng, max_attempts)
            report.queued = len(items) - index - 1
            break
        except PermanentError as error:
            store.outbox.failed(item.id, str(error), retry_in=None)
            spooled.drop(item.id)
            report.failed += 1
            _audit(store, "sync.failed", item, status="rejected", http=error.status)
            continue
        except SyncError as error:  # sign-in refused: not this item's fault
            report.error = str(error)
            report.queued = len(items) - index
            break
        store.outbox.done(item.id)
        spooled.drop(item.id)
        report.results.append(item.object_id)
        if upload.duplicate:
            report.duplicates += 1
        else:
            report.sent += 1
        _audit(
            store,
            "sync.send",
            item,
            status="duplicate" if upload.duplicate else "sent",
            registry_id=upload.id,
            size=upload.size,
        )
    report.seconds = clock() - started
    return report


def _seal(store: ResultStore, item: OutboxItem, recipients: list[RecipientPublicKey]) -> bytes:
    from workstation.store import NotFoundError, RecordCorruptError

    try:
        return seal_result(store, item.object_id, recipients)
    except (NotFoundError, RecordCorruptError) as error:
        raise PermanentError(f"result cannot be read: {type(error).__name__}") from error


def _defer(
    store: ResultStore,
    item: OutboxItem,
    error: RetryableError,
    report: SyncReport,
    rng: Callable[[], float],
    max_attempts: int,
) -> None:
    delay = max(backoff(item.attempts, rng=rng), error.retry_after or 0.0)
    store.outbox.failed(
        item.id, str(error), retry_in=dt.timedelta(seconds=delay), max_attempts=max_attempts
    )
    report.retried += 1
    status = "unreachable" if isinstance(error, RegistryUnavailable) else "retry"
    _audit(store, "sync.failed", item, status=status, http=error.status, retry_in_s=round(delay))


def run_forever(
    open_store: Callable[[], ResultStore],
    client: RegistryClient,
    *,
    stop: threading.Event,
    site_id: str,
    interval: float = 60.0,
    on_report: Callable[[SyncReport], None] | None = None,
    **options: Any,
) -> None:
    """Sync every ``interval`` seconds until ``stop`` is set (for the GUI's worker thread).

    While the registry is unreachable the loop itself backs off (full jitter, cap 15 min).
    ``open_store`` is called once; the store is closed on return. ``options`` go to
    :func:`sync_once`. Unexpected errors are logged (type only: no PHI) and retried.
    """
    failures = 0
    with open_store() as store:
        while not stop.is_set():
            try:
                report = sync_once(store, client, site_id=site_id, **options)
            except Exception as error:  # noqa: BLE001 - the loop must survive anything
                log.warning("sync failed: %s", type(error).__name__)
                report = SyncReport(error=type(error).__name__)
            if on_report is not None:
                with contextlib.suppress(Exception):
                    on_report(report)
            if report.error is not None:
                failures += 1
                wait = max(1.0, backoff(failures))
            else:
                failures = 0
                wait = 0.0 if report.queued else interval
            stop.wait(wait)


sync_loop = run_forever

"""One sync pass for the GUI's status indicator, summarised as a short status.

:func:`sync_and_report` runs where the GUI calls it (a worker): not enrolled → ``off``;
otherwise it unlocks the key store without prompting, drains what is due (one batch) and
reports ``ok`` (nothing pending), ``queued`` (items waiting for their backoff), ``offline``
(registry unreachable; items stay queued) or ``error`` (cannot unlock, sign-in refused).
"""

from __future__ import annotations

from dataclasses import dataclass

from workstation.core.errors import WorkstationError

__all__ = ["SyncStatus", "pending_count", "sync_and_report"]


@dataclass(frozen=True)
class SyncStatus:
    state: str  # off | ok | queued | offline | error
    text: str
    pending: int = 0
    sent: int = 0


def pending_count(store: object) -> int:
    """Outbox entries still pending (due now or waiting for their backoff)."""
    import sqlalchemy as sa

    from workstation.store.models import OutboxEntry

    with store.engine.connect() as connection:  # type: ignore[attr-defined]
        query = sa.select(sa.func.count()).where(OutboxEntry.state == "pending")
        return int(connection.execute(query).scalar_one())


def sync_and_report(*, limit: int = 100) -> SyncStatus:
    """Sync once (see the module docstring)."""
    from workstation.sync.state import load_state, spool_dir

    try:
        state = load_state()
    except ValueError as error:
        return SyncStatus("error", f"Sync: {error}")
    if state is None:
        return SyncStatus("off", "Sync: off (not enrolled)")
    from workstation.store.default import open_default
    from workstation.sync.client import RegistryClient
    from workstation.sync.engine import sync_once

    try:
        store, keys = open_default(actor="workstation:sync")
    except WorkstationError as error:
        return SyncStatus("error", f"Sync: cannot open the store ({error})")
    client = RegistryClient(
        state.url, signing_key=keys.signing_key(), workstation_id=state.workstation_id
    )
    with store, client:
        report = sync_once(
            store, client, site_id=state.site_id, keys=keys, spool=spool_dir(), limit=limit
        )
        pending = pending_count(store)
    if report.unreachable:
        return SyncStatus("offline", f"Sync: offline, {pending} queued", pending, report.sent)
    if report.error:
        return SyncStatus("error", f"Sync: {report.error}", pending, report.sent)
    if pending:
        return SyncStatus("queued", f"Sync: {pending} queued", pending, report.sent)
    return SyncStatus(
        "ok", f"Sync: up to date ({state.site_name or state.site_id})", 0, report.sent
    )

"""Local users (with roles) and the sync outbox, small parts of the store.

The outbox is written in the same transaction as what it sends (``save_result(sync=True)``),
so a result is never saved without its sync entry or the reverse. The sync client takes due
entries, sends them with their idempotency key (the registry ignores a repeat), and marks each
done or failed; a failure is retried after ``next_attempt`` until ``max_attempts``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from workstation.store._time import Clock, format_time
from workstation.store.crypto import Cipher
from workstation.store.errors import ConflictError, NotFoundError, translated
from workstation.store.models import OutboxEntry, OutboxState, Role, User


class _Recorder(Protocol):
    def __call__(self, session: Session, action: str, object_type: str, object_id: str) -> int: ...


@dataclass(frozen=True)
class LocalUser:
    """A local user."""

    id: str
    username: str
    role: Role
    active: bool


class Users:
    """Local users and their roles (radiologist, researcher, admin); changes are audited."""

    def __init__(self, sessions: sessionmaker[Session], record: _Recorder, clock: Clock) -> None:
        self._sessions, self._record, self._clock = sessions, record, clock

    def add(self, username: str, role: Role | str) -> LocalUser:
        """Create a user; ``ConflictError`` if the name is taken."""
        role = Role(role)
        user = User(
            id=str(uuid.uuid4()),
            username=username,
            role=role.value,
            created=format_time(self._clock()),
            active=True,
        )
        with translated(f"adding user {username!r}"), self._sessions.begin() as session:
            if session.scalars(sa.select(User).where(User.username == username)).first():
                raise ConflictError(f"a user named {username!r} exists")
            session.add(user)
            session.flush()
            self._record(session, "user.add", "user", user.id)
        return LocalUser(user.id, username, role, True)

    def get(self, username: str) -> LocalUser:
        """The user called ``username``; ``NotFoundError`` otherwise."""
        with translated("reading users"), self._sessions() as session:
            user = session.scalars(sa.select(User).where(User.username == username)).first()
        if user is None:
            raise NotFoundError(f"no user named {username!r}")
        return LocalUser(user.id, user.username, Role(user.role), user.active)

    def list(self) -> list[LocalUser]:
        """Every user, by name."""
        with translated("reading users"), self._sessions() as session:
            users = session.scalars(sa.select(User).order_by(User.username)).all()
        return [LocalUser(u.id, u.username, Role(u.role), u.active) for u in users]


@dataclass(frozen=True)
class OutboxItem:
    """A due outbox entry, payload decrypted."""

    id: str
    idempotency_key: str
    kind: str
    object_id: str
    payload: Any
    attempts: int


class Outbox:
    """The sync outbox: due entries, and their outcome."""

    def __init__(self, sessions: sessionmaker[Session], cipher: Cipher, clock: Clock) -> None:
        self._sessions, self._cipher, self._clock = sessions, cipher, clock

    def due(self, *, limit: int = 100) -> list[OutboxItem]:
        """Pending entries whose next attempt is now or past, oldest first."""
        now = format_time(self._clock())
        with translated("reading the outbox"), self._sessions() as session:
            rows = session.scalars(
                sa.select(OutboxEntry)
                .where(OutboxEntry.state == OutboxState.PENDING, OutboxEntry.next_attempt <= now)
                .order_by(OutboxEntry.next_attempt, OutboxEntry.id)
                .limit(limit)
            ).all()
        return [
            OutboxItem(
                row.id,
                row.idempotency_key,
                row.kind,
                row.object_id,
                None
                if row.payload is None
                else self._cipher.open_json(row.payload, "outbox", row.id, "payload"),
                row.attempts,
            )
            for row in rows
        ]

    def done(self, entry_id: str) -> None:
        """Mark an entry sent."""
        self._update(entry_id, lambda row: setattr(row, "state", OutboxState.DONE.value))

    def failed(
        self, entry_id: str, error: str, *, retry_in: dt.timedelta | None, max_attempts: int = 10
    ) -> None:
        """Count a failed attempt; retry after ``retry_in`` (``None``: give up)."""

        def apply(row: OutboxEntry) -> None:
            row.attempts += 1
            row.last_error = error[:500]
            if retry_in is None or row.attempts >= max_attempts:
                row.state = OutboxState.FAILED.value
            else:
                row.next_attempt = format_time(self._clock() + retry_in)

        self._update(entry_id, apply)

    def _update(self, entry_id: str, apply: Callable[[OutboxEntry], None]) -> None:
        with translated("updating the outbox"), self._sessions.begin() as session:
            row = session.get(OutboxEntry, entry_id)
            if row is None:
                raise NotFoundError(f"no outbox entry {entry_id}")
            apply(row)

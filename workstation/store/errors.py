"""Errors of the encrypted result store (see :mod:`workstation.core.errors` for the whole tree).

::

    WorkstationError
    └── StoreError                  workstation.store
        ├── StoreUnavailableError   the database cannot be opened, reached, locked or written
        ├── SchemaError             the schema cannot be migrated (or is newer than this program)
        ├── ConflictError           a constraint was violated (duplicate id or idempotency key)
        ├── NotFoundError           no record with that id
        └── RecordCorruptError      a ciphertext does not decrypt: wrong key, moved or tampered

SQLAlchemy and Alembic errors are translated at the package boundary by :func:`translated`;
the original is chained (``raise ... from``) for the log, never shown with bound values (which
may be ciphertext or identifiers). Messages carry no PHI: only table, column and row ids.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from workstation.core.errors import WorkstationError


class StoreError(WorkstationError):
    """Base of the result store's errors."""


class StoreUnavailableError(StoreError):
    """The database cannot be opened, reached, locked or written (disk full, busy, refused)."""


class SchemaError(StoreError):
    """The database schema cannot be brought to this program's version."""


class ConflictError(StoreError):
    """A uniqueness or foreign-key constraint was violated."""


class NotFoundError(StoreError):
    """No record with that id."""


class RecordCorruptError(StoreError):
    """A stored ciphertext does not decrypt in its place (table, row, column)."""


def _describe(error: BaseException) -> str:
    """The driver's first message line without the SQL or bound parameters."""
    orig = getattr(error, "orig", None)
    text = str(orig if orig is not None else error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__


@contextmanager
def translated(action: str) -> Iterator[None]:
    """Translate SQLAlchemy / Alembic errors raised inside into :class:`StoreError` subclasses.

    Parameters
    ----------
    action
        What was being done, for the message ("saving a result").
    """
    from alembic.util.exc import CommandError
    from sqlalchemy import exc

    try:
        yield
    except exc.IntegrityError as error:
        raise ConflictError(f"{action} failed: {_describe(error)}") from error
    except (exc.OperationalError, exc.InterfaceError, exc.DisconnectionError) as error:
        raise StoreUnavailableError(
            f"{action} failed: the database is unavailable ({_describe(error)}); check that it "
            "exists, is writable and not locked by another program"
        ) from error
    except exc.ProgrammingError as error:
        raise SchemaError(
            f"{action} failed: {_describe(error)}; the schema may be out of date"
        ) from error
    except CommandError as error:
        raise SchemaError(f"{action} failed: {error}") from error
    except exc.SQLAlchemyError as error:
        raise StoreError(f"{action} failed: {_describe(error)}") from error

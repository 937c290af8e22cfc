"""Keyset pagination for every listing of the registry.

Convention: query ``limit`` (1..500, default 100) and ``cursor`` (opaque: the last item's sort
key, as returned in ``next_cursor``); response ``{"items": [...], "next_cursor": str | null}``.
Sort keys must be unique strings (ids, or ``time|id`` composites built by the caller).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query
from sqlalchemy.orm import Session

__all__ = ["MAX_LIMIT", "Cursor", "Limit", "page", "paginate"]

MAX_LIMIT = 500
DEFAULT_LIMIT = 100

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")]
Cursor = Annotated[
    str | None, Query(max_length=200, description="next_cursor of the previous page")
]


def paginate(
    session: Session, stmt: Any, key_column: Any, *, limit: int, cursor: str | None
) -> tuple[list[Any], str | None]:
    """One page of ``stmt`` (a select of ORM rows, unordered) by ascending ``key_column``.

    Returns the rows and the cursor of the next page (None on the last page).
    """
    limit = max(1, min(int(limit), MAX_LIMIT))
    if cursor:
        stmt = stmt.where(key_column > cursor)
    rows = list(session.scalars(stmt.order_by(key_column).limit(limit + 1)))
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    key = getattr(rows[-1], key_column.key)
    return rows, str(key)


def page(items: list[Any], next_cursor: str | None) -> dict[str, Any]:
    """The response body of a listing."""
    return {"items": items, "next_cursor": next_cursor}

"""Canonical JSON and UTC times: the exact bytes that trust roots and bundle manifests sign."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z\Z")


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8, no floats or NaN: the bytes that get signed."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def strict_json(raw: bytes, what: str, error: type[Exception]) -> Any:
    """Parse UTF-8 JSON refusing duplicate keys, floats and NaN (raised as ``error``)."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise ValueError(f"duplicate key {key!r}")
            out[key] = value
        return out

    def no_float(text: str) -> Any:
        raise ValueError(f"numbers must be integers, not {text}")

    try:
        return json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=pairs,
            parse_float=no_float,
            parse_constant=no_float,
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise error(f"{what} is not valid JSON: {exc}") from None


def utcnow() -> dt.datetime:
    """The current time (UTC, whole seconds)."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def format_time(when: dt.datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` (UTC)."""
    if when.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: Any, what: str) -> dt.datetime:
    """Parse :func:`format_time` output exactly; anything else raises ``ValueError``."""
    if not isinstance(text, str) or not _TIME.match(text):
        raise ValueError(f"{what} must be a UTC time like 2026-01-31T12:00:00Z, not {text!r}")
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def now_or(now: dt.datetime | None) -> dt.datetime:
    """``now`` (which must be timezone-aware), or the current time when ``None``."""
    if now is None:
        return utcnow()
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now

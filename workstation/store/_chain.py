"""The audit chain's hashing and its streaming verifier (pure logic, no database).

Event hash: SHA-256 over the canonical JSON array ``["mws-audit-v1", seq, time, actor,
action, object_type, object_id, study, details, prev_hash]`` (UTF-8, no spaces), hex. The first
event's ``prev_hash`` is 64 zeros. A checkpoint signs ``["mws-audit-checkpoint-v1", seq, hash,
time]`` with the workstation's hybrid key (context ``"audit-checkpoint"``).

The verifier reads events in ``seq`` order once, keeping only each event's stored hash (to name
what moved where), and reports every problem with the event it concerns:

- ``deleted``: a gap in ``seq``, or events missing at the end (the head or a checkpoint knows
  more), or an event whose content belongs to a later position after renumbering;
- ``edited``: an event that does not match its own hash, or whose hash was recomputed (the next
  event no longer links to it, or a signed checkpoint disagrees);
- ``inserted``: an event the chain does not link through (a later event links past it);
- ``reordered``: an event holding another position's event (it verifies only at that seq).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

GENESIS = "0" * 64
CHECKPOINT_CONTEXT = "audit-checkpoint"
# At one seq, the most specific diagnosis first (a moved event also fails its checkpoint).
_PRIORITY = {"deleted": 0, "inserted": 0, "reordered": 0, "edited": 1, "signature": 2}
EVENT_FIELDS = ("seq", "time", "actor", "action", "object_type", "object_id", "study", "details")


def event_hash(prev_hash: str, values: Sequence[Any]) -> str:
    """The hash of one event; ``values`` in :data:`EVENT_FIELDS` order."""
    payload = json.dumps(
        ["mws-audit-v1", *values, prev_hash], ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def checkpoint_message(seq: int, head_hash: str, time: str) -> bytes:
    """The bytes a checkpoint signs."""
    return json.dumps(
        ["mws-audit-checkpoint-v1", seq, head_hash, time], separators=(",", ":")
    ).encode()


@dataclass(frozen=True)
class AuditProblem:
    """One thing wrong with the chain: the event concerned, a category and an explanation."""

    seq: int
    kind: str  # "edited" | "deleted" | "inserted" | "reordered" | "signature"
    message: str

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {"seq": self.seq, "kind": self.kind, "message": self.message}


@dataclass(frozen=True)
class AuditReport:
    """What :meth:`AuditTrail.verify` found. ``ok`` when there are no problems."""

    events: int
    last_seq: int
    checkpoints: int
    signatures_checked: bool
    problems: tuple[AuditProblem, ...]

    @property
    def ok(self) -> bool:
        """Whether the chain verified completely."""
        return not self.problems

    @property
    def first_problem(self) -> AuditProblem | None:
        """The problem at the lowest seq (the first bad event)."""
        return self.problems[0] if self.problems else None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dictionary (stable keys)."""
        first = self.first_problem
        return {
            "ok": self.ok,
            "events": self.events,
            "last_seq": self.last_seq,
            "checkpoints": self.checkpoints,
            "signatures_checked": self.signatures_checked,
            "first_bad_seq": None if first is None else first.seq,
            "problems": [problem.to_json() for problem in self.problems],
        }


@dataclass
class ChainVerifier:
    """Feed rows in ``seq`` order (:meth:`feed`), then :meth:`finish`."""

    checkpoint_seqs: frozenset[int] = frozenset()
    events: int = 0
    last_seq: int = 0
    _prev: str = GENESIS
    _seq_of: dict[str, int] = field(default_factory=dict)  # stored hash -> stored seq
    _at_checkpoint: dict[int, str] = field(default_factory=dict)
    _mismatched: list[tuple[int, tuple[Any, ...], str, str]] = field(default_factory=list)
    _broken: list[tuple[int, str]] = field(default_factory=list)
    _problems: list[AuditProblem] = field(default_factory=list)

    def feed(self, row: Sequence[Any]) -> None:
        """One row: the :data:`EVENT_FIELDS` values, then ``prev_hash``, then ``hash``."""
        values, prev, stored = tuple(row[:8]), row[8], row[9]
        seq = values[0]
        self.events += 1
        gap = seq != self.last_seq + 1
        if gap:
            first, last = self.last_seq + 1, seq - 1
            what = f"event {first}" if first == last else f"events {first} to {last}"
            self._problems.append(
                AuditProblem(first, "deleted", f"{what} missing before event {seq}")
            )
        if event_hash(prev, values) != stored:
            self._mismatched.append((seq, values, prev, stored))
        elif prev != self._prev and not gap:
            self._broken.append((seq, prev))
        self._seq_of.setdefault(stored, seq)
        if seq in self.checkpoint_seqs:
            self._at_checkpoint[seq] = stored
        self._prev, self.last_seq = stored, seq

    def stored_hash_at(self, seq: int) -> str | None:
        """The stored hash of event ``seq`` if it is a checkpoint seq that was seen."""
        return self._at_checkpoint.get(seq)

    def finish(
        self, head: tuple[int, str] | None, extra: Iterable[AuditProblem] = ()
    ) -> list[AuditProblem]:
        """Classify what was deferred, compare with the head; problems sorted by seq."""
        problems = list(self._problems)
        moved = self._resolve_moves()
        for seq, *_ in self._mismatched:
            if seq not in moved:
                problems.append(
                    AuditProblem(seq, "edited", f"event {seq} does not match its hash (edited)")
                )
        for seq, origin in sorted(moved.items()):
            shift = origin - seq
            if moved.get(origin) == seq:
                problems.append(
                    AuditProblem(
                        seq, "reordered", f"event {seq} holds event {origin}: they were swapped"
                    )
                )
            elif moved.get(seq - 1) == seq - 1 + shift:
                continue  # the same renumbering as the event before: reported there
            elif shift < 0:
                problems.append(
                    AuditProblem(
                        origin,
                        "inserted",
                        f"event {origin} was inserted: event {seq} was written as event "
                        f"{origin} and the later ones renumbered",
                    )
                )
            else:
                problems.append(
                    AuditProblem(
                        seq,
                        "deleted",
                        f"event {seq} holds event {origin}: {shift} event(s) before it were "
                        "deleted and the later ones renumbered",
                    )
                )
        for seq, prev in self._broken:
            if prev not in self._seq_of:
                problems.append(
                    AuditProblem(
                        seq - 1,
                        "edited",
                        f"event {seq - 1} was changed after event {seq} was written "
                        "(its hash was recomputed)",
                    )
                )
                continue
            stored_at = self._seq_of[prev]
            linked = moved.get(stored_at, stored_at)
            if linked == seq - 1 or stored_at in moved:
                continue  # a consequence of a move reported above
            if linked < seq - 1:
                first = linked + 1
                what = f"event {first}" if first == seq - 1 else f"events {first} to {seq - 1}"
                problems.append(
                    AuditProblem(
                        first, "inserted", f"{what} inserted: event {seq} follows {linked}"
                    )
                )
            else:
                problems.append(
                    AuditProblem(
                        seq, "reordered", f"event {seq} links to event {linked}, not {seq - 1}"
                    )
                )
        if head is not None:
            problems += self._check_head(*head)
        problems += extra
        return sorted(problems, key=lambda p: (p.seq, _PRIORITY.get(p.kind, 9)))

    def _resolve_moves(self) -> dict[int, int]:
        """Stored seq -> the seq its content verifies at, for events that moved."""
        moved: dict[int, int] = {}
        pending = list(self._mismatched)
        progress = True
        while pending and progress:
            progress = False
            for item in list(pending):
                seq, values, prev, stored = item
                origin = self._origin(seq, values, prev, stored, moved)
                if origin is not None:
                    moved[seq] = origin
                    pending.remove(item)
                    progress = True
        return moved

    def _origin(
        self, seq: int, values: tuple[Any, ...], prev: str, stored: str, moved: dict[int, int]
    ) -> int | None:
        """The seq at which this content verifies, if it is another position's event."""
        if prev == GENESIS:
            candidates = [1]
        elif prev in self._seq_of:
            at = self._seq_of[prev]
            candidates = [moved.get(at, at) + 1]
        else:
            candidates = [seq + delta for delta in (1, -1, 2, -2) if seq + delta > 0]
        for candidate in candidates:
            if candidate != seq and event_hash(prev, (candidate, *values[1:])) == stored:
                return candidate
        return None

    def _check_head(self, head_seq: int, head_hash: str) -> list[AuditProblem]:
        if head_seq > self.last_seq:
            first = self.last_seq + 1
            what = f"event {first}" if first == head_seq else f"events {first} to {head_seq}"
            return [AuditProblem(first, "deleted", f"{what} missing at the end of the chain")]
        if head_seq < self.last_seq:
            return [
                AuditProblem(
                    head_seq + 1,
                    "inserted",
                    f"events {head_seq + 1} to {self.last_seq} were added outside the store",
                )
            ]
        if head_hash != self._prev and self.last_seq:
            return [
                AuditProblem(
                    self.last_seq, "edited", f"event {self.last_seq} does not match the head"
                )
            ]
        return []

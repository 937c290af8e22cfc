"""Cancel tokens and throttled progress."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from workstation.core import (
    Cancelled,
    CancelToken,
    WorkstationError,
    check_cancel,
    tasks,
    throttled,
)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int, str]] = []

    def __call__(self, done: int, total: int, message: str = "") -> None:
        self.calls.append((done, total, message))

    @property
    def done(self) -> list[int]:
        return [c[0] for c in self.calls]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """Replace the clock ``throttled`` reads (only inside workstation.core.tasks)."""
    fake = FakeClock()
    monkeypatch.setattr(tasks, "time", SimpleNamespace(monotonic=fake.monotonic))
    return fake


# -- cancel -----------------------------------------------------------------------------------
def test_token_starts_clear() -> None:
    token = CancelToken()
    assert not token.cancelled
    token.raise_if_cancelled()
    check_cancel(token)


def test_cancel_raises_with_reason() -> None:
    token = CancelToken()
    token.cancel("superseded")
    assert token.cancelled
    with pytest.raises(Cancelled, match="superseded") as caught:
        token.raise_if_cancelled()
    assert isinstance(caught.value, WorkstationError)
    with pytest.raises(Cancelled, match="superseded"):
        check_cancel(token)


def test_default_reason() -> None:
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled, match="cancelled"):
        check_cancel(token)


def test_none_never_cancels() -> None:
    check_cancel(None)


def test_cancel_from_another_thread_is_seen() -> None:
    token = CancelToken()
    thread = threading.Thread(target=token.cancel, args=("from worker",))
    thread.start()
    thread.join()
    with pytest.raises(Cancelled, match="from worker"):
        check_cancel(token)


def test_token_has_no_instance_dict() -> None:
    with pytest.raises(AttributeError):
        CancelToken().other = 1  # type: ignore[attr-defined]


# -- throttled progress -----------------------------------------------------------------------
def test_none_gives_a_silent_function() -> None:
    report = throttled(None)
    report(0, 10, "x")
    report(10, 10)


def test_interval_zero_passes_everything() -> None:
    sink = Recorder()
    report = throttled(sink, interval=0)
    for done in range(11):
        report(done, 10, "work")
    assert sink.done == list(range(11))
    assert all(call[1:] == (10, "work") for call in sink.calls)


def test_large_interval_passes_only_first_and_final() -> None:
    sink = Recorder()
    report = throttled(sink, interval=1e9)
    for done in range(11):
        report(done, 10)
    assert sink.done == [0, 10]


def test_first_report_passes_even_when_it_is_not_zero() -> None:
    sink = Recorder()
    report = throttled(sink, interval=1e9)
    report(3, 10)
    report(4, 10)
    report(10, 10)
    assert sink.done == [3, 10]


def test_empty_work_reports_once_complete() -> None:
    sink = Recorder()
    throttled(sink, interval=1e9)(0, 0, "nothing to do")
    assert sink.calls == [(0, 0, "nothing to do")]


def test_intermediate_reports_follow_the_clock(clock: FakeClock) -> None:
    sink = Recorder()
    report = throttled(sink, interval=1.0)
    report(0, 100)  # first: passes
    clock.now += 0.5
    report(1, 100)  # too soon
    clock.now += 0.6
    report(2, 100)  # 1.1 s after the last report: passes
    clock.now += 0.2
    report(3, 100)  # too soon
    clock.now += 0.8
    report(4, 100)  # exactly the interval: passes
    report(5, 100)  # same instant: dropped
    report(100, 100)  # final: passes
    assert sink.done == [0, 2, 4, 100]


def test_each_wrapper_has_its_own_clock(clock: FakeClock) -> None:
    first, second = Recorder(), Recorder()
    a, b = throttled(first, interval=1.0), throttled(second, interval=1.0)
    a(1, 10)
    b(1, 10)
    a(2, 10)
    assert first.done == [1]
    assert second.done == [1]

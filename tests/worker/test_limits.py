"""Time-limit machinery: the watchdog thread and exceptions raised inside running threads."""

from __future__ import annotations

import threading
import time

import pytest

from conveyor import SoftTimeLimitExceeded
from conveyor.worker.limits import RunningCall, Watchdog


def test_watchdog_fires_due_calls_and_forgets_cancelled_ones() -> None:
    dog = Watchdog()
    fired: list[str] = []
    try:
        handles = [dog.call_at(time.monotonic() + 60, lambda: fired.append("never")) for _ in range(10_000)]
        for handle in handles:
            dog.cancel(handle)
        assert dog._armed == {}  # memory is bounded by what is armed, not by what passed through
        done = threading.Event()
        dog.call_at(time.monotonic() + 0.2, lambda: (fired.append("late"), done.set()))
        dog.call_at(time.monotonic() + 0.05, lambda: fired.append("early"))
        assert done.wait(5)
        assert fired == ["early", "late"]
    finally:
        dog.stop()


def test_an_interrupt_reaches_a_running_call() -> None:
    call = RunningCall()
    started = threading.Event()
    outcome: list[str] = []

    def body() -> None:
        started.set()
        try:
            while True:
                time.sleep(0.001)
        except SoftTimeLimitExceeded:
            outcome.append("interrupted")

    thread = threading.Thread(target=call.run, args=(body,))
    thread.start()
    assert started.wait(5)
    assert call.interrupt(SoftTimeLimitExceeded)
    thread.join(5)
    assert outcome == ["interrupted"]


def test_an_interrupt_after_the_call_finished_does_not_leak_into_the_thread() -> None:
    call = RunningCall()
    call.run(lambda: None)
    assert not call.interrupt(SoftTimeLimitExceeded)
    for _ in range(1000):  # would raise here if a pending exception had leaked
        pass


def test_nothing_is_raised_in_a_thread_whose_call_is_done() -> None:
    call = RunningCall()
    with pytest.raises(ZeroDivisionError):
        call.run(lambda: 1 / 0)
    assert call.done and not call.interrupt(SoftTimeLimitExceeded)


def test_a_hard_stop_passes_except_exception_and_is_raised_once_as_the_public_error() -> None:
    """The terminating revoke asks twice (control thread and loop): one stop is raised, the
    body's ``except Exception`` does not see it, and the call ends in TaskRevokedError."""
    from conveyor.exceptions import TaskRevokedError

    call = RunningCall()
    started = threading.Event()
    swallowed: list[str] = []
    outcome: list[BaseException] = []

    def body() -> None:
        started.set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                time.sleep(0.001)
            except Exception as exc:  # a loop that logs each item's error and goes on
                swallowed.append(type(exc).__name__)

    def thread() -> None:
        try:
            call.run(body)
        except BaseException as exc:
            outcome.append(exc)

    t = threading.Thread(target=thread)
    t.start()
    assert started.wait(10)
    assert call.interrupt(TaskRevokedError) and call.interrupt(TaskRevokedError)
    t.join(10)
    assert not t.is_alive() and swallowed == []
    assert len(outcome) == 1 and type(outcome[0]) is TaskRevokedError

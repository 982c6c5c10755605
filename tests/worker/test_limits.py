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

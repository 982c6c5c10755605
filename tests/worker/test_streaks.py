"""Streaks (worker/streaks.py): under the threads pool a slot thread runs task after task from
the inbox by itself. What must not change for a user: ``-c N`` tasks still run at once, every
task runs (exactly once where it is at-most-once), a hard limit still fails a run at once and
the worker goes on, and the counts add up. Real worker processes, on SQLite and Redis."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor import Conveyor, states
from conveyor.exceptions import TimeLimitExceeded
from conveyor.worker import streaks

from ..apps import basic
from ..procs import WorkerProcess, lines, wait_for


@pytest.fixture
def app(process_broker_url: str) -> Iterator[Conveyor]:
    basic.app.conf.broker_url = process_broker_url
    yield basic.app
    basic.app.close()


def test_the_threads_pool_runs_concurrency_tasks_at_once_behind_a_backlog_of_tiny_ones(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    """Tiny tasks share one streak; six tasks that wait for each other must still get six
    slot threads at once (they only finish once all six have started)."""
    basic.add.delay_many([(i, i) for i in range(300)])
    meeting = [basic.rendezvous.delay("meet", f"t{i}", 6) for i in range(6)]
    tail = basic.add.delay_many([(i, 1) for i in range(300)])
    worker = WorkerProcess(process_broker_url, tmp_path, "-c", "6").wait_ready()
    try:
        assert [r.get(timeout=90) for r in meeting] == ["met"] * 6
        assert [r.get(timeout=30) for r in tail] == [i + 1 for i in range(300)]
    finally:
        worker.stop()


def test_tasks_that_may_not_join_a_streak_run_the_usual_way_among_tiny_ones(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    """At-most-once and async tasks end a streak and run as before: each exactly once, in
    between hundreds of tiny tasks that run on streaks."""
    results = []
    for i in range(40):
        results += [basic.add.delay(i, 1), basic.record_at_most_once.delay("amo", f"a{i}")]
        results += [basic.async_add.delay(i, 2), basic.record.delay("alo", f"r{i}")]
    worker = WorkerProcess(process_broker_url, tmp_path).wait_ready()
    try:
        values = [r.get(timeout=60) for r in results]
        expected = []
        for i in range(40):
            expected += [i + 1, f"a{i}", i + 2, f"r{i}"]
        assert values == expected
        for name in ("amo", "alo"):
            started = [line.split()[1] for line in lines(tmp_path / name) if line.startswith("start")]
            assert sorted(started) == sorted(set(started)) and len(started) == 40, name
    finally:
        worker.stop()


def test_a_hard_time_limit_fails_a_streak_run_at_once_and_the_tiny_tasks_around_it_run(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    before = basic.add.delay_many([(i, 0) for i in range(200)])
    limited = basic.hard_limited.delay()
    after = basic.add.delay_many([(i, 10) for i in range(200)])
    worker = WorkerProcess(process_broker_url, tmp_path, "-c", "2").wait_ready()
    try:
        assert [r.get(timeout=60) for r in before] == list(range(200))
        assert [r.get(timeout=60) for r in after] == [i + 10 for i in range(200)]
        wait_for(lambda: limited.state == states.FAILURE, 30)
        with pytest.raises(TimeLimitExceeded):
            limited.get(timeout=1)
    finally:
        worker.stop()


def test_the_workers_counts_add_up_when_streaks_report_their_own_runs(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    """Several streaks and the loop report side by side: not one run may go uncounted."""
    results = basic.add.delay_many([(i, i) for i in range(2000)])
    failing = [basic.boom.delay() for _ in range(20)]
    worker = WorkerProcess(process_broker_url, tmp_path).wait_ready()
    try:
        assert [r.get(timeout=90) for r in results] == [2 * i for i in range(2000)]
        for r in failing:
            wait_for(lambda r=r: r.state == states.FAILURE, 30)

        def counts() -> tuple[int, int, int]:
            (info,) = [w for w in app.admin.workers() if w.hostname.startswith("w@")]
            return info.processed, info.succeeded, info.failed

        # The heartbeat carries the counts: wait until one reports every run.
        wait_for(lambda: counts()[0] >= 2020, 30, interval=0.3)
        assert counts() == (2020, 2000, 20)
    finally:
        worker.stop()


def test_a_hard_limit_is_reported_as_such_even_if_the_abandoned_body_then_fails_its_own_way(
    run_worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop reports a killed streak run while its thread runs on: what that thread's body
    does next (here: it catches the limit and raises an error of its own) must not change the
    report. The interleaving is forced: the body raises only once the loop is reporting the
    kill, and the loop reports only once the abandoned thread has retired."""
    app = Conveyor("streak-kill", broker=f"memory://streak-kill-{uuid.uuid4().hex}")
    reporting_kill = threading.Event()
    body_threads: list[threading.Thread] = []

    @app.task(time_limit=0.3)
    def stubborn() -> None:
        body_threads.append(threading.current_thread())
        try:
            while True:
                time.sleep(0.01)
        except BaseException:  # the hard stop (a BaseException: ``except Exception`` lets it by)
            reporting_kill.wait(30)
            raise ValueError("cleanup failed after the limit") from None

    report = streaks.Streaks._report

    def ordered(self: streaks.Streaks, run: streaks.Run) -> None:
        if body_threads and threading.current_thread() is not body_threads[0]:  # kill(), on the loop
            reporting_kill.set()
            body_threads[0].join(30)  # the abandoned thread has written its own outcome and retired
        report(self, run)

    monkeypatch.setattr(streaks.Streaks, "_report", ordered)
    try:
        with run_worker(app, pool="threads", concurrency=2):
            result = stubborn.delay()
            wait_for(lambda: result.state == states.FAILURE, 30)
            with pytest.raises(TimeLimitExceeded):
                result.get(timeout=1)
    finally:
        app.close()


def test_a_stop_sentinel_a_slot_thread_finds_still_reaches_the_waiting_consumer() -> None:
    """A slot thread looking for its next delivery at shutdown may come upon a consumer's stop
    sentinel: the consumer must still get it, even if it looked (found nothing, and waits)
    while the thread had the sentinel in hand. The interleaving is forced."""
    from collections import deque

    from conveyor.worker.inbox import Inbox

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop_thread = threading.current_thread()
        inbox = Inbox()
        popped = threading.Event()

        class Racing(deque[Any]):
            def popleft(self) -> Any:
                item = super().popleft()
                if item is None and threading.current_thread() is not loop_thread:
                    popped.set()
                    deadline = time.monotonic() + 10
                    while not inbox._getters and time.monotonic() < deadline:
                        time.sleep(0.001)  # until the consumer has looked and waits
                return item

        inbox._items = Racing()
        inbox.put_nowait(None)
        taking = loop.run_in_executor(None, inbox.take)
        deadline = time.monotonic() + 10
        while not (popped.is_set() or taking.done()) and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
        consumer = asyncio.ensure_future(inbox.get())
        assert await taking is None
        assert await asyncio.wait_for(consumer, 10) is None

    asyncio.run(main())


def test_deliveries_set_aside_for_a_streak_keep_their_place_in_line() -> None:
    """Consumers that take deliveries a running streak will run set them aside; the streak (a
    real thread) must then run them in the order they were fetched, priorities included."""
    from conveyor.brokers import Delivery
    from conveyor.worker.inbox import Inbox

    inbox = Inbox()
    fetched = [Delivery(f"t{i}", "default", b"{}", 1, 0) for i in range(8)]
    for d in fetched:
        inbox.put_nowait(d)
    for _ in range(3):  # three consumers in turn: each takes the first in line and sets it aside
        d = inbox.get_nowait()
        assert d is not None
        inbox.set_aside(d)
    assert [d.id for d in inbox.waiting()] == [d.id for d in fetched]
    ran: list[str] = []

    def streak() -> None:
        while (d := inbox.take()) is not None:
            ran.append(d.id)

    thread = threading.Thread(target=streak)
    thread.start()
    thread.join(timeout=10)
    assert ran == [d.id for d in fetched]

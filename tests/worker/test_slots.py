"""The threads pool's slot threads (worker/slots.py): batched hand-back, failures as values,
abandoned bodies replaced; and through a real worker, a body stuck in C never stalls the pool."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from conveyor import TimeLimitExceeded
from conveyor.worker.slots import SlotThreads

from ..apps import basic
from ..procs import WorkerProcess


def _wait_until(check: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_outcomes_finished_together_reach_the_loop_in_one_batch() -> None:
    async def main() -> tuple[int, list[Any]]:
        slots = SlotThreads(asyncio.get_running_loop(), 8, 0, "test-slot")
        resolves = 0
        resolve = slots._resolve

        def counted(arg: None) -> None:
            nonlocal resolves
            resolves += 1
            resolve(arg)

        slots._resolve = counted  # type: ignore[method-assign]
        go = threading.Event()
        finished: list[int] = []
        lock = threading.Lock()

        def body(i: int) -> int:
            go.wait(30)
            with lock:
                finished.append(i)
            return i

        jobs = [slots.submit(lambda i=i: body(i)) for i in range(50)]
        go.set()
        # The loop is busy (blocked right here) while all 50 finish: one wake-up must settle
        # them all (two if the last one was still being handed back when the loop looked).
        _wait_until(lambda: len(finished) == 50)
        time.sleep(0.05)
        outcomes = [await job.future for job in jobs]
        slots.close()
        return resolves, outcomes

    resolves, outcomes = asyncio.run(main())
    assert outcomes == [(i, None) for i in range(50)]
    assert resolves <= 2


def test_system_exit_in_a_body_is_its_outcome_and_the_loop_goes_on() -> None:
    def exits() -> None:
        raise SystemExit(3)

    async def main() -> tuple[Any, BaseException | None]:
        slots = SlotThreads(asyncio.get_running_loop(), 1, 0, "test-slot")
        value, exc = await slots.submit(exits).future
        assert await slots.submit(lambda: "next").future == ("next", None)  # the slot lives on
        slots.close()
        return value, exc

    value, exc = asyncio.run(main())
    assert value is None and isinstance(exc, SystemExit) and exc.code == 3


def test_an_abandoned_body_gets_a_replacement_thread_and_its_own_retires() -> None:
    release = threading.Event()

    async def main() -> None:
        slots = SlotThreads(asyncio.get_running_loop(), 1, 8, "test-slot-abandon")
        stuck = slots.submit(lambda: release.wait(30))
        await asyncio.sleep(0.05)
        slots.abandon(stuck)  # what a hard time limit does
        # The single slot is free again at once, though the stuck body still runs.
        assert await asyncio.wait_for(slots.submit(lambda: "next").future, 30) == ("next", None)
        release.set()
        deadline = time.monotonic() + 30
        while slots._abandoned:  # the stuck thread retires instead of taking more work
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        assert not stuck.future.done()  # its late outcome went nowhere
        assert await slots.submit(lambda: "again").future == ("again", None)
        slots.close()

    asyncio.run(main())
    _wait_until(lambda: not [t for t in threading.enumerate() if t.name.startswith("test-slot-abandon")])


def test_a_body_abandoned_before_any_thread_took_it_never_runs() -> None:
    """All slots busy, a waiting body's task is revoked or times out: it must not run later."""
    release = threading.Event()
    ran: list[str] = []

    async def main() -> None:
        slots = SlotThreads(asyncio.get_running_loop(), 1, 0, "test-slot")
        busy = slots.submit(lambda: release.wait(30))
        waiting = slots.submit(lambda: ran.append("abandoned body"))
        slots.abandon(waiting)
        release.set()
        assert await busy.future == (True, None)
        assert await slots.submit(lambda: ran.append("next")).future == (None, None)
        slots.close()

    asyncio.run(main())
    assert ran == ["next"]


def test_a_task_blocked_in_c_past_its_hard_limit_frees_its_slot_and_never_holds_the_exit(
    process_broker_url: str, tmp_path: Path
) -> None:
    """A real worker with one slot; a body asleep in C for 120 s with a 1 s hard limit: the task
    fails with TimeLimitExceeded, the next task runs in the freed slot while the abandoned
    thread sleeps on, and SIGTERM still ends the worker with code 0 at once (the abandoned
    thread must not hold the interpreter's exit)."""
    basic.app.conf.broker_url = process_broker_url
    worker = WorkerProcess(process_broker_url, tmp_path, "-c", "1", name="slots").wait_ready()
    try:
        stuck = basic.sleeper.apply_async(args=(120.0,), time_limit=1)
        with pytest.raises(TimeLimitExceeded):
            stuck.get(timeout=30)
        assert basic.add.delay(2, 2).get(timeout=30) == 4
    finally:
        code = worker.stop(timeout=30)  # killed, and not 0, if it waited for the sleeping thread
        basic.app.close()
    assert code == 0, worker.log()


def test_a_worker_draining_tiny_tasks_fetches_them_in_batches_not_per_freed_slot(tmp_path: Path) -> None:
    """Tasks finishing one by one (the threads pool) must not each trigger a fetch of the few
    jobs there is room for: the fetcher refills at half its target (or an empty inbox)."""
    from conveyor.worker.worker import Worker

    basic.app.conf.broker_url = f"memory://batches-{tmp_path.name}"
    try:
        n = 3000
        basic.add.delay_many([(i, i) for i in range(n)])
        broker = basic.app.broker
        fetches: list[int] = []
        fetch = broker.fetch

        def counted(*args: Any) -> Any:
            got = fetch(*args)
            fetches.append(len(got))
            return got

        broker.fetch = counted  # type: ignore[method-assign]
        Worker(basic.app, pool="threads", burst=True, install_signal_handlers=False).run()
        assert sum(fetches) == n
        assert len(fetches) <= 40, fetches  # a fetch per freed slot or two: about 230
    finally:
        basic.app.close()

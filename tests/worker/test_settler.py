"""The settler (worker/settler.py) on a real broker and a real event loop: outcomes reported from
other threads are all settled, however they race with the settler going to sleep; outcomes that
arrive while a flush runs join the next batch without waking the loop; an outcome someone waits
for is never held back by the gap between flushes."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conveyor.brokers import Broker, JobSpec, Outcome, broker_from_url
from conveyor.worker.settler import Settler

OWNER = "w1"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = broker_from_url(f"sqlite:///{tmp_path}/settler.db")
    yield b
    b.close()


def leased(broker: Broker, n: int) -> list[Outcome]:
    """``n`` jobs enqueued and leased to OWNER, as the acks that finish them."""
    broker.enqueue([JobSpec(f"j{i}", "q", f'{{"id":"j{i}","task":"t"}}'.encode(), 5, None) for i in range(n)])
    deliveries = broker.fetch(["q"], OWNER, n, 300, 0)
    assert len(deliveries) == n
    return [Outcome("ack", d.id, d.delivery) for d in deliveries]


def still_leased(broker: Broker) -> int:
    stats = broker.queue_stats().get("q")
    return 0 if stats is None else stats.leased


class CountingLoop(asyncio.SelectorEventLoop):
    """A real selector loop that counts wake-ups asked for from other threads."""

    def __init__(self) -> None:
        super().__init__()
        self.threadsafe_calls = 0

    def call_soon_threadsafe(self, *args, **kwargs):  # type: ignore[no-untyped-def,override]
        self.threadsafe_calls += 1
        return super().call_soon_threadsafe(*args, **kwargs)


def run_on(loop: asyncio.AbstractEventLoop, main: object) -> None:
    try:
        loop.run_until_complete(main)  # type: ignore[arg-type]
    finally:
        loop.close()


def test_outcomes_reported_from_other_threads_are_all_settled(broker: Broker) -> None:
    """Four threads report 1,600 outcomes in 20 bursts; between two bursts they wait until the
    broker has everything so far, so the settler falls asleep with nothing to settle and the
    next burst's first outcome, from one of the threads, must wake it (a wake-up lost in the
    race between an add and the settler going idle would leave jobs leased for ever)."""
    threads_n, rounds, per_thread = 4, 20, 20
    outcomes = leased(broker, threads_n * rounds * per_thread)
    settled: list[Outcome] = []
    stuck: list[int] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(1) as executor:
            settler = Settler(broker, executor, lambda: 60.0, settled.extend, lambda: None)
            settler.start()
            start = threading.Barrier(threads_n)

            def report(k: int) -> None:
                rnd = random.Random(k)
                share = outcomes[k::threads_n]
                for r in range(rounds):
                    try:
                        start.wait(60)
                    except threading.BrokenBarrierError:  # another reporter gave up: stop too
                        return
                    for outcome in share[r * per_thread : (r + 1) * per_thread]:
                        settler.add(outcome)
                        if rnd.random() < 0.1:
                            time.sleep(rnd.choice((0, 0.0001, 0.001)))
                    deadline = time.monotonic() + 30
                    while len(settled) < (r + 1) * threads_n * per_thread:
                        if time.monotonic() > deadline:
                            stuck.append(r)
                            start.abort()
                            return
                        time.sleep(0.001)

            threads = [
                threading.Thread(target=report, args=(k,), name=f"reporter-{k}") for k in range(threads_n)
            ]
            for t in threads:
                t.start()
            while any(t.is_alive() for t in threads):
                await asyncio.sleep(0.01)
            # Checked before close(): closing flushes whatever a lost wake-up left pending.
            assert not stuck and len(settled) == len(outcomes), "outcomes left pending: a wake-up was lost"
            assert await settler.close(loop.time() + 30) == 0

    asyncio.run(main())
    assert sorted(o.id for o in settled) == sorted(o.id for o in outcomes)
    assert still_leased(broker) == 0


def test_outcomes_added_during_a_flush_join_the_next_batch_without_waking_the_loop(broker: Broker) -> None:
    outcomes = leased(broker, 101)
    batches: list[list[Outcome]] = []
    flushing = threading.Event()
    go_on = threading.Event()

    class SlowBroker:
        """The real broker, with the first settle held until the test lets it go."""

        def settle(self, batch: list[Outcome], result_ttl: float) -> None:
            if not batches:
                flushing.set()
                assert go_on.wait(30)
            broker.settle(batch, result_ttl)

    loop = CountingLoop()

    async def main() -> int:
        with ThreadPoolExecutor(1) as executor:
            settler = Settler(SlowBroker(), executor, lambda: 60.0, batches.append, lambda: None)  # type: ignore[arg-type]
            settler.start()
            settler.add(outcomes[0])  # from the loop: the first flush starts with it
            while not flushing.is_set():
                await asyncio.sleep(0.005)
            calls_before = loop.threadsafe_calls

            def report() -> None:
                for outcome in outcomes[1:]:
                    settler.add(outcome)

            reporter = threading.Thread(target=report)
            reporter.start()
            reporter.join()
            added_during_flush = loop.threadsafe_calls - calls_before
            go_on.set()
            deadline = loop.time() + 30
            while sum(map(len, batches)) < len(outcomes) and loop.time() < deadline:
                await asyncio.sleep(0.005)
            assert await settler.close(loop.time() + 30) == 0
            return added_during_flush

    result: list[int] = []

    async def wrapped() -> None:
        result.append(await main())

    run_on(loop, wrapped())
    assert result == [0], "an add during a flush woke the loop"
    assert [len(b) for b in batches] == [1, 100]
    assert still_leased(broker) == 0


def test_an_outcome_waited_for_is_settled_without_waiting_for_the_gap(broker: Broker) -> None:
    """``add_and_wait`` (an at-most-once task's start) ends the gap between flushes: with the
    gap made an hour long, it still returns once the broker has the outcome."""
    outcomes = leased(broker, 3)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(1) as executor:
            settled: list[Outcome] = []
            settler = Settler(broker, executor, lambda: 60.0, settled.extend, lambda: None)
            settler.start()
            settler.add(outcomes[0])
            while not settled:
                await asyncio.sleep(0.005)
            # A flush just started: the next one would wait for the gap.
            import conveyor.worker.settler as settler_module

            gap, settler_module.SETTLE_GAP = settler_module.SETTLE_GAP, 3600.0
            try:
                settler.add(outcomes[1])
                while not (settler._alarm.sleeping and settler._pending):  # asleep in the gap
                    await asyncio.sleep(0.001)
                await asyncio.wait_for(settler.add_and_wait(outcomes[2]), 30)
            finally:
                settler_module.SETTLE_GAP = gap
            assert {o.id for o in settled} == {o.id for o in outcomes}
            assert await settler.close(loop.time() + 30) == 0

    asyncio.run(main())
    assert still_leased(broker) == 0


def test_while_outcomes_come_fast_the_next_flush_waits_the_longer_gap_and_a_trickle_does_not(
    broker: Broker,
) -> None:
    """Under load (outcomes at ``BUSY_RATE`` a second or faster) the next flush waits
    ``BUSY_GAP`` after the last one started, so batches grow; outcomes arriving one at a time (a
    chain's steps) keep the short gap. With ``BUSY_GAP`` made an hour long: after a batch of
    one, the next outcome is settled at once; after a quarter second's worth at that rate,
    arriving together, the next waits until the settler closes."""
    import conveyor.worker.settler as settler_module

    n = int(settler_module.BUSY_RATE * 0.25)  # busy if they came within 0.25 s of the last flush
    outcomes = leased(broker, n + 3)
    first, trickle, busy, late = outcomes[0], outcomes[1], outcomes[2 : 2 + n], outcomes[-1]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30

        async def settled_count(count: int) -> None:
            while len(settled) < count and loop.time() < deadline:
                await asyncio.sleep(0.005)
            assert len(settled) == count

        with ThreadPoolExecutor(1) as executor:
            settled: list[Outcome] = []
            settler = Settler(broker, executor, lambda: 60.0, settled.extend, lambda: None)
            long_gap, settler_module.BUSY_GAP = settler_module.BUSY_GAP, 3600.0
            try:
                settler.start()
                settler.add(first)
                await settled_count(1)
                settler.add(trickle)  # after a batch of one: only the short gap
                await settled_count(2)
                for o in busy:  # at once, moments after the last flush: one batch, a high rate
                    settler.add(o)
                await settled_count(2 + n)
                settler.add(late)
                await asyncio.sleep(0.5)  # a hundred short gaps
                assert late not in settled and settler._alarm.sleeping  # asleep in the long gap
            finally:
                settler_module.BUSY_GAP = long_gap
            assert await settler.close(loop.time() + 30) == 0  # closing ends the gap
            assert late in settled

    asyncio.run(main())
    assert still_leased(broker) == 0

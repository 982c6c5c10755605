"""Batches outcomes (acks, retries, dead letters) into as few broker round trips as possible.

A flush starts as soon as an outcome arrives and no flush is running; whatever arrives during
a flush goes in the next one. Under load batches grow by themselves; when idle an ack goes out
immediately. Two flushes start at least ``SETTLE_GAP`` apart: a threads pool finishes tasks one
by one, and without the gap each flush would carry a handful of them (a broker round trip per
few tasks, measured in docs/benchmarks.md). While outcomes arrive at ``BUSY_RATE`` or faster
(the last batch over the time since the flush before it) the gap is ``BUSY_GAP``: at thousands
of tasks a second a flush of a dozen outcomes still cost the worker and Redis about as much CPU
per task as the task itself (the call, the GIL passed to the settling thread and back, the
script's fixed work; profiled in docs/benchmarks.md), so a result may then become visible up
to 25 ms later. Below that rate (a chain's steps one after another, a worker running a few
hundred tasks a second) the short gap holds, and comes back once the rate falls below
``IDLE_FRACTION`` of it. A rate, not a batch size: after a long gap a batch is larger at the
same rate, and would keep the long gap once the rate fell. An outcome someone waits for
(``add_and_wait``: an at-most-once task's ``start``) is never held back, and its early flush
does not count for the rate.

If the broker is unreachable the batch is kept and retried with backoff: an outcome is only
dropped once the broker accepted it (and if this process dies first, the leases expire and
the jobs run again — at-least-once).

``add`` may be called from any thread (a slot thread on a streak reports its own runs). It wakes
the loop only when the settler sleeps with nothing to settle: an outcome that arrives while a
flush or the gap runs only joins the next batch, which the settler takes up by itself (a loop
wake-up from another thread costs a tiny task's worth of CPU: profiled in docs/benchmarks.md).

Closing (graceful shutdown) flushes what is pending, retrying at least every
``CLOSING_RETRY`` seconds, until a deadline: a worker asked to stop must stop even when its
broker is gone. What the broker has not taken by then is given up and counted; those leases
expire and the broker takes the jobs back, exactly as if the process had died.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor

from ..brokers import Broker, Outcome
from .alarm import Alarm

logger = logging.getLogger("conveyor.worker")

SETTLE_GAP = 0.005  # shortest time between the starts of two flushes under load; see _run
BUSY_GAP = 0.025  # the same while outcomes arrive at BUSY_RATE or faster
BUSY_RATE = 1600  # outcomes a second (8 per SETTLE_GAP): the settle calls' fixed cost counts
IDLE_FRACTION = 0.6  # ...and the short gap again below this share of it (about 1,000 a second)
CLOSING_RETRY = 0.5  # longest wait between two settle attempts once closing (a deadline runs)


class Settler:
    """``on_settled(batch)`` runs on the loop once the broker has a batch; ``on_trouble()`` when
    a batch failed (the worker then reconciles its leases once the broker is back)."""

    def __init__(
        self,
        broker: Broker,
        executor: Executor,
        result_ttl: Callable[[], float],
        on_settled: Callable[[list[Outcome]], None],
        on_trouble: Callable[[], None],
        name: str = "worker",
    ) -> None:
        self._name = name  # the worker's, for log lines (--processes N share one log)
        self._broker = broker
        self._executor = executor
        self._result_ttl = result_ttl
        self._on_settled = on_settled
        self._on_trouble = on_trouble
        self._pending: list[Outcome] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._alarm = Alarm()  # the settler sleeps on it (idle, the gap, a back-off)
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._flushing: list[Outcome] = []  # the batch the broker is being asked to take now
        self._lock = threading.Lock()  # _pending and _idle, which other threads change
        self._idle = False  # the settler sleeps with nothing pending: the next add wakes it
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._task = asyncio.create_task(self._run(), name="conveyor-settler")

    def add(self, outcome: Outcome) -> None:
        """(Any thread) Settle ``outcome`` with the next batch."""
        with self._lock:
            self._pending.append(outcome)
            if not self._idle:
                return  # the settler is awake (flushing, in the gap): it takes this up itself
            self._idle = False
        loop = self._loop
        if loop is None or threading.get_ident() == self._loop_thread:
            self._alarm.ring()
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody settles any more
            loop.call_soon_threadsafe(self._alarm.ring)

    def _take(self) -> list[Outcome]:
        with self._lock:
            batch, self._pending = self._pending, []
        return batch

    def _put_back(self, batch: list[Outcome]) -> None:
        with self._lock:
            self._pending[:0] = batch

    async def add_and_wait(self, outcome: Outcome) -> None:
        """Add an outcome and return once the broker has it (used before running an at-most-once task)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._lock:
            self._pending.append(outcome)
            self._idle = False
        self._waiters.append(fut)
        self._alarm.ring()  # ends the gap too: someone waits for this one
        await fut

    async def close(self, deadline: float | None = None) -> int:
        """Flush everything still pending, then stop. With ``deadline`` (the loop's clock), stop
        trying then: return how many outcomes the broker had not taken (0: all settled)."""
        self._closing = True
        self._alarm.ring()
        task = self._task
        if task is None:
            return len(self._pending)
        if deadline is None:
            await task
            return 0
        timeout = max(0.0, deadline - asyncio.get_running_loop().time())
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if task in done:
            task.result()  # a bug in the settler itself is raised, not taken for an outage
            return 0
        # Still retrying: the broker is unreachable (or a call to it hangs). A broker call under
        # way goes on in its thread; its answer, if it ever comes, is simply not waited for.
        task.cancel()
        await asyncio.wait({task})
        unreported = len(self._take()) + len(self._flushing)
        for fut in self._waiters:
            fut.cancel()
        self._flushing, self._waiters = [], []
        return unreported

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        delay = 0.05
        failing = False
        started = -SETTLE_GAP
        busy = False  # the last batch came at BUSY_RATE or faster: the longer gap follows it
        while True:
            with self._lock:
                idle = self._idle = not self._pending
            if idle:
                if self._closing:  # checked after every flush, not only after a wake-up
                    return
                await self._alarm.sleep(None)
                with self._lock:
                    self._idle = False
                continue
            gap = started + (BUSY_GAP if busy else SETTLE_GAP) - loop.time()
            if gap > 0 and not self._closing and not self._waiters:
                # The previous flush started moments ago: outcomes are arriving one by one (a
                # busy threads pool). Let them gather for the rest of the gap, so that the
                # broker gets one call per batch instead of one per few tasks. An outcome
                # someone waits for, or closing, ends the wait.
                await self._alarm.sleep(gap)
            now = loop.time()
            batch = self._take()
            waiters, self._waiters = self._waiters, []
            if not waiters:  # a flush someone waits for came early: its batch says nothing of the rate
                # Busy from BUSY_RATE; idle again only well below it, so that a rate near the
                # line does not switch the gap at every flush.
                rate = len(batch) / max(now - started, SETTLE_GAP)
                busy = rate >= (BUSY_RATE * IDLE_FRACTION if busy else BUSY_RATE)
            started = now
            self._flushing = batch
            try:
                await loop.run_in_executor(self._executor, self._broker.settle, batch, self._result_ttl())
            except Exception as exc:
                self._on_trouble()
                if not failing:  # once per outage, as the fetcher and the keeper do
                    logger.error(
                        "%s: could not settle %d outcome(s), will retry: %s", self._name, len(batch), exc
                    )
                    failing = True
                self._put_back(batch)
                self._waiters[:0] = waiters
                self._flushing = []
                # Back off, but not past a close: a closing settler has a deadline, and retries
                # often enough to catch a broker that comes back before it (close nudges it).
                await self._alarm.sleep(min(delay, CLOSING_RETRY) if self._closing else delay)
                delay = min(delay * 2, 5.0)
                continue
            self._flushing = []
            if failing:
                logger.warning(
                    "%s: settled %d outcome(s) held back while the broker failed", self._name, len(batch)
                )
                failing = False
            delay = 0.05
            self._on_settled(batch)
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)

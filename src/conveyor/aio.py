"""Async producers: ``await task.adelay()``, ``await task.aapply_async()``, ``await result.aget()``.

The message is built by the same code as ``apply_async`` (task.py); only the broker round trip
differs. It goes through the broker's native asyncio client (``Broker.async_producer``: redis-py's
``redis.asyncio`` for Redis, a writer thread for SQLite), one per event loop.

Coalescing: every ``adelay`` on one event loop hands its job to the loop's ``Batcher``. The jobs
handed over in one loop tick -- and, while a batch is on its way, every job that arrives
meanwhile -- go to the broker together, in one enqueue call (one Lua script run on Redis, one
transaction on SQLite). That is safe because enqueue is atomic per batch and idempotent by task
id: a batch either lands whole or not at all, and sending it again after a dropped connection
adds nothing twice. Each caller gets its own answer; when the broker is unreachable (after the
``task_publish_retry_policy`` retries) each gets its own ``BrokerError``.

Brokers without a native client: the memory broker is called inline (it never blocks on I/O);
Redis Sentinel and Cluster use the sync client in a thread, still one call per batch.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import states
from .brokers import Broker, JobSpec
from .brokers.base import AsyncProducer
from .brokers.records import KVEntry, StatusRecord
from .exceptions import BrokerError
from .publish import retry_intervals

if TYPE_CHECKING:
    from .appproto import AppLike

BATCH_MAX = 1000  # jobs per enqueue call (as delay_many's chunks)
# Batches on their way at once: two, so the loop builds the next batch while the broker stores
# the last one (one would leave the loop idle during each round trip, and the broker during
# each build); more would only split the same jobs into smaller batches.
IN_FLIGHT = 2
POLL_FIRST, POLL_MAX = 0.002, 0.05  # seconds between status reads where nothing blocks


class SyncProducer(AsyncProducer):
    """A broker without an asyncio client, called inline (memory) or in a thread (others)."""

    def __init__(self, broker: Broker) -> None:
        # Imported here, not at the top: the memory broker is no cost to the start-up of every
        # worker and producer on another broker (on memory:// it is imported already).
        from .brokers.memory import MemoryBroker

        self._broker = broker
        self._inline = isinstance(broker, MemoryBroker)

    async def enqueue(self, jobs: Sequence[JobSpec]) -> list[bool]:
        if self._inline:
            return self._broker.enqueue(jobs)
        return await asyncio.to_thread(self._broker.enqueue, jobs)

    async def status(self, task_id: str) -> StatusRecord | None:
        if self._inline:
            return self._broker.status(task_id)
        return await asyncio.to_thread(self._broker.status, task_id)

    async def wait(self, task_id: str, timeout: float | None) -> StatusRecord | None:
        if not self._inline:
            return await asyncio.to_thread(self._broker.wait, task_id, timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = POLL_FIRST
        while True:
            record = self._broker.status(task_id)
            if record is not None and record.state in states.READY_STATES:
                return record
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return record
            await asyncio.sleep(delay if remaining is None else min(delay, remaining))
            delay = min(delay * 2, POLL_MAX)

    async def kv_get(self, key: str) -> KVEntry | None:
        if self._inline:
            return self._broker.kv_get(key)
        return await asyncio.to_thread(self._broker.kv_get, key)

    async def aclose(self) -> None:
        pass


class Batcher:
    """One event loop's async producer for one broker: coalesces enqueues into batches."""

    def __init__(self, app: AppLike, loop: asyncio.AbstractEventLoop) -> None:
        self.app = app
        self.broker = app.broker
        self.producer: AsyncProducer = self.broker.async_producer() or SyncProducer(self.broker)
        self._loop = loop
        self._pending: list[tuple[JobSpec, asyncio.Future[bool]]] = []
        self._scheduled = False  # a flush is due this tick
        self._in_flight = 0  # batches on their way to the broker

    def submit(self, spec: JobSpec) -> asyncio.Future[bool]:
        """The job joins the next batch; the future says whether the broker added it."""
        future: asyncio.Future[bool] = self._loop.create_future()
        self._pending.append((spec, future))
        if not self._scheduled and self._in_flight < IN_FLIGHT:
            self._scheduled = True
            # After the callbacks already due this tick, so the coroutines started together
            # (asyncio.gather, concurrent requests) all join this batch.
            self._loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._scheduled = False
        if not self._pending:
            return
        batch, self._pending = self._pending[:BATCH_MAX], self._pending[BATCH_MAX:]
        self._in_flight += 1
        task = self._loop.create_task(self._send(batch))
        task.add_done_callback(self._sent)

    def _sent(self, _: asyncio.Task[None]) -> None:
        self._in_flight -= 1
        if self._pending and not self._scheduled:  # what arrived meanwhile goes next, together
            self._flush()

    async def _send(self, batch: list[tuple[JobSpec, asyncio.Future[bool]]]) -> None:
        conf = self.app.conf
        jobs = [spec for spec, _ in batch]
        try:
            pauses = retry_intervals(conf.task_publish_retry, conf.task_publish_retry_policy)
            added = await self._enqueue(jobs, pauses)
        except BaseException as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(_own_error(exc))
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), flag in zip(batch, added, strict=True):
            if not future.done():  # (a caller that was cancelled no longer listens)
                future.set_result(flag)

    async def _enqueue(self, jobs: list[JobSpec], pauses: list[float]) -> list[bool]:
        for pause in pauses:
            try:
                return await self.producer.enqueue(jobs)
            except BrokerError:
                await asyncio.sleep(pause)
        return await self.producer.enqueue(jobs)


def _own_error(exc: BaseException) -> BaseException:
    """A fresh exception per waiting caller (one raised in many coroutines would collect all
    their tracebacks), chained to the batch's."""
    if isinstance(exc, BrokerError):
        own = BrokerError(str(exc))
        own.__cause__ = exc
        return own
    if isinstance(exc, asyncio.CancelledError):
        return BrokerError("the enqueue was cancelled (its event loop is stopping); the job may not be sent")
    return exc


_batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, Batcher]] = (
    weakref.WeakKeyDictionary()
)
_lock = threading.Lock()
_closing: set[asyncio.Task[None]] = set()


_last: tuple[asyncio.AbstractEventLoop, Broker, Batcher] | None = None


def batcher(app: AppLike) -> Batcher:
    """The running loop's batcher for ``app``'s broker (made on first use)."""
    global _last
    loop = asyncio.get_running_loop()
    broker = app.broker
    last = _last  # the usual case, without the lock: the same loop and broker as last time
    if last is not None and last[0] is loop and last[1] is broker:
        return last[2]
    with _lock:
        per_loop = _batchers.setdefault(loop, {})
        found = per_loop.get(id(broker))
        if found is None or found.broker is not broker:
            if found is not None:  # its broker was closed (app.close()): so are its connections
                closing = loop.create_task(found.producer.aclose())
                _closing.add(closing)  # (a task nobody references may be collected mid-way)
                closing.add_done_callback(_closing.discard)
            found = per_loop[id(broker)] = Batcher(app, loop)
    _last = (loop, broker, found)
    return found


async def enqueue(app: AppLike, spec: JobSpec) -> bool:
    """Send one job with the loop's next batch; True if the broker added it (False: its id was
    already known)."""
    return await batcher(app).submit(spec)


def producer(app: AppLike) -> AsyncProducer:
    """The running loop's async client of ``app``'s broker (for results)."""
    return batcher(app).producer


async def close_producers() -> None:
    """Close the running loop's broker connections (in a FastAPI lifespan's shutdown)."""
    loop = asyncio.get_running_loop()
    global _last
    with _lock:
        per_loop = _batchers.pop(loop, {})
        _last = None
    for found in per_loop.values():
        await found.producer.aclose()

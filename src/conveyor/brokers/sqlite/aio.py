"""The SQLite broker's async producer: one writer thread and one reader thread per broker.

Why threads and not aiosqlite: SQLite has no network protocol to speak asynchronously, so every
async SQLite library runs the blocking ``sqlite3`` calls in a thread anyway (aiosqlite keeps one
thread per connection). Owning that thread here keeps the one place that holds the SQL (the
sync broker's ``enqueue`` and ``status``), adds no dependency, and fits SQLite's rule of one
writer at a time: the async batcher (conveyor/aio.py) hands the writer thread a whole loop
tick's jobs, which it commits in one ``BEGIN IMMEDIATE`` transaction. Reads (status, progress)
go to a second thread so a waiting reader never queues behind a batch being written.

The threads are the broker's, shared by every event loop that uses it, and stop with
``broker.close()``; an instance of this class is per loop only to match the other brokers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ... import states
from ..base import AsyncProducer
from ..records import JobSpec, KVEntry, StatusRecord

if TYPE_CHECKING:
    from .broker import SQLiteBroker

POLL_FIRST = 0.002  # seconds: an awaited result is read again after this, then less often
POLL_MAX = 0.05


class SQLiteAsyncProducer(AsyncProducer):
    def __init__(self, broker: SQLiteBroker) -> None:
        self._broker = broker

    async def enqueue(self, jobs: Sequence[JobSpec]) -> list[bool]:
        if not jobs:
            return []
        writer = self._broker.async_threads()[0]
        return await asyncio.get_running_loop().run_in_executor(writer, self._broker.enqueue, jobs)

    async def status(self, task_id: str) -> StatusRecord | None:
        reader = self._broker.async_threads()[1]
        return await asyncio.get_running_loop().run_in_executor(reader, self._broker.status, task_id)

    async def wait(self, task_id: str, timeout: float | None) -> StatusRecord | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = POLL_FIRST
        while True:
            record = await self.status(task_id)
            if record is not None and record.state in states.READY_STATES:
                return record
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return record
            await asyncio.sleep(delay if remaining is None else min(delay, remaining))
            delay = min(delay * 2, POLL_MAX)

    async def kv_get(self, key: str) -> KVEntry | None:
        reader = self._broker.async_threads()[1]
        return await asyncio.get_running_loop().run_in_executor(reader, self._broker.kv_get, key)

    async def aclose(self) -> None:
        pass  # the threads are the broker's: broker.close() stops them

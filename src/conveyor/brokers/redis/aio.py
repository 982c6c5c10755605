"""The Redis broker's async producer: redis-py's asyncio client sending the same scripts.

An async producer (``await task.adelay()``, ``await result.aget()``) talks to Redis on the event
loop, not through a thread per call. Everything that decides *what* is sent -- the enqueue
script's arguments, the status script's keys, how its reply reads -- is the sync broker's own
(``RedisBroker._enqueue_args``, ``_status_call``, ``_status_record``); this module only sends.

One instance per event loop (asyncio connections belong to the loop that opened them); made by
``RedisBroker.async_producer`` for a single server (Sentinel and Cluster use the sync client in
a thread). Errors become ``BrokerError`` through the sync connection's mapping, so a caller sees
the same message whichever way it enqueued.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import redis
import redis.asyncio as aioredis
from hiredis import pack_command
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.exceptions import NoScriptError
from redis.retry import Retry

from ... import states
from ...exceptions import BrokerError, ConfigurationError
from ..base import AsyncProducer
from ..records import JobSpec, KVEntry, StatusRecord
from .connection import Arg

if TYPE_CHECKING:
    from .broker import RedisBroker


class RedisAsyncProducer(AsyncProducer):
    """Enqueue, status, wait and ``kv_get`` on ``redis.asyncio``, for one event loop."""

    def __init__(self, broker: RedisBroker) -> None:
        self._broker = broker
        url = broker._url
        options: dict[str, Any] = dict(url.options)
        options["retry"] = Retry(NoBackoff(), 0)  # as the sync pool: the caller decides on retries
        if not url.pool_url.startswith("unix:"):
            options["socket_keepalive"] = True
        try:
            self._pool = aioredis.ConnectionPool.from_url(url.pool_url, **options)
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(f"bad Redis URL option: {exc}") from None
        self._client = aioredis.Redis(connection_pool=self._pool)

    async def enqueue(self, jobs: Sequence[JobSpec]) -> list[bool]:
        if not jobs:
            return []
        b = self._broker
        args = b._enqueue_args(jobs)
        added = await self._run(b._conn.scripts.enqueue, b._enqueue_keys, args, confirmed=True)
        return [flag == 1 for flag in added]

    async def status(self, task_id: str) -> StatusRecord | None:
        return await self._status(task_id, None)

    async def _status(self, task_id: str, register_ms: int | None) -> StatusRecord | None:
        b = self._broker
        keys, args = b._status_call(task_id, register_ms)
        try:
            reply = await self._run(b._conn.scripts.status, keys, args)
        except BrokerError as exc:  # a read: once more on a fresh connection after a restart
            if not isinstance(exc.__cause__, redis.ConnectionError | redis.TimeoutError):
                raise
            reply = await self._run(b._conn.scripts.status, keys, args)
        return b._status_record(reply)

    async def wait(self, task_id: str, timeout: float | None) -> StatusRecord | None:
        """As ``RedisBroker.wait``: registered as a waiter atomically with the status read, then
        BLPOP on the task's done list, in slices shorter than the socket timeout."""
        from .broker import MIN_BLOCK, WAITER_SLACK, _ms

        b = self._broker
        deadline = None if timeout is None else time.monotonic() + timeout
        done = b._keys.done(task_id)
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return await self.status(task_id)
            block = max(MIN_BLOCK, b._max_block if remaining is None else min(remaining, b._max_block))
            record = await self._status(task_id, _ms(block + WAITER_SLACK))
            if record is not None and record.state in states.READY_STATES:
                return record
            try:
                woken = await self._client.blpop([done], timeout=block)
                if woken is None:
                    await self._run(b._conn.scripts.unwait, [b._keys.waiting(task_id)], [])
            except redis.RedisError as exc:
                raise b._conn.error(exc) from exc

    async def kv_get(self, key: str) -> KVEntry | None:
        name = self._broker._keys.kv(key)
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.get(name)
                pipe.pttl(name)
                value, ttl_ms = await pipe.execute()
        except redis.RedisError as exc:
            raise self._broker._conn.error(exc) from exc
        if value is None:
            return None
        return KVEntry(value, None if ttl_ms < 0 else time.time() + ttl_ms / 1000)

    async def _run(
        self, script: Script, keys: Sequence[str], args: Sequence[Arg], confirmed: bool = False
    ) -> Any:
        """EVALSHA on one pooled connection (SCRIPT LOAD and again after NOSCRIPT); with
        ``confirmed`` and ``wait_replicas``, WAIT on that same connection, as the sync path."""
        sync = self._broker._conn
        try:
            conn: Any = await self._pool.get_connection()  # type: ignore[no-untyped-call]
        except redis.RedisError as exc:
            raise sync.error(exc) from exc
        try:
            try:
                reply = await self._send(conn, "EVALSHA", script.sha, len(keys), *keys, *args)
            except NoScriptError:
                await self._send(conn, "SCRIPT", "LOAD", cast(str, script.script))  # scripts.py: text
                reply = await self._send(conn, "EVALSHA", script.sha, len(keys), *keys, *args)
            if confirmed and sync.wait_replicas:
                acked = await self._send(conn, "WAIT", sync.wait_replicas, sync.wait_timeout_ms)
                sync._check_acked(int(acked))
            return reply
        except redis.RedisError as exc:
            raise sync.error(exc) from exc
        finally:
            await self._pool.release(conn)

    @staticmethod
    async def _send(conn: Any, *command: Arg) -> Any:
        try:
            # Packed by hiredis, as the sync path does: redis-py's pure-Python packing would
            # cost more than the rest of a batch together (six arguments per job).
            await conn.send_packed_command([pack_command(command)])  # type: ignore[arg-type]
            return await conn.read_response()
        except redis.ResponseError:
            raise
        except BaseException:
            # Failed or cancelled mid-command: the reply may still be on the socket.
            await conn.disconnect()
            raise

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._pool.disconnect()

"""SAQ peer: task module + benchmark commands (see ``_common.py``). Runs in SAQ's own venv."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import _common
import redis.asyncio as aioredis
from saq import Queue

REDIS_URL, BROKER_URL = _common.configure_env()

PROCESSES = 2
CONCURRENCY = 10  # SAQ's default per-process concurrency

queue = Queue.from_url(BROKER_URL, name="bench")


async def startup(ctx: dict[str, Any]) -> None:
    ctx["bench"] = aioredis.Redis.from_url(REDIS_URL)


async def shutdown(ctx: dict[str, Any]) -> None:
    await ctx["bench"].aclose()


async def incr(ctx: dict[str, Any]) -> None:
    await ctx["bench"].incr(_common.COUNTER_KEY)


async def mark(ctx: dict[str, Any], *, enqueued_at: float) -> None:
    await ctx["bench"].rpush(_common.LATENCY_KEY, time.time() - enqueued_at)


settings = {
    "queue": queue,
    "functions": [incr, mark],
    "concurrency": CONCURRENCY,
    "startup": startup,
    "shutdown": shutdown,
}


def enqueue(n: int) -> float:
    async def run() -> float:
        q = Queue.from_url(BROKER_URL, name="bench")
        start = time.perf_counter()
        for _ in range(n):
            await q.enqueue("incr")
        elapsed = time.perf_counter() - start
        await q.disconnect()
        return elapsed

    return asyncio.run(run())


def load(rate: float, seconds: float) -> int:
    async def run() -> int:
        q = Queue.from_url(BROKER_URL, name="bench")
        sent = 0
        async for _ in _common.apaced(rate, seconds):
            await q.enqueue("mark", enqueued_at=time.time())
            sent += 1
        await q.disconnect()
        return sent

    return asyncio.run(run())


def worker_cmds() -> list[list[str]]:
    return [[_common.bin_path("saq"), "saq_peer.settings", "--workers", str(PROCESSES)]]


ADAPTER = _common.Adapter(
    dist="saq",
    concurrency=f"`saq --workers {PROCESSES}`, concurrency={CONCURRENCY} per process (default)",
    worker_cmds=worker_cmds,
    enqueue=enqueue,
    enqueue_api="await queue.enqueue(name)",
    bulk=None,
    bulk_api="n/a: SAQ has no bulk enqueue (Queue.map enqueues one by one and waits for results)",
    load=load,
)

if __name__ == "__main__":
    import saq_peer

    _common.main(saq_peer.ADAPTER)

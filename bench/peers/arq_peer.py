"""arq peer: task module + benchmark commands (see ``_common.py``). Runs in arq's own venv."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import _common
import redis.asyncio as aioredis
from arq import create_pool
from arq.connections import RedisSettings

REDIS_URL, BROKER_URL = _common.configure_env()

PROCESSES = 2  # arq has no multi-process supervisor: one asyncio worker process per core.
# arq's defaults (poll_delay=0.5 s, max_jobs=10) cap a process at a few hundred short jobs/s and put
# ~0.5 s of polling delay on every job; we use its documented knobs to make it fast for short jobs.
POLL_DELAY = 0.01
MAX_JOBS = 100


async def startup(ctx: dict[str, Any]) -> None:
    ctx["bench"] = aioredis.Redis.from_url(REDIS_URL)


async def shutdown(ctx: dict[str, Any]) -> None:
    await ctx["bench"].aclose()


async def incr(ctx: dict[str, Any]) -> None:
    await ctx["bench"].incr(_common.COUNTER_KEY)


async def mark(ctx: dict[str, Any], enqueued_at: float) -> None:
    await ctx["bench"].rpush(_common.LATENCY_KEY, time.time() - enqueued_at)


class WorkerSettings:
    functions = [incr, mark]
    on_startup = startup
    on_shutdown = shutdown
    redis_settings = RedisSettings.from_dsn(BROKER_URL)
    keep_result = 0  # do not store results (the equivalent of ignore_result elsewhere)
    poll_delay = POLL_DELAY
    max_jobs = MAX_JOBS


# Passed to the arq CLI with --custom-log-dict: arq logs every job start/finish at INFO otherwise.
LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler", "level": "WARNING"}},
    "loggers": {"arq": {"handlers": ["stderr"], "level": "WARNING"}},
}


def enqueue(n: int) -> float:
    async def run() -> float:
        pool = await create_pool(RedisSettings.from_dsn(BROKER_URL))
        start = time.perf_counter()
        for _ in range(n):
            await pool.enqueue_job("incr")
        elapsed = time.perf_counter() - start
        await pool.aclose()
        return elapsed

    return asyncio.run(run())


def load(rate: float, seconds: float) -> int:
    async def run() -> int:
        pool = await create_pool(RedisSettings.from_dsn(BROKER_URL))
        sent = 0
        async for _ in _common.apaced(rate, seconds):
            await pool.enqueue_job("mark", time.time())
            sent += 1
        await pool.aclose()
        return sent

    return asyncio.run(run())


def worker_cmds() -> list[list[str]]:
    cmd = [_common.bin_path("arq"), "arq_peer.WorkerSettings", "--custom-log-dict", "arq_peer.LOG_CONFIG"]
    return [cmd for _ in range(PROCESSES)]


ADAPTER = _common.Adapter(
    dist="arq",
    concurrency=f"{PROCESSES} x `arq` worker process, max_jobs={MAX_JOBS}, poll_delay={POLL_DELAY} s",
    worker_cmds=worker_cmds,
    enqueue=enqueue,
    enqueue_api="await pool.enqueue_job(name)",
    bulk=None,
    bulk_api="n/a: arq has no bulk enqueue API",
    load=load,
)

if __name__ == "__main__":
    import arq_peer

    _common.main(arq_peer.ADAPTER)

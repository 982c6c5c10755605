"""Conveyor task module for the benchmark (``conveyor -A bench.conveyor_tasks worker ...``).

The broker URL comes from ``$CONVEYOR_BROKER_URL`` and the benchmark Redis (counter and latency
list) from ``$BENCH_REDIS_URL``; ``bench/peers/conveyor_bench.py`` sets both.
"""

from __future__ import annotations

import os
import time

import redis

from conveyor import Conveyor

COUNTER_KEY = "bench:counter"  # same keys as bench/peers/_common.py
LATENCY_KEY = "bench:latency"

app = Conveyor("bench", broker=os.environ.get("CONVEYOR_BROKER_URL", "sqlite:///conveyor-bench.db"))
r = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])


@app.task(ignore_result=True)
def incr() -> None:
    r.incr(COUNTER_KEY)


@app.task(ignore_result=True)
def cpu() -> None:
    """About 20 ms of pure Python (the same body as every peer's), then one INCR."""
    from _common import cpu_work  # bench/peers is on the worker's PYTHONPATH

    cpu_work()
    r.incr(COUNTER_KEY)


@app.task(ignore_result=True)
def mark(enqueued_at: float) -> None:
    r.rpush(LATENCY_KEY, time.time() - enqueued_at)

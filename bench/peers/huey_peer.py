"""Huey peer: task module + benchmark commands (see ``_common.py``). Runs in Huey's own venv."""

from __future__ import annotations

import time

import _common
import redis
from huey import RedisHuey

REDIS_URL, BROKER_URL = _common.configure_env()

WORKERS = 2
WORKER_TYPE = "process"

# results=False: do not store return values (the equivalent of ignore_result elsewhere).
# RedisHuey's default blocking=True makes the consumer wait in BRPOP instead of polling.
huey = RedisHuey("bench", url=BROKER_URL, results=False)
r = redis.Redis.from_url(REDIS_URL)


@huey.task()
def incr() -> None:
    r.incr(_common.COUNTER_KEY)


@huey.task()
def mark(enqueued_at: float) -> None:
    r.rpush(_common.LATENCY_KEY, time.time() - enqueued_at)


def enqueue(n: int) -> float:
    return _common.timed(incr, n)


def load(rate: float, seconds: float) -> int:
    sent = 0
    for _ in _common.paced(rate, seconds):
        mark(time.time())
        sent += 1
    return sent


def worker_cmds() -> list[list[str]]:
    # -q: warnings only (the consumer otherwise logs every task execution at INFO).
    return [
        [_common.bin_path("huey_consumer"), "huey_peer.huey", "-w", str(WORKERS), "-k", WORKER_TYPE, "-q"]
    ]


ADAPTER = _common.Adapter(
    dist="huey",
    concurrency=f"1 consumer, {WORKERS} {WORKER_TYPE} workers (-w {WORKERS} -k {WORKER_TYPE})",
    worker_cmds=worker_cmds,
    enqueue=enqueue,
    enqueue_api="task()",
    bulk=None,
    bulk_api="n/a: Huey has no bulk enqueue API",
    load=load,
)

if __name__ == "__main__":
    import huey_peer

    _common.main(huey_peer.ADAPTER)

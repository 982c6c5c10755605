"""Dramatiq peer: task module + benchmark commands (see ``_common.py``). Runs in Dramatiq's own venv."""

from __future__ import annotations

import time

import _common
import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

REDIS_URL, BROKER_URL = _common.configure_env()

broker = RedisBroker(url=BROKER_URL)
dramatiq.set_broker(broker)
r = redis.Redis.from_url(REDIS_URL)


@dramatiq.actor(max_retries=0)
def incr() -> None:
    r.incr(_common.COUNTER_KEY)


@dramatiq.actor(max_retries=0)
def mark(enqueued_at: float) -> None:
    r.rpush(_common.LATENCY_KEY, time.time() - enqueued_at)


def enqueue(n: int) -> float:
    return _common.timed(incr.send, n)


def bulk(n: int) -> float:
    start = time.perf_counter()
    dramatiq.group(incr.message() for _ in range(n)).run()
    return time.perf_counter() - start


def load(rate: float, seconds: float) -> int:
    sent = 0
    for _ in _common.paced(rate, seconds):
        mark.send(time.time())
        sent += 1
    return sent


def worker_cmds() -> list[list[str]]:
    # Dramatiq's defaults: one process per CPU (2) with 8 worker threads each.
    return [[_common.bin_path("dramatiq"), "dramatiq_peer", "--processes", "2", "--threads", "8"]]


ADAPTER = _common.Adapter(
    dist="dramatiq",
    concurrency="2 processes x 8 threads (Dramatiq defaults on 2 CPUs)",
    worker_cmds=worker_cmds,
    enqueue=enqueue,
    enqueue_api="actor.send()",
    bulk=bulk,
    bulk_api="group(actor.message() ...).run()",
    load=load,
)

if __name__ == "__main__":
    import dramatiq_peer

    _common.main(dramatiq_peer.ADAPTER)

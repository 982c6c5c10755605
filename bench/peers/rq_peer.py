"""RQ peer: task module + benchmark commands (see ``_common.py``). Runs in RQ's own venv."""

from __future__ import annotations

import time

import _common
import redis
from rq import Queue

REDIS_URL, BROKER_URL = _common.configure_env()

QUEUE_NAME = "bench"
WORKERS = 2
# RQ's default Worker forks a "work horse" process per job (isolation, ~100s of jobs/s). SimpleWorker
# runs jobs in the worker process itself, which is RQ's fast configuration for short jobs; we
# benchmark the faster one. Set to "rq.worker.Worker" to measure the default.
WORKER_CLASS = "rq.worker.SimpleWorker"

r = redis.Redis.from_url(REDIS_URL)
queue = Queue(QUEUE_NAME, connection=redis.Redis.from_url(BROKER_URL))


def incr() -> None:
    r.incr(_common.COUNTER_KEY)


def mark(enqueued_at: float) -> None:
    r.rpush(_common.LATENCY_KEY, time.time() - enqueued_at)


def enqueue(n: int) -> float:
    # result_ttl=0: do not keep results (the equivalent of ignore_result elsewhere).
    return _common.timed(lambda: queue.enqueue(incr, result_ttl=0), n)


def bulk(n: int) -> float:
    start = time.perf_counter()
    queue.enqueue_many([Queue.prepare_data(incr, result_ttl=0) for _ in range(n)])
    return time.perf_counter() - start


def load(rate: float, seconds: float) -> int:
    sent = 0
    for _ in _common.paced(rate, seconds):
        queue.enqueue(mark, time.time(), result_ttl=0)
        sent += 1
    return sent


def worker_cmds() -> list[list[str]]:
    cmd = [
        _common.bin_path("rq"),
        "worker",
        "--url",
        BROKER_URL,
        "--worker-class",
        WORKER_CLASS,
        "--quiet",
        QUEUE_NAME,
    ]
    return [[*cmd[:2], "--name", f"bench-{i}", *cmd[2:]] for i in range(WORKERS)]


ADAPTER = _common.Adapter(
    dist="rq",
    concurrency=f"{WORKERS} x `rq worker` ({WORKER_CLASS.rsplit('.', 1)[-1]}, no fork per job)",
    worker_cmds=worker_cmds,
    enqueue=enqueue,
    enqueue_api="queue.enqueue(func)",
    bulk=bulk,
    bulk_api="queue.enqueue_many([Queue.prepare_data(...)])",
    load=load,
)

if __name__ == "__main__":
    import rq_peer

    _common.main(rq_peer.ADAPTER)

"""Celery peer: task module + benchmark commands (see ``_common.py``). Runs in Celery's own venv."""

from __future__ import annotations

import time

import _common
import redis
from celery import Celery, group

REDIS_URL, BROKER_URL = _common.configure_env()

app = Celery("celery_peer", broker=BROKER_URL)
app.conf.update(
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
r = redis.Redis.from_url(REDIS_URL)


@app.task(name="bench.incr", ignore_result=True)
def incr() -> None:
    r.incr(_common.COUNTER_KEY)


@app.task(name="bench.mark", ignore_result=True)
def mark(enqueued_at: float) -> None:
    r.rpush(_common.LATENCY_KEY, time.time() - enqueued_at)


@app.task(name="bench.cpu", ignore_result=True)
def cpu() -> None:
    _common.cpu_work()
    r.incr(_common.COUNTER_KEY)


def enqueue_cpu(n: int) -> float:
    return _common.timed(cpu.delay, n)


def enqueue(n: int) -> float:
    return _common.timed(incr.delay, n)


def bulk(n: int) -> float:
    start = time.perf_counter()
    group(incr.s() for _ in range(n)).apply_async()
    return time.perf_counter() - start


def load(rate: float, seconds: float) -> int:
    sent = 0
    for _ in _common.paced(rate, seconds):
        mark.delay(time.time())
        sent += 1
    return sent


def worker_cmds() -> list[list[str]]:
    # Celery's default pool (prefork) with its default concurrency (= CPU count = 2). The three
    # --without-* flags only skip cluster chatter at startup/idle; they do not change task handling.
    return [
        [
            _common.bin_path("celery"),
            "-A",
            "celery_peer",
            "worker",
            "-P",
            "prefork",
            "-c",
            "2",
            "-l",
            "warning",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ]
    ]


ADAPTER = _common.Adapter(
    dist="celery",
    extra_dists=("kombu", "redis", "hiredis"),
    concurrency="1 worker, prefork pool -c 2 (Celery default), prefetch x4 (default)",
    worker_cmds=worker_cmds,
    enqueue=enqueue,
    enqueue_api="task.delay()",
    bulk=bulk,
    bulk_api="group(task.s() ...).apply_async()",
    load=load,
    enqueue_cpu=enqueue_cpu,
)

if __name__ == "__main__":
    # Re-import under the real module name so the objects used are the ones the worker imports.
    import celery_peer

    _common.main(celery_peer.ADAPTER)

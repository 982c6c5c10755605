"""Celery's side of bench/workflows.py: a chord of N no-op header tasks against a plain drain.

Runs in Celery's own virtualenv (``.bench-cache/venvs/celery``, built by bench/run.py). It is
both the task module the worker imports (``celery -A celery_chord worker -P prefork -c 2``,
started by bench/workflows.py with ``PYTHONPATH=bench/peers``) and the enqueuer::

    python celery_chord.py enqueue chord|drain N --redis-url URL

It prints one JSON line and exits. A chord needs a result backend (Celery refuses a chord
without one), so the app's backend is the same Redis as its broker; the header task stores its
result (``None``) because Celery's Redis chord counts a header's stored result, while the drain's
task ignores its result, as a plain task would. The body pushes ``"<time> <len(results)>"`` to
the ``bench:chord-body`` list, which is what bench/workflows.py waits for.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import _common
import redis
from celery import Celery, chord, group

REDIS_URL, BROKER_URL = _common.configure_env()
BODY_KEY = "bench:chord-body"  # same key as bench/workflow_tasks.py

app = Celery("celery_chord", broker=BROKER_URL, backend=BROKER_URL)
app.conf.update(broker_connection_retry_on_startup=True, worker_hijack_root_logger=False)
r = redis.Redis.from_url(REDIS_URL)


@app.task(name="bench.incr", ignore_result=True)
def incr() -> None:
    r.incr(_common.COUNTER_KEY)


@app.task(name="bench.chord_incr")
def chord_incr() -> None:
    r.incr(_common.COUNTER_KEY)


@app.task(name="bench.chord_body", ignore_result=True)
def chord_body(results: list[Any]) -> None:
    r.rpush(BODY_KEY, f"{time.time()!r} {len(results)}")


def enqueue(kind: str, n: int) -> float:
    start = time.perf_counter()
    if kind == "chord":
        chord(chord_incr.s() for _ in range(n))(chord_body.s())
    else:
        group(incr.s() for _ in range(n)).apply_async()
    return time.perf_counter() - start


def worker_cmd() -> list[str]:
    # The same worker as bench/peers/celery_peer.py: prefork pool, concurrency 2.
    return [
        _common.bin_path("celery"),
        "-A",
        "celery_chord",
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


if __name__ == "__main__":
    import celery_chord  # the objects the worker imports, under their real module name

    args = [a for a in sys.argv[1:] if not a.startswith("--") and a not in (REDIS_URL, BROKER_URL)]
    if args[:1] == ["enqueue"] and len(args) == 3 and args[1] in ("chord", "drain"):
        seconds = celery_chord.enqueue(args[1], int(args[2]))
        print(json.dumps({"enqueue_seconds": seconds, "worker_cmd": celery_chord.worker_cmd()}))
    else:
        raise SystemExit("usage: celery_chord.py enqueue chord|drain N --redis-url URL")

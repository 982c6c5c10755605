"""How long each dashboard page takes at scale: task history, dead letters, queues, workers.

Fills a broker with ``--history`` task-history records (through the worker's real settle path,
bench/history.py; one in 50 a failure), ``--dead`` dead letters, ``--queues`` queues holding
a few ready tasks each and ``--workers`` fake worker heartbeats (each running 4 tasks, renewed
every second while the pages are timed), then serves ``conveyor dashboard`` on it and times
each page over HTTP (the median and the worst of ``--rounds`` requests, after one warm-up).

    .venv/bin/python bench/dashboard.py [--broker sqlite|redis] [--history 1000000] [--dead 10000]
                                        [--queues 50] [--workers 20] [--rounds 5]

Filling 1,000,000 records takes minutes; ``--history 100000`` gives the shape quickly (the
pages read one page of the newest records, so their time barely depends on the total).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path[:0] = [str(REPO_ROOT)]

from bench.history import _write as write_history  # noqa: E402
from bench.run import RedisServer  # noqa: E402

from conveyor import states  # noqa: E402
from conveyor.brokers import Broker, HistoryEntry, JobSpec, Outcome, broker_from_url  # noqa: E402
from conveyor.message import Envelope, encode_envelope  # noqa: E402
from conveyor.taskrecord import TaskRecord, encode_record  # noqa: E402

PAGES = [
    "/",
    "/queues",
    "/workers",
    "/tasks",
    "/tasks?state=failed",
    "/tasks?search=needle-oldest",
    "/tasks?search=00004242",
    "/tasks?name=proj.tasks.refresh_city&since=1h",
    "/scheduled",
    "/dead",
    "/dead?search=mail-77",
    "/periodic",
    "/locks",
    "/actions",
]


def _spec(task_id: str, queue: str, task: str, args: list[object]) -> JobSpec:
    env = Envelope(id=task_id, task=task, args=args, created=time.time())
    return JobSpec(task_id, queue, encode_envelope(env))


def oldest(broker: Broker) -> None:
    """One record older than all the others, whose arguments alone hold "needle-oldest": the
    worst case of a text search (one match, at the far end of the history)."""
    at = time.time() - 3600
    args = "'needle-oldest'"
    rec = encode_record(
        TaskRecord("proj.tasks.refresh_city", "default", states.SUCCESS, args=args, finished=at)
    )
    entry = HistoryEntry("proj.tasks.refresh_city", "default", states.SUCCESS, at, 0.1, args, rec)
    broker.record_history([("needle-oldest-task", entry, None)])


def fill_dead(broker: Broker, n: int) -> None:
    for first in range(0, n, 1000):
        ids = [f"dead-{i:08d}" for i in range(first, min(n, first + 1000))]
        broker.enqueue([_spec(i, "mail", "proj.tasks.send_mail", [f"mail-{i[5:]}"]) for i in ids])
        deliveries = broker.fetch(["mail"], "filler", len(ids), 60, 0)
        broker.settle(
            [
                Outcome("dead", d.id, d.delivery, states.FAILURE, None, reason="SMTPError: 554")
                for d in deliveries
            ],
            86400,
        )


def fill_queues(broker: Broker, queues: int) -> list[str]:
    names = [f"queue-{q:02d}" for q in range(queues)]
    for name in names:
        broker.enqueue([_spec(f"{name}-{i}", name, "proj.tasks.work", [i]) for i in range(20)])
    return names


def heartbeats(broker: Broker, workers: int, queues: list[str], stop: threading.Event) -> None:
    """Fake workers, each running 4 tasks, heartbeating every second until ``stop``."""
    started = time.time()
    while not stop.is_set():
        now = time.time()
        for w in range(workers):
            active = [
                {
                    "id": f"run-{w}-{t}",
                    "task": "proj.tasks.work",
                    "args": "1, 2",
                    "queue": queues[w % len(queues)],
                    "started": now - 5,
                    "attempt": 1,
                }
                for t in range(4)
            ]
            info = {
                "hostname": f"w{w}@bench",
                "host": "bench",
                "pid": 1000 + w,
                "queues": queues[:5],
                "pool": "thread",
                "concurrency": 8,
                "started": started,
                "processed": 1000 * w,
                "active": active,
                "memory_rss": 80 * 2**20,
            }
            broker.heartbeat(f"w{w}@bench/pid-{w}", 3600, json.dumps(info).encode())
        stop.wait(1.0)


def time_pages(url: str, rounds: int) -> None:
    with httpx.Client(base_url=url, timeout=60) as client:
        print(f"{'page':48} {'median':>9} {'worst':>9}  status")
        for path in PAGES:
            client.get(path)  # warm-up
            took, status = [], 0
            for _ in range(rounds):
                start = time.perf_counter()
                status = client.get(path).status_code
                took.append(time.perf_counter() - start)
            print(f"{path:48} {statistics.median(took) * 1000:7.1f}ms {max(took) * 1000:7.1f}ms  {status}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--broker", choices=["sqlite", "redis"], default="sqlite")
    parser.add_argument("--history", type=int, default=1_000_000)
    parser.add_argument("--dead", type=int, default=10_000)
    parser.add_argument("--queues", type=int, default=50)
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--port", type=int, default=5598)
    options = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="conveyor-bench-dashboard-"))
    redis = None
    if options.broker == "redis":
        redis = RedisServer("redis-server")
        redis.start()
        url = redis.url
    else:
        url = f"sqlite:///{tmp / 'broker.db'}"
    stop = threading.Event()
    server = None
    try:
        start = time.perf_counter()
        broker = broker_from_url(url)
        oldest(broker)
        write_history(url, options.history)
        fill_dead(broker, options.dead)
        queues = fill_queues(broker, options.queues)
        print(
            f"{options.broker}: filled {options.history:,} history records, {options.dead:,} dead letters, "
            f"{options.queues} queues, {options.workers} workers in {time.perf_counter() - start:.0f}s"
        )
        beat = threading.Thread(target=heartbeats, args=(broker, options.workers, queues, stop), daemon=True)
        beat.start()
        server = subprocess.Popen(
            [sys.executable, "-m", "conveyor", "-b", url, "dashboard", "--port", str(options.port)],
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            stdout=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{options.port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(base + "/locks", timeout=5)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        time_pages(base, options.rounds)
    finally:
        stop.set()
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        if redis is not None:
            redis.cleanup()


if __name__ == "__main__":
    main()

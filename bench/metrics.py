"""How long a Prometheus scrape of ``/metrics`` takes at the issue's scale: 50 queues (each with
ready and delayed tasks), 20 workers heartbeating with running tasks, 1,000 dead letters and six
hours of per-minute counters for 20 task names (``--counter-minutes``). Target: under 100 ms.

Usage (with the project's virtualenv)::

    .venv/bin/python bench/metrics.py [--broker redis,sqlite] [--scrapes 30] [--queues 50]

Each scrape is a real HTTP GET against a real uvicorn server serving ``metrics_route`` (one
server in this process, on a free port), so the figure includes rendering the text format and
the HTTP round trip. The first scrape also sums the last hour of counters (metrics/totals.py)
and is reported apart; later scrapes read only the minutes closed since.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from tempfile import TemporaryDirectory

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path[:0] = [str(REPO_ROOT)]

import httpx  # noqa: E402
from bench.run import RedisServer  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from tests.webserver import serving  # noqa: E402

from conveyor import Conveyor, states  # noqa: E402
from conveyor.brokers import Broker, JobSpec, Outcome  # noqa: E402
from conveyor.brokers.records import HistoryEntry  # noqa: E402
from conveyor.message import Envelope, encode_envelope  # noqa: E402
from conveyor.metrics import metrics_route  # noqa: E402
from conveyor.taskrecord import TaskRecord, encode_record  # noqa: E402


def job(queue: str, task: str, eta: float | None = None) -> JobSpec:
    env = Envelope(id=uuid.uuid4().hex, task=task, args=[1, 2], queue=queue, created=time.time(), eta=eta)
    return JobSpec(env.id, queue, encode_envelope(env), 5, eta, 0)


def fill(broker: Broker, queues: int, per_queue: int, workers: int, dead: int) -> None:
    names = [f"q{i:02d}" for i in range(queues)]
    for name in names:
        broker.enqueue([job(name, f"proj.tasks.t{i % 20}") for i in range(per_queue)])
        broker.enqueue([job(name, "proj.tasks.later", time.time() + 3600) for _ in range(per_queue // 10)])
    for i in range(dead):  # dead letters through the real path: fetched, then settled dead
        broker.enqueue([job("dead", "proj.tasks.broken")])
        for d in broker.fetch(["dead"], "bench-owner", 1, 30.0, 0):
            broker.settle([Outcome("dead", d.id, d.delivery, states.FAILURE, None, reason=f"boom {i}")], 60)
    now = time.time()
    for w in range(workers):
        mine = names[w % queues :: workers] or names[:1]
        held = broker.fetch(mine, f"w{w}@bench/{w}", 4, 30.0, 0)
        active = [{"id": d.id, "task": "proj.tasks.t0", "queue": mine[0], "started": now} for d in held]
        info = {
            "hostname": f"w{w}@bench",
            "host": "bench",
            "pid": 1000 + w,
            "queues": mine,
            "pool": "thread",
            "concurrency": 8,
            "started": now - 60,
            "fetched_at": now,
            "active": active,
        }
        broker.heartbeat(f"w{w}@bench/{w}", 30, json.dumps(info).encode(), [(d.id, d.delivery) for d in held])


def counters(broker: Broker, minutes: int, names: int) -> None:
    """Per-minute counters for ``names`` task names over the last ``minutes``, written the way
    workers write them: a settle whose outcome carries a history entry (one run per name and
    minute, so one counter row each)."""
    now = time.time()
    calls = [(m, n) for m in range(minutes) for n in range(names)]
    for start in range(0, len(calls), 500):
        chunk = calls[start : start + 500]
        broker.enqueue([job("counted", "proj.tasks.t0") for _ in chunk])
        held = broker.fetch(["counted"], "bench-owner", len(chunk), 30.0, 0)
        outcomes = []
        for d, (m, n) in zip(held, chunk, strict=False):
            at = now - 60 * (m + 1)
            name = f"proj.tasks.t{n}"
            record = encode_record(TaskRecord(name, "counted", states.SUCCESS, finished=at, runtime=0.05))
            entry = HistoryEntry(name, "counted", states.SUCCESS, at, 0.05, "(1, 2)", record)
            outcomes.append(Outcome("ack", d.id, d.delivery, states.SUCCESS, None, history=entry))
        broker.settle(outcomes, 60)


def measure(url: str, args: argparse.Namespace) -> dict[str, float]:
    app = Conveyor("bench-metrics", broker=url)
    try:
        fill(app.broker, args.queues, args.per_queue, args.workers, args.dead)
        counters(app.broker, args.counter_minutes, 20)
        with serving(Starlette(routes=[metrics_route(app)])) as base, httpx.Client(base_url=base) as client:
            started = time.perf_counter()
            first = client.get("/metrics")
            first_ms = (time.perf_counter() - started) * 1000
            assert first.status_code == 200 and "conveyor_broker_up 1.0" in first.text, first.text[:500]
            assert first.text.count("conveyor_queue_ready_tasks{") >= args.queues
            assert (
                first.text.count('conveyor_tasks_total{outcome="succeeded"') == 20 or not args.counter_minutes
            )
            times = []
            for _ in range(args.scrapes):
                started = time.perf_counter()
                client.get("/metrics").raise_for_status()
                times.append((time.perf_counter() - started) * 1000)
    finally:
        app.close()
    times.sort()
    return {
        "first_ms": first_ms,
        "median_ms": statistics.median(times),
        "p90_ms": times[int(len(times) * 0.9) - 1],
        "max_ms": times[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", default="redis,sqlite")
    parser.add_argument("--scrapes", type=int, default=30)
    parser.add_argument("--queues", type=int, default=50)
    parser.add_argument("--per-queue", type=int, default=100)
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--dead", type=int, default=1000)
    parser.add_argument("--counter-minutes", type=int, default=360, help="minutes of counters, 20 names")
    parser.add_argument("--redis-server", default="redis-server")
    args = parser.parse_args()
    print(
        f"{args.queues} queues x {args.per_queue} ready (+{args.per_queue // 10} delayed), "
        f"{args.workers} workers, {args.dead} dead letters, {args.counter_minutes} minutes x 20 task "
        f"names of counters; {args.scrapes} scrapes"
    )
    for kind in args.broker.split(","):
        with TemporaryDirectory() as tmp:
            if kind == "redis":
                server = RedisServer(args.redis_server)
                server.start()
                try:
                    result = measure(server.url, args)
                finally:
                    server.stop()
            else:
                result = measure(f"sqlite:///{tmp}/bench.db", args)
        print(
            f"{kind:7} first scrape {result['first_ms']:6.1f} ms; then median {result['median_ms']:6.1f} ms,"
            f" p90 {result['p90_ms']:6.1f} ms, max {result['max_ms']:6.1f} ms"
        )


if __name__ == "__main__":
    main()

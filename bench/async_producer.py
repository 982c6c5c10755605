"""Async producers: 100 coroutines enqueueing at once on one event loop against one-by-one ``.delay()``.

Usage (with the project's virtualenv; about 30 s)::

    .venv/bin/python bench/async_producer.py                  # Redis and SQLite, 5 rounds
    .venv/bin/python bench/async_producer.py --tasks 2000 --rounds 3 --brokers redis

For each broker, each round measures, one after the other (interleaved, so a busy moment of a
shared machine hits both alike):

- **sync**: ``N`` calls of ``task.delay(i)`` one by one, each waiting for the broker;
- **async**: the same ``N`` jobs from ``--coroutines`` coroutines on one event loop, each
  ``await task.adelay(i)`` in turn (conveyor/aio.py coalesces what they send together).

and reports the median rate of each, and their ratio. The broker is emptied before each
measurement; no worker runs (only the producer side is measured). Redis is a throwaway
``redis-server`` on a free port (never 6379); SQLite a file in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "src")]

from bench.run import RedisServer  # noqa: E402  (the harness's throwaway redis-server)

from conveyor import Conveyor  # noqa: E402


def make_app(url: str) -> tuple[Conveyor, Callable[[], None]]:
    app = Conveyor("bench_async", broker=url)

    @app.task(name="bench.noop", ignore_result=True)
    def noop(i: int) -> None:
        return None

    def empty() -> None:
        app.broker.purge(list(app.broker.queue_stats()) or ["celery"])

    return app, empty


def sync_rate(app: Conveyor, n: int) -> float:
    task = app.tasks["bench.noop"]
    started = time.perf_counter()
    for i in range(n):
        task.delay(i)
    return n / (time.perf_counter() - started)


def async_rate(app: Conveyor, n: int, coroutines: int) -> float:
    task = app.tasks["bench.noop"]

    async def producer(k: int) -> None:
        for i in range(k, n, coroutines):
            await task.adelay(i)

    async def main() -> float:
        await task.adelay(-1)  # the loop's connection is opened outside the clock
        started = time.perf_counter()
        await asyncio.gather(*(producer(k) for k in range(coroutines)))
        return n / (time.perf_counter() - started)

    return asyncio.run(main())


def measure(name: str, url: str, n: int, rounds: int, coroutines: int) -> dict[str, float]:
    app, empty = make_app(url)
    app.tasks["bench.noop"].delay(-1)  # connect, load the scripts / create the tables
    sync, aio = [], []
    for _ in range(rounds):
        empty()
        sync.append(sync_rate(app, n))
        empty()
        aio.append(async_rate(app, n, coroutines))
    empty()
    app.close()
    result = {"sync": statistics.median(sync), "async": statistics.median(aio)}
    result["ratio"] = result["async"] / result["sync"]
    print(
        f"{name:7} sync one-by-one {result['sync']:9,.0f}/s   {coroutines} coroutines "
        f"{result['async']:9,.0f}/s   x{result['ratio']:.1f}   "
        f"(rounds sync {[round(r) for r in sync]}, async {[round(r) for r in aio]})",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--tasks", type=int, default=3000, help="jobs per measurement (default 3000)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--coroutines", type=int, default=100, help="concurrent producers (default 100)")
    parser.add_argument("--brokers", default="redis,sqlite", help="redis, sqlite or both (default)")
    parser.add_argument("--redis-server", default="redis-server", help="the redis-server binary")
    args = parser.parse_args()
    brokers = args.brokers.split(",")
    print(f"{args.tasks} jobs per measurement, {args.rounds} rounds, median", flush=True)
    if "redis" in brokers:
        server = RedisServer(args.redis_server)
        try:
            server.start()
            measure("redis", server.url, args.tasks, args.rounds, args.coroutines)
        finally:
            server.cleanup()
    if "sqlite" in brokers:
        with tempfile.TemporaryDirectory(prefix="conveyor-bench-aio-") as tmp:
            url = f"sqlite:///{tmp}/broker.db"
            measure("sqlite", url, args.tasks, args.rounds, args.coroutines)


if __name__ == "__main__":
    main()

"""Where one-by-one ``.delay()`` on Redis spends its microseconds, against a raw redis-py loop.

Usage (with the project's virtualenv; about 30 s)::

    .venv/bin/python bench/delay.py [--calls 5000] [--rounds 5]

On a throwaway ``redis-server``, in rounds whose order rotates, it times N calls each of: a raw
redis-py ``LPUSH`` of the same encoded message (the "one plain round trip" a producer cannot beat,
and what Huey's enqueue does), redis-py ``PING``, Conveyor's enqueue script alone
(``broker.enqueue`` of a ready ``JobSpec``), and ``incr.delay()`` (bench/conveyor_tasks.py).
It prints the median rate of each and its median per-round ratio to the raw ``LPUSH``; then the
client-side pieces of ``.delay()`` timed alone (no network; best of 5), and the server-side time
per call from Redis's ``INFO commandstats`` (the script, and each command it runs).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path

import redis

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT)]

from bench.run import RedisServer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--redis-server", default="redis-server")
    args = parser.parse_args()
    server = RedisServer(args.redis_server)
    server.start()
    try:
        run(server, args.calls, args.rounds)
    finally:
        server.cleanup()


def run(server: RedisServer, n: int, rounds: int) -> None:
    os.environ["BENCH_REDIS_URL"] = server.url
    os.environ["CONVEYOR_BROKER_URL"] = server.url.replace("/0", "/1")
    from bench import conveyor_tasks

    from conveyor.brokers import JobSpec
    from conveyor.message import encode_envelope, new_task_id

    task, app = conveyor_tasks.incr, conveyor_tasks.app
    raw = redis.Redis.from_url(server.url)
    task.delay()  # connect, load the scripts
    env = task._envelope([], {}, {})
    body = encode_envelope(env)
    broker = app.broker

    def lpush() -> None:
        for _ in range(n):
            raw.lpush("raw", body)

    def ping() -> None:
        for _ in range(n):
            raw.ping()

    def script() -> None:
        for _ in range(n):
            broker.enqueue([JobSpec(new_task_id(), "celery", body)])

    def delay() -> None:
        for _ in range(n):
            task.delay()

    loops: dict[str, Callable[[], None]] = {
        "raw redis-py LPUSH": lpush,
        "redis-py PING": ping,
        "enqueue script alone": script,
        ".delay()": delay,
    }
    names = list(loops)
    rates: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for i in range(len(names)):
            name = names[(i + r) % len(names)]
            raw.flushall()
            start = time.perf_counter()
            loops[name]()
            rates[name].append(n / (time.perf_counter() - start))
    print(f"{rounds} rounds of {n:,} calls, load average {os.getloadavg()[0]:.2f}")
    for name in names:
        ratio = statistics.median(a / b for a, b in zip(rates[name], rates[names[0]], strict=True))
        print(f"  {name:24} {statistics.median(rates[name]):8,.0f}/s   {ratio:4.2f}x raw LPUSH")

    print("client side of .delay(), each piece alone (µs per call, best of 5):")
    pieces: dict[str, Callable[[], object]] = {
        "argument check": lambda: task._check_args([], {}),
        "task id": new_task_id,
        "envelope (with its id)": lambda: task._envelope([], {}, {}),
        "encode": lambda: encode_envelope(env),
        "JobSpec": lambda: JobSpec(env.id, env.queue, body, env.priority, env.eta, 0),
    }
    for name, fn in pieces.items():
        best = min(timeit.repeat(fn, number=20000, repeat=5)) / 20000 * 1e6
        print(f"  {name:24} {best:6.2f}")

    raw.config_resetstat()
    delay()
    lpush()
    stats = raw.info("commandstats")
    print(f"server side (µs per call, INFO commandstats over {n:,} .delay() and {n:,} LPUSH):")
    for key, value in sorted(stats.items(), key=lambda kv: -float(kv[1]["usec"])):
        if key.startswith("cmdstat_") and not key.startswith("cmdstat_config"):
            print(f"  {key[8:]:10} {value['usec_per_call']:6.2f}  ({value['calls']:,} calls)")


if __name__ == "__main__":
    main()

"""Shared plumbing for the peer scripts.

Every peer script (``<system>_peer.py``) runs inside that system's own virtualenv, so this module
uses the standard library only. A peer script is both the *task module* its worker imports and a
small command-line tool the harness (``bench/run.py``) calls::

    python <peer>.py info       --redis-url URL --broker-url URL
    python <peer>.py enqueue    --redis-url URL --broker-url URL --n N
    python <peer>.py bulk       --redis-url URL --broker-url URL --n N
    python <peer>.py load       --redis-url URL --broker-url URL --rate R --seconds S
    python <peer>.py worker-cmd --redis-url URL --broker-url URL

Each command prints exactly one JSON line on stdout. ``worker-cmd`` does not start anything: it
prints the worker command line(s) and environment, and the harness starts them itself so that it
owns the process groups and can measure their memory.

``--redis-url`` is the benchmark Redis that holds the counter and latency list; ``--broker-url`` is
the system's broker (the same Redis for every peer; SQLite is possible for Conveyor). Both are
copied into the environment variables ``BENCH_REDIS_URL`` / ``BENCH_BROKER_URL`` at import time, so
the task definitions (which run at import in the worker too) read them from one place.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

COUNTER_KEY = "bench:counter"
LATENCY_KEY = "bench:latency"
PEERS_DIR = Path(__file__).resolve().parent

_URL_FLAGS = {"--redis-url": "BENCH_REDIS_URL", "--broker-url": "BENCH_BROKER_URL"}


def configure_env() -> tuple[str, str]:
    """Return ``(redis_url, broker_url)``: from the command line if given there, else the environment."""
    argv = sys.argv
    for flag, var in _URL_FLAGS.items():
        if flag in argv[:-1]:
            os.environ[var] = argv[argv.index(flag) + 1]
    redis_url = os.environ.get("BENCH_REDIS_URL", "")
    if not redis_url:
        raise SystemExit("the benchmark Redis URL is required: --redis-url URL or $BENCH_REDIS_URL")
    broker_url = os.environ.get("BENCH_BROKER_URL") or redis_url
    os.environ["BENCH_BROKER_URL"] = broker_url
    return redis_url, broker_url


def bin_path(name: str) -> str:
    """Path of a console script installed in the running interpreter's virtualenv."""
    return str(Path(sys.executable).parent / name)


def versions(*dists: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for dist in dists:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def paced(rate: float, seconds: float) -> Iterator[int]:
    """Yield ``rate * seconds`` times on an absolute schedule (no drift), sleeping in between."""
    total = int(rate * seconds)
    start = time.perf_counter()
    for i in range(total):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        yield i


async def apaced(rate: float, seconds: float) -> AsyncIterator[int]:
    """Async twin of :func:`paced`."""
    total = int(rate * seconds)
    start = time.perf_counter()
    for i in range(total):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        yield i


CPU_LOOPS = 500_000  # iterations of cpu_work(): about 20 ms of pure Python on a 2020s core


def cpu_work(loops: int = CPU_LOOPS) -> int:
    """The CPU-bound task body every system runs (``cpu`` tasks): pure Python, holds the GIL.
    A fixed amount of work, not a fixed time, so the rate shows how many cores a pool uses."""
    total = 0
    for i in range(loops):
        total += i * i % 7
    return total


def cpu_seconds() -> float:
    """Seconds one ``cpu_work()`` takes here (best of 5): the old yardstick, kept for reference."""
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        cpu_work()
        best = min(best, time.perf_counter() - start)
    return best


CAPACITY_SECONDS = 3.0  # how long each of the two yardstick processes runs cpu_work()


def _work_for(seconds: float, out: Any) -> None:
    start = time.perf_counter()
    done = 0
    while time.perf_counter() - start < seconds:
        cpu_work()
        done += 1
    out.put(done / (time.perf_counter() - start))


def two_cores_per_s() -> float:
    """``cpu_work()`` calls per second that two processes running it back to back, side by
    side, complete together: what two cores are worth here, measured. Not 2 / one call's best
    time: one call's time varies by about 10 % from call to call, and the best of a few is a
    rate no process keeps up."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    procs = [ctx.Process(target=_work_for, args=(CAPACITY_SECONDS, results)) for _ in range(2)]
    for proc in procs:
        proc.start()
    rates = [float(results.get(timeout=CAPACITY_SECONDS * 10)) for _ in procs]
    for proc in procs:
        proc.join()
    return sum(rates)


def timed(fn: Callable[[], object], n: int) -> float:
    """Call ``fn`` ``n`` times; return the elapsed seconds."""
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return time.perf_counter() - start


@dataclass
class Adapter:
    """What a peer script provides. Timing functions return elapsed seconds (setup excluded)."""

    dist: str
    """Distribution name whose version is reported."""
    concurrency: str
    """Short human description of the worker configuration, shown in the report."""
    worker_cmds: Callable[[], list[list[str]]]
    """Worker command line(s); each is started in its own process group by the harness."""
    enqueue: Callable[[int], float]
    """Enqueue N ``incr`` tasks one by one with the system's normal API."""
    load: Callable[[float, float], int]
    """Enqueue ``mark(time.time())`` at a steady rate for some seconds; return how many were sent."""
    bulk: Callable[[int], float] | None = None
    """Enqueue N ``incr`` tasks with the system's fan-out/bulk API, if it has one."""
    bulk_api: str = ""
    """Name of the bulk API used, or why there is none."""
    enqueue_api: str = ""
    enqueue_cpu: Callable[[int], float] | None = None
    """Enqueue N ``cpu`` tasks (``cpu_work()`` then one INCR) one by one, if the peer has them."""
    extra_dists: tuple[str, ...] = ("redis", "hiredis")
    worker_env: dict[str, str] = field(default_factory=dict)


def _emit(payload: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def main(adapter: Adapter) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "command", choices=["info", "enqueue", "bulk", "load", "worker-cmd", "enqueue-cpu", "cpu-seconds"]
    )
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--broker-url")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()

    if args.command == "info":
        _emit(
            {
                "version": versions(adapter.dist)[adapter.dist],
                "libs": versions(*adapter.extra_dists),
                "python": sys.version.split()[0],
                "concurrency": adapter.concurrency,
                "enqueue_api": adapter.enqueue_api,
                "bulk_api": adapter.bulk_api,
                "has_bulk": adapter.bulk is not None,
            }
        )
    elif args.command == "enqueue":
        _emit({"n": args.n, "seconds": adapter.enqueue(args.n)})
    elif args.command == "bulk":
        if adapter.bulk is None:
            _emit({"n": args.n, "na": adapter.bulk_api or "no bulk API"})
        else:
            _emit({"n": args.n, "seconds": adapter.bulk(args.n)})
    elif args.command == "enqueue-cpu":
        if adapter.enqueue_cpu is None:
            _emit({"n": args.n, "na": "no cpu task in this peer script"})
        else:
            _emit({"n": args.n, "seconds": adapter.enqueue_cpu(args.n)})
    elif args.command == "cpu-seconds":
        _emit({"seconds": cpu_seconds(), "two_cores_per_s": two_cores_per_s()})
    elif args.command == "load":
        start = time.perf_counter()
        sent = adapter.load(args.rate, args.seconds)
        _emit({"sent": sent, "seconds": time.perf_counter() - start})
    else:
        env = {
            "BENCH_REDIS_URL": os.environ["BENCH_REDIS_URL"],
            "BENCH_BROKER_URL": os.environ["BENCH_BROKER_URL"],
            "PYTHONPATH": str(PEERS_DIR),
            **adapter.worker_env,
        }
        _emit({"cmds": adapter.worker_cmds(), "env": env})

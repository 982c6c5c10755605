"""Worker memory over a long drain: is it flat over 1,000,000 tasks (DESIGN.md's target)?

Usage (with the project's virtualenv; about 3-5 minutes on 2 cores for the default)::

    .venv/bin/python bench/memory.py [--tasks 1000000] [--broker redis|sqlite]
                                     [--worker "ARGS"] [--samples 10] [--backlog 50000]

Starts one throwaway ``redis-server`` and ``conveyor -A bench.conveyor_tasks worker -l warning``
(no flags unless ``--worker`` gives some), with the task history on (the default). A producer
keeps at most ``--backlog`` ``incr`` tasks queued ahead of the worker (``delay_many`` in chunks
of 10,000), so what is measured is the worker's own memory, not a queue held in the broker.
At every tenth of the run it samples the resident memory (RSS) of the worker's whole process
tree (the supervisor and its worker processes; psutil) and, after the first tenth (imports,
caches and the allocator settled), reports how much it grew per 100,000 tasks. Memory that
grows with the tasks run would show here as a steady slope; memory bounded by design (at most
``PREFETCH_MAX`` deliveries held, outcomes flushed in batches) shows as a flat line with noise.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import psutil
import redis

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path[:0] = [str(REPO_ROOT)]

from bench.run import PROCESSES, RedisServer  # noqa: E402  (the harness's own process helpers)

COUNTER_KEY = "bench:counter"
CHUNK = 10_000


def tree_rss(pid: int) -> tuple[int, int]:
    """(bytes of RSS summed over ``pid`` and its descendants, how many processes)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total, len(procs)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--broker", choices=("redis", "sqlite"), default="redis")
    parser.add_argument("--worker", default="", help='extra worker flags, e.g. "-P solo --processes 2"')
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--backlog", type=int, default=50_000)
    parser.add_argument("--redis-server", default="redis-server")
    args = parser.parse_args()
    if args.tasks < args.samples * CHUNK:
        parser.error(f"--tasks must be at least {args.samples * CHUNK:,} ({args.samples} samples of a chunk)")

    server = RedisServer(args.redis_server)
    server.start()
    tmp = Path(tempfile.mkdtemp(prefix="conveyor-memory-bench-"))
    os.environ["BENCH_REDIS_URL"] = server.url  # read by bench/conveyor_tasks.py at import
    broker_url = server.url.replace("/0", "/1") if args.broker == "redis" else f"sqlite:///{tmp / 'm.db'}"
    os.environ["CONVEYOR_BROKER_URL"] = broker_url
    from bench import conveyor_tasks

    counter = redis.Redis.from_url(server.url)
    app = conveyor_tasks.app
    app.conf.broker_url = broker_url
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "conveyor", "-A", "bench.conveyor_tasks", "worker", "-l", "warning"]
    command += shlex.split(args.worker)
    sent = 0
    marks = [args.tasks * (i + 1) // args.samples for i in range(args.samples)]
    samples: list[tuple[int, float, int, int]] = []  # (tasks done, seconds, rss bytes, processes)
    proc = PROCESSES.start(command, env, tmp / "worker.log")
    start = time.perf_counter()
    try:
        while marks:
            done = int(counter.get(COUNTER_KEY) or 0)
            if proc.poll() is not None:
                raise SystemExit(PROCESSES.exit_reason(proc))
            if sent < args.tasks and sent - done < args.backlog:
                n = min(CHUNK, args.tasks - sent)
                conveyor_tasks.incr.delay_many([() for _ in range(n)])
                sent += n
                continue
            if done >= marks[0]:
                rss, count = tree_rss(proc.pid)
                samples.append((done, time.perf_counter() - start, rss, count))
                seconds = samples[-1][1]
                print(f"  {done:>10,} tasks  {seconds:7.1f} s  RSS {rss / 2**20:7.1f} MB ({count} processes)")
                while marks and marks[0] <= done:  # one sample for the marks passed meanwhile
                    marks.pop(0)
                continue
            time.sleep(0.05)
    finally:
        PROCESSES.stop(proc)
        app.close()
        counter.close()
        server.stop()

    first_done, first_t, first_rss, _ = samples[0]
    last_done, last_t, last_rss, _ = samples[-1]
    growth = (last_rss - first_rss) / 2**20 / ((last_done - first_done) / 100_000)
    high = max(s[2] for s in samples[1:]) / 2**20
    low = min(s[2] for s in samples[1:]) / 2**20
    rate = (last_done - first_done) / (last_t - first_t)
    print(
        f"{args.broker}, worker {' '.join(command[5:])}: {last_done:,} tasks at {rate:,.0f}/s after "
        f"the first tenth; RSS {first_rss / 2**20:.1f} MB at {first_done:,} tasks, "
        f"{last_rss / 2**20:.1f} MB at {last_done:,} (range after the first tenth {low:.1f}-{high:.1f} MB); "
        f"{growth:+.2f} MB per 100,000 tasks"
    )


if __name__ == "__main__":
    main()

"""The ceiling of the drain benchmark: how fast the benchmark's task body alone runs, with no task
system around it.

Usage (with the project's virtualenv)::

    .venv/bin/python bench/ceiling.py [--seconds 4] [--rounds 2]

Every drained task does one redis-py ``INCR`` (bench/conveyor_tasks.py, and every peer's task).
This script runs nothing but that call, back to back, on a throwaway ``redis-server``: in one
process with 1, 2 and 4 threads, and in two processes with one thread each, and prints the
calls per second of each. No worker can drain faster than the bare loop of the same shape: it
does the same call and more (fetch, decode, settle, history) on the same cores, with
``redis-server`` on them too. Compare the figures with 3x the best peer's drain in the same
machine's ``make bench`` (docs/benchmarks.md, "Against the targets").
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH_DIR.parent)]

from bench.run import RedisServer, incr_in_processes, incr_loop  # noqa: E402  (the harness's own)


def in_threads(url: str, threads: int, seconds: float) -> float:
    counts: list[int] = []
    workers = [
        threading.Thread(target=lambda: counts.append(incr_loop(url, seconds))) for _ in range(threads)
    ]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return sum(counts) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--redis-server", default="redis-server")
    args = parser.parse_args()
    server = RedisServer(args.redis_server)
    server.start()
    try:
        for r in range(args.rounds):
            for threads in (1, 2, 4):
                rate = in_threads(server.url, threads, args.seconds)
                print(f"round {r + 1}: 1 process, {threads} thread(s): {rate:9,.0f} INCR/s")
            rate = incr_in_processes(server.url, 2, args.seconds)
            print(f"round {r + 1}: 2 processes, 1 thread each: {rate:9,.0f} INCR/s")
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()

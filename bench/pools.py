"""Conveyor's pools against each other: drain rate of ``-P solo``, ``-P threads`` and ``-P asyncio``
with the same number of worker processes, rounds interleaved, as ratios measured in one run.

Usage (with the project's virtualenv)::

    .venv/bin/python bench/pools.py [--tasks 10000] [--rounds 3] [--broker redis,sqlite]
        [--processes 1[,2]] [--pools solo,threads,asyncio] [--history] [--against DIR]

Each round drains N ``incr`` tasks (bench/conveyor_tasks.py: one Redis ``INCR``, the benchmark's
task) once with each pool and number of processes, in an order that rotates every round, each a
fresh ``conveyor -A bench.conveyor_tasks worker -P POOL --processes P`` (no ``-c``: the pool's
default concurrency) on a throwaway ``redis-server`` (and a fresh SQLite file per run). It
prints, per broker, pool and processes, the median drain rate with start-up and the steady rate
after the first 1,000 tasks, their ratio to the first combination's (solo, the first number of
processes) from the same rounds, and the CPU time per task of the worker processes and
redis-server together. The machine being shared, read the ratios, not the absolute rates: every
pool meets the same disturbances, round after round.

``--against DIR`` measures a change: every pool runs once more from the Conveyor source of
another checkout (``git worktree add DIR COMMIT``; its ``src`` goes first on the workers'
``PYTHONPATH``), in the same rotating rounds, labelled ``@DIR``; each source's ratios are to its
own reference pool, and a last line gives each pool's steady rate and CPU per task from this
checkout against the other's, from the same rounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path[:0] = [str(REPO_ROOT)]

from bench.history import drain  # noqa: E402  (one drain measurement for both scripts)
from bench.run import PROCESSES, RedisServer  # noqa: E402  (the harness's own process helpers)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--broker", default="redis,sqlite")
    parser.add_argument("--processes", default="1", help="comma-separated: each is measured")
    parser.add_argument(
        "--pools",
        default="solo,threads,asyncio",
        help="the first is the reference; POOL:N sets -c N (e.g. threads:4)",
    )
    parser.add_argument("--history", action="store_true", help="task history on (the default in production)")
    parser.add_argument("--against", help="another checkout: its src/ runs every pool but the first too")
    parser.add_argument("--redis-server", default="redis-server")
    args = parser.parse_args()
    pools = args.pools.split(",")
    variants = [(pool, int(p), "") for p in args.processes.split(",") for pool in pools]
    if args.against:
        against = str(Path(args.against).resolve() / "src")
        variants += [(pool, int(p), against) for p in args.processes.split(",") for pool in pools]
    server = RedisServer(args.redis_server)
    server.start()
    tmp = Path(tempfile.mkdtemp(prefix="conveyor-pools-bench-"))
    print(
        f"{args.rounds} rounds of {args.tasks:,} tasks, history {'on' if args.history else 'off'}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    try:
        for broker in args.broker.split(","):
            runs: dict[tuple[str, int, str], list[tuple[float, float, float]]] = {v: [] for v in variants}
            for r in range(args.rounds):
                for i in range(len(variants)):
                    pool, processes, src = variant = variants[(i + r) % len(variants)]  # rotating order
                    url = (
                        server.url.replace("/0", "/1")
                        if broker == "redis"
                        else f"sqlite:///{tmp}/{pool}{processes}-{r}.db"
                    )
                    # "threads:4" is `-P threads -c 4`: a pool at a chosen concurrency.
                    name, _, concurrency = pool.partition(":")
                    worker = ["-A", "bench.conveyor_tasks", "worker", "-P", name]
                    worker += ["--processes", str(processes)]
                    worker += ["-c", concurrency] if concurrency else []
                    log = tmp / f"{broker}-{name}{concurrency}-{processes}-{bool(src)}-{r}.log"
                    runs[variant].append(drain(server, url, args.tasks, worker, args.history, log, src))
            for variant in variants:
                ref = next(v for v in variants if v[2] == variant[2])  # this source's reference
                cells = []
                for label, i in (("drain", 0), ("steady", 1)):
                    rate = statistics.median(x[i] for x in runs[variant])
                    # The median of per-round ratios: each round's variants ran side by side.
                    ratios = [a[i] / b[i] for a, b in zip(runs[variant], runs[ref], strict=True)]
                    cells.append(f"{label} {rate:7,.0f}/s ({statistics.median(ratios):4.2f}x)")
                cpu = statistics.median(x[2] for x in runs[variant])
                name = f"-P {variant[0].replace(':', ' -c ')} --processes {variant[1]}"
                name += f" @{args.against}" if variant[2] else ""
                print(f"{broker:6} {name:33} " + "   ".join(cells) + f"   CPU/task {cpu:6.1f} µs")
            for variant in variants if args.against else []:
                if variant[2]:
                    continue
                other = runs[(variant[0], variant[1], against)]
                steady = [a[1] / b[1] for a, b in zip(runs[variant], other, strict=True)]
                cpu_ratio = [a[2] / b[2] for a, b in zip(runs[variant], other, strict=True)]
                print(
                    f"{broker:6} -P {variant[0]} --processes {variant[1]}: this checkout against "
                    f"{args.against}: steady {statistics.median(steady):4.2f}x, "
                    f"CPU/task {statistics.median(cpu_ratio):4.2f}x"
                )
    finally:
        PROCESSES.stop_all()
        server.cleanup()


if __name__ == "__main__":
    main()

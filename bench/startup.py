"""Start-up cost of the ``conveyor`` command: a worker's time to its first task, and ``--help``.

Usage (with the project's virtualenv)::

    .venv/bin/python bench/startup.py [--rounds 7] [--broker redis,sqlite] [--redis-server PATH]
                                      [--from-source]

``worker`` queues one ``incr`` task (bench/conveyor_tasks.py), then starts
``python -m conveyor -A bench.conveyor_tasks worker -l warning`` (the benchmark's default worker,
as ``bench/run.py`` runs it) and times from just before the process is started until the task
has run (``bench:counter`` reaches 1, polled every millisecond), on a throwaway ``redis-server``
and on a fresh SQLite file per round. ``help`` is the wall time of ``python -m conveyor --help``
and ``python`` that of ``python -c pass``, the interpreter's own floor. Each figure is the median
of the rounds (the minimum is printed too: on a shared machine other load only ever adds).
The checkout's bytecode is written first (``compileall``), as ``pip install`` writes it;
``--from-source`` measures instead without any (each start compiles Conveyor's modules again, as
an editable checkout does where ``PYTHONDONTWRITEBYTECODE`` is set).
"""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
# This checkout's code, whichever checkout the virtualenv was installed from (so a copy of this
# script in an older checkout measures that one, with the same interpreter and packages).
PYTHONPATH = os.pathsep.join([str(REPO_ROOT / "src"), str(REPO_ROOT)])
sys.path[:0] = [str(REPO_ROOT / "src"), str(REPO_ROOT)]

from bench.run import PROCESSES, RedisServer  # noqa: E402  (the harness's own process helpers)

COUNTER_KEY = "bench:counter"
WORKER = ["-A", "bench.conveyor_tasks", "worker", "-l", "warning"]
POLL = 0.001  # seconds between counter reads while the worker starts
DEADLINE = 60.0  # a worker that has not run its task by then has failed


def compile_sources() -> None:
    """Write the bytecode of this checkout, as an installed package has it (``pip install``
    compiles): where ``PYTHONDONTWRITEBYTECODE`` is set, every start would otherwise compile
    Conveyor's modules from source again, and that, not the code, would be measured."""
    for directory in (REPO_ROOT / "src", BENCH_DIR):
        compileall.compile_dir(directory, quiet=1)


def first_task(server: RedisServer, broker_url: str, log: Path) -> float:
    """Seconds from starting ``conveyor ... worker`` to its first (and only queued) task done."""
    os.environ["BENCH_REDIS_URL"] = server.url  # read by bench/conveyor_tasks.py at import
    from bench import conveyor_tasks

    counter = redis.Redis.from_url(server.url)
    counter.flushall()
    app = conveyor_tasks.app
    app.conf.broker_url = broker_url
    app.close()  # reopen on this round's broker
    conveyor_tasks.incr.delay()
    app.close()
    env = {
        **os.environ,
        "CONVEYOR_BROKER_URL": broker_url,
        "BENCH_REDIS_URL": server.url,
        "PYTHONPATH": PYTHONPATH,
    }
    start = time.perf_counter()
    proc = PROCESSES.start([sys.executable, "-m", "conveyor", *WORKER], env, log)
    try:
        while not int(counter.get(COUNTER_KEY) or 0):
            if proc.poll() is not None or time.perf_counter() - start > DEADLINE:
                raise RuntimeError(PROCESSES.exit_reason(proc))
            time.sleep(POLL)
        return time.perf_counter() - start
    finally:
        PROCESSES.stop(proc)
        counter.close()


def worker_round(server: RedisServer, broker: str, tmp: Path) -> Callable[[], float]:
    """One first-task measurement on broker: Redis database 1, or a fresh SQLite file each time."""

    def measure() -> float:
        url = server.url.replace("/0", "/1") if broker == "redis" else f"sqlite:///{tmp}/{time.time_ns()}.db"
        return first_task(server, url, tmp / f"worker-{broker}.log")

    return measure


def wall(cmd: list[str]) -> float:
    """Seconds one run of cmd takes (its output discarded; a failure is an error)."""
    env = {**os.environ, "PYTHONPATH": PYTHONPATH}
    start = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def report(label: str, samples: list[float]) -> None:
    print(
        f"{label:28} median {statistics.median(samples) * 1000:6.0f} ms"
        f"   min {min(samples) * 1000:6.0f} ms   ({len(samples)} rounds)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--broker", default="redis,sqlite", help="worker measurements to run")
    parser.add_argument("--redis-server", default=shutil.which("redis-server") or "/usr/bin/redis-server")
    parser.add_argument(
        "--from-source",
        action="store_true",
        help="no bytecode: delete src/**/__pycache__ and start every process with "
        "PYTHONDONTWRITEBYTECODE=1, so that each start compiles Conveyor's modules",
    )
    args = parser.parse_args()
    brokers = [b for b in args.broker.split(",") if b]
    if unknown := set(brokers) - {"redis", "sqlite"}:
        parser.error(f"unknown broker {', '.join(sorted(unknown))}: choose from redis, sqlite")

    if args.from_source:
        # An editable checkout where PYTHONDONTWRITEBYTECODE is set: every start compiles.
        sys.dont_write_bytecode = True
        os.environ["PYTHONDONTWRITEBYTECODE"] = "1"  # the environment every process started gets
        for cache in list((REPO_ROOT / "src").rglob("__pycache__")):
            shutil.rmtree(cache)
    else:
        compile_sources()
    commands: dict[str, Callable[[], float]] = {
        "python -c pass": lambda: wall([sys.executable, "-c", "pass"]),
        "conveyor --help": lambda: wall([sys.executable, "-m", "conveyor", "--help"]),
    }
    server = RedisServer(args.redis_server)
    server.start()
    tmp = Path(tempfile.mkdtemp(prefix="conveyor-startup-bench-"))
    try:
        for broker in brokers:
            commands[f"worker first task ({broker})"] = worker_round(server, broker, tmp)
        samples: dict[str, list[float]] = {label: [] for label in commands}
        # Interleaved rounds: a burst of load elsewhere on the machine spreads over every figure.
        for _ in range(args.rounds):
            for label, measure in commands.items():
                samples[label].append(measure())
        for label, values in samples.items():
            report(label, values)
    finally:
        PROCESSES.stop_all()
        server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

"""A chord's cost: how fast a chord of N no-op header tasks completes (its body started),
against a plain drain of the same N tasks, on SQLite and Redis (issue 14's target: >= 80 %),
and Celery's chord on Redis in the same run.

Usage (with the project's virtualenv)::

    .venv/bin/python bench/workflows.py [--tasks 10000] [--rounds 1] [--broker redis,sqlite,celery]
        [--celery-python .bench-cache/venvs/celery/bin/python]

Each run enqueues N ``incr`` tasks (bench/conveyor_tasks.py: one Redis INCR, no result), as a
plain bulk enqueue or as the header of ``chord(...)(chord_body.s())``, then starts the
benchmark's worker command (``conveyor worker -P solo --processes 2``) and times it until the
counter reaches N (drain) or the body has started (chord). Also the CPU time per task of the
workers and redis-server together: on a shared machine, the steadier figure. The rate is counted from the
WARMUP-th task on (start-up, the imports, would only dilute the difference) and over the whole
run. Each header task joins its chord in its own settle (the broker's group slot, count and
the body's enqueue in the same Lua script or transaction), so what the chord adds per task is
that join.

``celery`` runs bench/peers/celery_chord.py with Celery's own virtualenv's python (built by
``bench/run.py --only celery``): the same chord and drain, enqueued by that script, drained by
``celery -A celery_chord worker -P prefork -c 2`` (as in bench/run.py), timed the same way.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import redis

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench.history import cpu_seconds  # noqa: E402
from bench.run import PEERS_DIR, PROCESSES, VENVS_DIR, RedisServer, run_json  # noqa: E402  (the harness's helpers)

COUNTER_KEY = "bench:counter"
BODY_KEY = "bench:chord-body"  # bench/workflow_tasks.py and bench/peers/celery_chord.py push here
WORKER = ["-m", "conveyor", "-A", "bench.workflow_tasks", "worker", "-P", "solo", "--processes", "2"]
WARMUP = 1000


def run_once(
    server: RedisServer, broker_url: str, n: int, as_chord: bool, logs: Path
) -> tuple[float, float, float]:
    """(tasks/s over the whole run, tasks/s from WARMUP on, CPU microseconds per task of the
    workers and redis-server together from WARMUP on) for one Conveyor drain or chord of n tasks."""
    os.environ["BENCH_REDIS_URL"] = server.url  # read by bench/conveyor_tasks.py at import
    from bench import workflow_tasks

    from conveyor import chord

    redis.Redis.from_url(server.url).flushall()
    app = workflow_tasks.app
    app.conf.broker_url = broker_url
    app.close()
    if as_chord:
        chord(workflow_tasks.incr.s() for _ in range(n))(workflow_tasks.chord_body.s())
    else:
        workflow_tasks.incr.delay_many([() for _ in range(n)])
    app.close()
    env = {**os.environ, "CONVEYOR_BROKER_URL": broker_url, "PYTHONPATH": str(REPO_ROOT)}
    cmd = [sys.executable, *WORKER, "-l", "warning"]
    return time_worker(
        server, cmd, env, n, as_chord, logs / f"workflows-{'chord' if as_chord else 'drain'}.log"
    )


def run_celery_once(
    server: RedisServer, python: str, n: int, as_chord: bool, logs: Path
) -> tuple[float, float, float]:
    """The same measurement for Celery on Redis (bench/peers/celery_chord.py, in Celery's own
    virtualenv): the tasks are enqueued by that script, then its prefork worker is started."""
    redis.Redis.from_url(server.url).flushall()
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}}
    env |= {"PYTHONPATH": str(PEERS_DIR), "BENCH_REDIS_URL": server.url, "BENCH_BROKER_URL": server.url}
    kind = "chord" if as_chord else "drain"
    out = run_json([python, str(PEERS_DIR / "celery_chord.py"), "enqueue", kind, str(n)], env, timeout=300)
    return time_worker(server, out["worker_cmd"], env, n, as_chord, logs / f"workflows-celery-{kind}.log")


def time_worker(
    server: RedisServer, cmd: list[str], env: dict[str, str], n: int, as_chord: bool, log: Path
) -> tuple[float, float, float]:
    """Start the worker on the n queued tasks; time it until the counter reaches n (drain) or
    the chord's body has started with n results (chord)."""
    counter = redis.Redis.from_url(server.url)
    start = time.perf_counter()
    proc = PROCESSES.start(cmd, env, log)
    warm, warm_cpu = None, 0.0
    assert server.proc is not None
    try:
        deadline = start + 300
        while True:
            done = int(counter.get(COUNTER_KEY) or 0)
            if warm is None and done >= WARMUP:
                warm = time.perf_counter()
                warm_cpu = cpu_seconds(proc.pid) + cpu_seconds(server.proc.pid)
            finished = counter.llen(BODY_KEY) > 0 if as_chord else done >= n
            if finished:
                break
            if proc.poll() is not None or time.perf_counter() > deadline:
                raise RuntimeError(PROCESSES.exit_reason(proc))
            time.sleep(0.002)
        end = time.perf_counter()
        cpu = cpu_seconds(proc.pid) + cpu_seconds(server.proc.pid) - warm_cpu
        if as_chord:
            bodies = counter.lrange(BODY_KEY, 0, -1)
            assert len(bodies) == 1 and bodies[0].split()[1] == str(n).encode(), bodies
    finally:
        PROCESSES.stop(proc)
        counter.close()
    return n / (end - start), (n - WARMUP) / (end - (warm or start)), cpu / (n - WARMUP) * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", type=int, default=10_000)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--broker", default="redis,sqlite,celery", help="celery = Celery on Redis")
    p.add_argument("--redis-server", default="redis-server")
    p.add_argument(
        "--celery-python",
        default=str(VENVS_DIR / "celery" / "bin" / "python"),
        help="Celery's virtualenv python (built by bench/run.py --only celery)",
    )
    args = p.parse_args()
    if args.tasks <= WARMUP:
        p.error(f"--tasks must be more than {WARMUP} (the rates are counted from the {WARMUP}th task on)")
    server = RedisServer(args.redis_server)
    server.start()
    try:
        with tempfile.TemporaryDirectory(prefix="conveyor-workflows-") as tmp:
            logs = Path(tmp)
            for broker in args.broker.split(","):
                if broker == "celery" and not Path(args.celery_python).exists():
                    print(f"celery  not measured: {args.celery_python} missing")
                    continue
                rates: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
                for round_ in range(args.rounds):
                    for as_chord in (round_ % 2 == 1, round_ % 2 == 0):  # alternate the order
                        if broker == "celery":
                            rate = run_celery_once(server, args.celery_python, args.tasks, as_chord, logs)
                        else:
                            url = (
                                server.url
                                if broker == "redis"
                                else f"sqlite:///{logs}/bench-{round_}-{as_chord}.db"
                            )
                            rate = run_once(server, url, args.tasks, as_chord, logs)
                        rates[as_chord].append(rate)
                drain = statistics.median(r[1] for r in rates[False])
                chord = statistics.median(r[1] for r in rates[True])
                drain_all = statistics.median(r[0] for r in rates[False])
                chord_all = statistics.median(r[0] for r in rates[True])
                drain_cpu = statistics.median(r[2] for r in rates[False])
                chord_cpu = statistics.median(r[2] for r in rates[True])
                whole = f"{drain_all:.0f}/s vs {chord_all:.0f}/s = {chord_all / drain_all * 100:.1f} %"
                print(
                    f"{broker:6}  drain {drain:8.0f}/s  chord {chord:8.0f}/s  = {chord / drain * 100:5.1f} %"
                    f"   (whole run: {whole})   CPU per task: drain {drain_cpu:.0f} us, chord"
                    f" {chord_cpu:.0f} us = {chord_cpu / drain_cpu * 100:.1f} % of the drain's",
                    flush=True,
                )
    finally:
        server.stop()


if __name__ == "__main__":
    main()

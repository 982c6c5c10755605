"""Conveyor adapter: the same benchmark commands as the peers (see ``_common.py``).

Runs with the project's own virtualenv (``.venv/bin/python``). The tasks live in
``bench/conveyor_tasks.py``; ``--broker-url`` selects the broker (``redis://...`` or ``sqlite:///...``).
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path

import _common

REDIS_URL, BROKER_URL = _common.configure_env()
REPO_ROOT = _common.PEERS_DIR.parent.parent
os.environ["CONVEYOR_BROKER_URL"] = BROKER_URL
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.conveyor_tasks import cpu, incr, mark  # noqa: E402  (needs the env and path set above)

# The exact worker command. The harness adds nothing to it; edit here when the CLI changes, or
# override it for one run with $BENCH_CONVEYOR_WORKER (a shell-quoted command line).
# What a user gets with no flags: `conveyor worker` (one process per usable CPU, the threads
# pool, 8 slot threads each). The harness's other Conveyor rows (`-P processes -c 2`,
# `--processes 1`, `-P solo --processes 2`, `--pin-cpus`) set $BENCH_CONVEYOR_WORKER.
WORKER_CMD = ["conveyor", "-A", "bench.conveyor_tasks", "worker", "-l", "warning"]
if os.environ.get("BENCH_CONVEYOR_WORKER"):
    WORKER_CMD = shlex.split(os.environ["BENCH_CONVEYOR_WORKER"])


def enqueue(n: int) -> float:
    return _common.timed(incr.delay, n)


def enqueue_cpu(n: int) -> float:
    return _common.timed(cpu.delay, n)


def bulk(n: int) -> float:
    start = time.perf_counter()
    incr.delay_many([() for _ in range(n)])
    return time.perf_counter() - start


def load(rate: float, seconds: float) -> int:
    sent = 0
    for _ in _common.paced(rate, seconds):
        mark.delay(time.time())
        sent += 1
    return sent


def worker_cmds() -> list[list[str]]:
    exe = Path(_common.bin_path(WORKER_CMD[0]))
    head = [str(exe)] if exe.exists() else [sys.executable, "-m", WORKER_CMD[0]]
    return [[*head, *WORKER_CMD[1:]]]


ADAPTER = _common.Adapter(
    dist="conveyor",
    extra_dists=("redis", "hiredis", "msgspec"),
    concurrency=" ".join(WORKER_CMD[3:]),
    worker_cmds=worker_cmds,
    enqueue=enqueue,
    enqueue_cpu=enqueue_cpu,
    enqueue_api="task.delay()",
    bulk=bulk,
    bulk_api="task.delay_many(args_iterable)",
    load=load,
    worker_env={
        "CONVEYOR_BROKER_URL": BROKER_URL,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(_common.PEERS_DIR)]),
    },
)

if __name__ == "__main__":
    import conveyor_bench

    _common.main(conveyor_bench.ADAPTER)

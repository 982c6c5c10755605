"""Tasks for the workflow tests (tests/workflows/). What must be counted across processes (body
runs, step attempts, errbacks) is appended to files under ``$CONVEYOR_TEST_DIR``, so a count
survives a SIGKILLed worker."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from conveyor import Conveyor

app = Conveyor("canvas")
app.conf.worker_lease_timeout = float(os.environ.get("CONVEYOR_TEST_LEASE", "2.0"))
app.conf.worker_heartbeat_interval = float(os.environ.get("CONVEYOR_TEST_HEARTBEAT", "0.5"))
app.conf.task_max_worker_deaths = int(os.environ.get("CONVEYOR_TEST_MAX_DEATHS", "5"))


def _dir() -> Path:
    return Path(os.environ.get("CONVEYOR_TEST_DIR", "."))


def mark(name: str, text: str) -> None:
    with open(_dir() / name, "a") as f:
        f.write(text + "\n")


@app.task
def member(i: int, seconds: float = 0.0) -> int:
    """A header task: sleeps, then returns its index."""
    if seconds:
        time.sleep(seconds)
    return i


@app.task
def gated(i: int, gate: str) -> int:
    """A header task that records its start, then waits for the file ``gate`` to exist, so a
    test can make several finish at the same instant."""
    mark(f"{gate}.started", f"{i} {os.getpid()}")
    deadline = time.monotonic() + 30
    while not (_dir() / gate).exists() and time.monotonic() < deadline:
        time.sleep(0.002)
    return i


@app.task(ignore_result=True)
def unstored_nan(i: int) -> float:
    """A header task whose result is not stored, and whose value JSON cannot carry."""
    return float("nan")


@app.task
def failing(i: int) -> int:
    raise ValueError(f"member {i} failed")


@app.task
def collect(results: list[Any], name: str) -> int:
    """A chord body: records each run (one line of JSON results) in the file ``name``."""
    mark(name, json.dumps(results))
    return len(results)


@app.task
def step(x: int, name: str, token: str) -> int:
    """A chain step: records ``token`` in ``name``, returns x + 1."""
    mark(name, token)
    return x + 1


@app.task(bind=True, max_retries=3, default_retry_delay=0.05)
def flaky_step(self: Any, x: int, name: str, failures: int) -> int:
    """A chain step that fails ``failures`` times (retrying), then succeeds with x * 10."""
    mark(name, f"flaky attempt {self.request.retries}")
    if self.request.retries < failures:
        raise self.retry(exc=OSError("not yet"), countdown=0.05)
    return x * 10


@app.task
def broken_step(x: int, name: str) -> int:
    mark(name, "broken")
    raise ValueError(f"step got {x} and broke")


@app.task
def errback(task_id: str, name: str) -> None:
    """A link_error callback: records the failed task's id."""
    mark(name, task_id)


@app.task
def slow_step(x: int, name: str, seconds: float) -> int:
    """A chain step that takes a while: records ``start x pid`` and ``done x pid``, returns x + 1."""
    mark(name, f"start {x} {os.getpid()}")
    time.sleep(seconds)
    mark(name, f"done {x} {os.getpid()}")
    return x + 1


@app.task
def fatal(i: int, name: str) -> int:
    """A header task that kills the process running it, every time (after a heartbeat or two,
    so that its worker has told the broker it is running: its loss counts a death)."""
    mark(name, f"start {i} {os.getpid()}")
    time.sleep(1.2)
    os._exit(3)


@app.task(acks_late=False)
def once(i: int, name: str) -> int:
    """An at-most-once step that records each run in ``name`` and returns ``i``."""
    mark(name, str(i))
    return i


@app.task(acks_late=False)
def fatal_at_most_once(i: int, name: str) -> int:
    """``fatal``, at-most-once: the first death dead-letters it."""
    mark(name, f"start {i} {os.getpid()}")
    time.sleep(1.2)
    os._exit(3)

"""The chaos app: tasks that record every run, and tasks that misbehave on purpose.

Workers run it as ``python -m conveyor -A chaos.tasks -b URL worker``; the runner imports it
too, to enqueue. Every run appends one line to ``$CONVEYOR_TEST_DIR/runs.log``:

    start <task id> <pid> <delivery> <epoch seconds>
    done  <task id> <pid> <delivery> <epoch seconds>

with one ``os.write`` on an ``O_APPEND`` descriptor, so lines from many processes never
interleave and a line written just before a SIGKILL is kept (it is in the kernel already).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from conveyor import Conveyor

app = Conveyor("chaos")
# Lease and heartbeat: the defaults (3 s, 1 s) unless a scenario shortens them to save time.
app.conf.worker_lease_timeout = float(os.environ.get("CHAOS_LEASE", "3.0"))
app.conf.worker_heartbeat_interval = float(os.environ.get("CHAOS_HEARTBEAT", "1.0"))

RUNS_FILE = "runs.log"


def runs_path() -> Path:
    return Path(os.environ.get("CONVEYOR_TEST_DIR", ".")) / RUNS_FILE


def mark(event: str, task: Any) -> None:
    """Append one ledger line for the current run of a bound task."""
    request = task.request
    line = f"{event} {request.id} {os.getpid()} {request.delivery} {time.time():.6f}\n"
    fd = os.open(runs_path(), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@app.task(bind=True)
def work(self: Any, seconds: float = 0.0) -> str:
    """An innocent task: start, sleep, done. Returns its id."""
    mark("start", self)
    time.sleep(seconds)
    mark("done", self)
    return str(self.request.id)


class UnprintableError(Exception):
    """An exception whose ``__str__`` itself raises: anything formatting it blows up too."""

    def __str__(self) -> str:
        raise RuntimeError("__str__ of UnprintableError failed")


@app.task(bind=True)
def unprintable(self: Any) -> None:
    mark("start", self)
    raise UnprintableError()


@app.task(bind=True)
def exit_task(self: Any, code: int = 3) -> None:
    """``sys.exit`` inside a task: SystemExit is a BaseException, not an Exception."""
    mark("start", self)
    sys.exit(code)


@app.task(bind=True)
def interrupt_task(self: Any) -> None:
    mark("start", self)
    raise KeyboardInterrupt


@app.task(bind=True)
def suicide(self: Any) -> None:
    """SIGKILL the worker running it: it dies on this task every time."""
    mark("start", self)
    os.kill(os.getpid(), signal.SIGKILL)


@app.task(bind=True)
def exit_now(self: Any, code: int = 0) -> None:
    """``os._exit``: the process ends on the spot with ``code``, as if it chose to."""
    mark("start", self)
    os._exit(code)

"""Tasks for the task-history tests with real worker processes (tests/admin/test_history_endings.py).

Signals and runs are recorded in files under ``$CONVEYOR_TEST_DIR``; the ``task_revoked``
handler only hears this app's tasks (the test process imports this module too).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from conveyor import Conveyor
from conveyor.signals import task_revoked

app = Conveyor("history_app")
app.conf.worker_lease_timeout = 3.0
app.conf.worker_heartbeat_interval = 1.0
app.conf.task_max_worker_deaths = 1  # the first death of a worker on a task dead-letters it


def _dir() -> Path:
    return Path(os.environ.get("CONVEYOR_TEST_DIR", "."))


@task_revoked.connect
def on_revoked(sender: Any, request: Any = None, terminated: bool = False, **_: Any) -> None:
    if getattr(sender, "app", None) is app and "CONVEYOR_TEST_DIR" in os.environ:
        with open(_dir() / "revoked_signals", "a") as f:
            f.write(f"{os.getpid()} {request.id} {terminated}\n")


@app.task(name="hist.slow")
def slow(gate: str) -> str:
    deadline = time.monotonic() + 30
    while not (_dir() / gate).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return gate


@app.task(name="hist.quick")
def quick(x: int) -> int:
    return x


@app.task(name="hist.dies")
def dies() -> None:
    time.sleep(4)  # heartbeats (every second) mark it running first: this death counts against it
    os.kill(os.getpid(), signal.SIGKILL)


@app.task(name="hist.needs_file")
def needs_file(name: str) -> str:
    if not (_dir() / name).exists():
        raise FileNotFoundError(name)
    return name


@app.task(name="hist.spin")
def spin(seconds: float) -> int:
    """Pure Python work (no sleeping C call), for terminating revokes on the solo pool."""
    deadline, n = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        n += 1
    return n

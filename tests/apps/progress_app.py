"""Tasks that report progress, for tests/progress. The broker URL comes from ``-b``.

A task waits for a file under ``$CONVEYOR_TEST_DIR`` before it ends, so a test can watch its
progress while it runs and then let it finish."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from conveyor import Conveyor

app = Conveyor("progress_app")
app.conf.worker_lease_timeout = 3.0
app.conf.worker_heartbeat_interval = 1.0


def _gate(name: str, timeout: float = 30.0) -> None:
    path = Path(os.environ.get("CONVEYOR_TEST_DIR", ".")) / name
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)


@app.task(bind=True, name="progress.rows")
def rows(self: Any, total: int, gate: str) -> int:
    """Reports every row in a tight loop (throttled), then waits at the last one for ``gate``."""
    for done in range(1, total + 1):
        self.progress(done, total, f"row {done}")
    _gate(gate)
    return total


@app.task(bind=True, name="progress.custom")
def custom(self: Any, gate: str) -> str:
    self.update_state(state="RESIZING", meta={"file": "a.png", "step": 2})
    _gate(gate)
    return "resized"


@app.task(bind=True, name="progress.retried", max_retries=1, default_retry_delay=0)
def retried(self: Any, gate: str) -> str:
    """Reports progress on its first attempt, retries, then waits for ``gate`` without reporting."""
    if self.request.retries == 0:
        self.progress(1, 2, "first attempt")
        time.sleep(0.2)  # past the throttle window: the report is written before the retry
        raise self.retry()
    _gate(gate)
    return "second"


@app.task(bind=True, name="progress.fails_once", max_retries=0)
def fails_once(self: Any, fixed: str) -> str:
    """Reports 3/5, then fails for good (to the dead letters) unless the file ``fixed`` exists."""
    self.progress(3, 5, "embed")
    time.sleep(0.2)  # past the throttle window: the report is written before the failure
    if not (Path(os.environ.get("CONVEYOR_TEST_DIR", ".")) / fixed).exists():
        raise ValueError("embedding service down")
    return "embedded"

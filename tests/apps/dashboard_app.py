"""Tasks for the dashboard tests: a task that fails until the test allows it (to make a dead
letter and see it run once retried), and one that records its runs in a file."""

from __future__ import annotations

import os
import time
from pathlib import Path

from conveyor import Conveyor

app = Conveyor("dashboard-tests")
app.conf.worker_lease_timeout = 3.0
app.conf.worker_heartbeat_interval = 0.5


def _dir() -> Path:
    return Path(os.environ.get("CONVEYOR_TEST_DIR", "."))


@app.task(max_retries=0)
def gated(token: str) -> str:
    """Fails (into the dead letters) until the file ``allow-TOKEN`` exists; then records ``token``."""
    if not (_dir() / f"allow-{token}").exists():
        raise RuntimeError(f"gate closed for {token}")
    with open(_dir() / "gated.log", "a") as f:
        f.write(token + "\n")
    return token


@app.task
def note(token: str, customer: str = "") -> str:
    """Records ``token`` in ``notes.log``."""
    with open(_dir() / "notes.log", "a") as f:
        f.write(token + "\n")
    return token


@app.task(bind=True)
def reporting(self, token: str) -> str:  # type: ignore[no-untyped-def]
    """Reports 3 of 4 rows done, then waits (up to 60 s) for the file ``allow-TOKEN``."""
    self.progress(3, 4, message=f"rows of {token}")
    deadline = 60.0
    while not (_dir() / f"allow-{token}").exists() and deadline > 0:
        time.sleep(0.05)
        deadline -= 0.05
    return token

"""Tasks for the HTTP API and metrics tests: one module that the worker process imports
(``-A tests.apps.api_app``) and whose ``make_app(url)`` the test process serves the API from,
so both sides know the same task names."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from conveyor import Conveyor


def add(x: int, y: int) -> int:
    return x + y


def scale(self: Any, x: int, factor: int = 2) -> int:  # bound: self is the task
    return x * factor


def fail_once(name: str) -> str:
    """Fails its first run (dead-lettered: no retries), succeeds when run again."""
    marker = Path(os.environ.get("CONVEYOR_TEST_DIR", ".")) / f"{name}.failed"
    if not marker.exists():
        marker.write_text("1")
        raise RuntimeError(f"{name} fails its first run")
    return "ok"


def boom() -> None:
    raise ValueError("boom")


def sleeper(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def make_app(broker: str | None = None) -> Conveyor:
    application = Conveyor("api_app", broker=broker)
    application.conf.worker_lease_timeout = 3.0
    application.conf.worker_heartbeat_interval = 0.5
    application.task(name="api.add")(add)
    application.task(name="api.scale", bind=True)(scale)
    application.task(name="api.fail_once", max_retries=0)(fail_once)
    application.task(name="api.boom", max_retries=0)(boom)
    application.task(name="api.sleeper")(sleeper)
    return application


app = make_app()

"""An app whose signal handlers and hooks raise, for tests with real worker processes.

Runs are recorded in files under ``$CONVEYOR_TEST_DIR`` (see tests/apps/basic.py). Every
handler is limited to this app's tasks and workers: the test process imports this module too,
and its other tests' workers must not hear them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from conveyor import Conveyor, Task
from conveyor.log import get_task_logger
from conveyor.signals import task_prerun, task_success, worker_process_init

app = Conveyor("sigapp")
app.conf.worker_lease_timeout = 3.0
app.conf.worker_heartbeat_interval = 1.0
log = get_task_logger(__name__)


def _mark(name: str, text: str) -> None:
    with open(Path(os.environ.get("CONVEYOR_TEST_DIR", ".")) / name, "a") as f:
        f.write(text + "\n")


@worker_process_init.connect
def per_process(sender: Any, **_: Any) -> None:
    if sender.app is app:
        _mark("process_init", str(os.getpid()))


def broken_prerun(**_: Any) -> None:
    raise RuntimeError("task_prerun handler bug")


def broken_success(**_: Any) -> None:
    raise RuntimeError("task_success handler bug")


class Fragile(Task):  # type: ignore[type-arg]
    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        raise RuntimeError("on_success hook bug")

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        raise RuntimeError("on_failure hook bug")


@app.task(base=Fragile)
def double(x: int) -> int:
    log.info("doubling %s", x)
    return 2 * x


@app.task(base=Fragile)
def fails() -> None:
    raise ValueError("expected failure")


for _task in (double, fails):
    task_prerun.connect(broken_prerun, sender=_task)
    task_success.connect(broken_success, sender=_task)

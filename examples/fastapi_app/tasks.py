"""The example's tasks. A worker runs them with::

    CONVEYOR_BROKER_URL=redis://localhost:6379/0 conveyor -A examples.fastapi_app.tasks worker -l info

The broker is ``$CONVEYOR_BROKER_URL`` (the web app and the worker must share it), else
``sqlite:///conveyor.db``.
"""

from __future__ import annotations

import time
from typing import Any

from conveyor import Conveyor

app = Conveyor("fastapi_example")


@app.task(name="example.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(bind=True, name="example.build_report")
def build_report(self: Any, rows: int, seconds_per_row: float = 0.05) -> dict[str, int]:
    """Works through ``rows`` rows, reporting progress after each (``AsyncResult.info`` shows
    ``{"done", "total", "percent", "message"}`` while it runs)."""
    for done in range(1, rows + 1):
        time.sleep(seconds_per_row)
        self.progress(done, rows, f"row {done} of {rows}")
    return {"rows": rows}


@app.task(name="example.fail")
def fail(reason: str) -> None:
    raise ValueError(reason)

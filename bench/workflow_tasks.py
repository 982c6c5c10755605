"""Worker module for bench/workflows.py: the benchmark's tasks (bench/conveyor_tasks.py) plus
a chord body that records when it started."""

from __future__ import annotations

import time
from typing import Any

from bench.conveyor_tasks import app, incr, r

BODY_KEY = "bench:chord-body"

__all__ = ["app", "chord_body", "incr"]


@app.task(ignore_result=True)
def chord_body(results: list[Any]) -> None:
    r.rpush(BODY_KEY, f"{time.time()!r} {len(results)}")

"""Tasks for the serialisation tests. Each worker process reads its own serialisation settings
from the environment, so one test can run workers whose settings differ from each other's and
from the producer's."""

from __future__ import annotations

import os
from typing import Any

from conveyor import Conveyor

app = Conveyor("serial")
app.conf.update(
    task_serializer=os.environ.get("CONVEYOR_TEST_SERIALIZER", "json"),
    task_compression=os.environ.get("CONVEYOR_TEST_COMPRESSION") or None,
    result_serializer=os.environ.get("CONVEYOR_TEST_RESULT_SERIALIZER", "json"),
    result_compression=os.environ.get("CONVEYOR_TEST_RESULT_COMPRESSION") or None,
    accept_content=os.environ.get("CONVEYOR_TEST_ACCEPT", "json,msgpack").split(","),
)


@app.task(name="serial.echo")
def echo(value: Any) -> Any:
    return value


@app.task(name="serial.describe_retrying", autoretry_for=(Exception,), max_retries=3, retry_backoff=0.05)
def describe_retrying(value: Any) -> str:
    """``describe`` with a retry policy that would retry anything it raises."""
    return describe(value)


@app.task(name="serial.describe")
def describe(value: Any) -> str:
    """What the worker was given, as it sees it (a pickled set stays a set)."""
    return f"{type(value).__name__}:{sorted(value) if isinstance(value, set | frozenset) else value!r}"

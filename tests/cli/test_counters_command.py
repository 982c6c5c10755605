"""``conveyor counters``: per task name processed, failed, retried and mean runtime over a
window, and the per-minute series in --json, from counters real worker processes kept in the
broker (SQLite and Redis); bad input exits 2."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import Conveyor

from ..apps import basic
from ..procs import WorkerProcess, wait_for
from .helpers import conveyor


@pytest.fixture
def app(process_broker_url: str) -> Iterator[Conveyor]:
    basic.app.conf.broker_url = process_broker_url
    yield basic.app
    basic.app.close()


def test_counters_show_each_task_names_runs_failures_retries_and_mean_runtime(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    url = process_broker_url
    worker = WorkerProcess(url, tmp_path, "-c", "2").wait_ready()
    try:
        adds = [basic.add.delay(i, i) for i in range(5)]
        flaky = basic.flaky.delay("counters", 99)  # 3 retries, then fails for good
        wait_for(lambda: all(r.ready() for r in adds) and flaky.ready(), 30)
    finally:
        worker.stop()
    out = conveyor("counters", "--json", url=url)
    assert out.returncode == 0, out
    found = {c["name"]: c for c in json.loads(out.stdout)}
    add, bad = found[basic.add.name], found[basic.flaky.name]
    assert (add["processed"], add["failed"], add["retried"]) == (5, 0, 0)
    assert (bad["processed"], bad["failed"], bad["retried"]) == (4, 1, 3)
    assert add["mean_runtime"] is not None and add["mean_runtime"] >= 0
    assert sum(m["processed"] for m in add["minutes"]) == 5 and all("minute" in m for m in add["minutes"])
    table = conveyor("counters", "--name", basic.flaky.name, "--since", "30m", url=url)
    assert table.returncode == 0, table
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["TASK", "PROCESSED", "FAILED", "RETRIED", "MEAN", "RUNTIME"]
    assert lines[1].split()[:4] == [basic.flaky.name, "4", "1", "3"] and len(lines) == 2
    assert "no runs of nope in this window" in conveyor("counters", "--name", "nope", url=url).stdout
    future = conveyor("counters", "--since", "2099-01-01", "--json", url=url)
    assert json.loads(future.stdout) == []
    bad_since = conveyor("counters", "--since", "yesterday", url=url)
    assert bad_since.returncode == 2 and "is not an age" in bad_since.stderr

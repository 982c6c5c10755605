"""Prefetch: a worker holds about 100 ms of work per slot, and for long tasks only what its
slots run, so a busy worker never sits on tasks an idle one could start (worker/fetcher.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import Conveyor

from ..apps import basic
from ..procs import WorkerProcess, lines, wait_for


@pytest.fixture
def app(process_broker_url: str) -> Iterator[Conveyor]:
    basic.app.conf.broker_url = process_broker_url
    yield basic.app
    basic.app.close()


def test_a_busy_worker_leaves_long_tasks_for_an_idle_one(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    """Four long tasks, two workers of two slots each, the first started alone: it takes the
    two it can run and leaves two in the queue, which the second worker starts while the first
    two still run. (With Celery's default multiplier of 4 the first worker held all four, and
    the second stayed idle until the first had finished two.)"""
    results = [basic.gated.delay("long", f"t{i}") for i in range(4)]
    busy = WorkerProcess(process_broker_url, tmp_path, "-c", "2", name="busy").wait_ready()
    idle = None
    try:
        wait_for(lambda: len(lines(tmp_path / "long")) == 2, 30)
        stats = app.broker.queue_stats()["default"]
        assert (stats.ready, stats.leased) == (2, 2)  # the other two wait for any worker
        idle = WorkerProcess(process_broker_url, tmp_path, "-c", "2", name="idle").wait_ready()
        wait_for(lambda: len(lines(tmp_path / "long")) == 4, 30)  # both start while the gate is shut
        pids = {line.split()[2] for line in lines(tmp_path / "long")}
        assert len(pids) == 2
        (tmp_path / "long.open").touch()
        assert sorted(r.get(timeout=30) for r in results) == ["t0", "t1", "t2", "t3"]
    finally:
        (tmp_path / "long.open").touch()
        busy.stop()
        if idle is not None:
            idle.stop()

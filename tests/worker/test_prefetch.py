"""Prefetch: a worker holds about 100 ms of work per slot, and for long tasks only what its
slots run, so a busy worker never sits on tasks an idle one could start (worker/fetcher.py)."""

from __future__ import annotations

import statistics
import time
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


def test_a_threads_worker_holds_100ms_of_tiny_tasks_for_its_streak_not_for_every_slot(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    """Tiny tasks (0.3 ms here) run one after another on one slot thread's streak, so 100 ms
    of them is about 330, not eight slots' worth (the cap of 1,000): a worker holding more sat
    on work that other workers, idle at the end of a backlog, could have run. The broker's
    count of leased tasks, sampled through the drain once the average run time has settled
    (a new worker's first runs are slow): its median is well under what eight slots held
    (500 to 1,000, refetched at half). Not the highest sample: a run slowed by the machine can
    briefly give the streak a second one beside it (streaks.py), and twice 100 ms is held."""
    results = basic.busy_loop.delay_many([(0.0003,) for _ in range(4000)])
    worker = WorkerProcess(process_broker_url, tmp_path, "-c", "8").wait_ready()
    try:
        held: list[int] = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            stats = app.broker.queue_stats()["default"]
            if stats.ready == 0:
                break
            if stats.ready + stats.leased <= 4000 - 1500:
                held.append(stats.leased)
            time.sleep(0.02)
        assert results[-1].get(timeout=60) == 0.0003
        assert len(held) >= 5, "the drain was over before it could be sampled"
        assert statistics.median(held) <= 450, f"held {sorted(held)} tiny tasks at once"
    finally:
        worker.stop()

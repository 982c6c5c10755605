"""Paused queues: a pause stored in the broker holds for running and restarted workers alike,
enqueues are still accepted, and the tasks run after resume. Real worker processes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import Conveyor

from ..apps import basic
from ..procs import WorkerProcess, wait_for

STILL = 1.5  # how long a paused queue is watched for a fetch that must not happen (> a heartbeat)


@pytest.fixture
def app(process_broker_url: str) -> Iterator[Conveyor]:
    basic.app.conf.broker_url = process_broker_url
    yield basic.app
    basic.app.close()


def ready(app: Conveyor, queue: str) -> int:
    stats = app.broker.queue_stats().get(queue)
    return 0 if stats is None else stats.ready


def test_a_paused_queue_keeps_its_tasks_and_they_run_after_resume(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    admin = app.admin
    admin.pause("default", allow_unknown=True)  # before the worker starts: it must honour it
    worker = WorkerProcess(process_broker_url, tmp_path, "-Q", "default,other").wait_ready()
    try:
        assert "queue default is paused" in worker.log()
        held = basic.add.delay(1, 2)  # still accepted
        other = basic.add.apply_async((2, 3), queue="other")
        assert other.get(timeout=15) == 5  # the worker is fetching, just not from default
        time.sleep(STILL)
        assert ready(app, "default") == 1 and held.status == "PENDING"
        assert admin.resume("default")
        assert held.get(timeout=15) == 3

        admin.pause("other")  # a running worker stops fetching from it within a heartbeat
        wait_for(lambda: "queue other is paused" in worker.log(), 10)
        late = basic.add.apply_async((4, 4), queue="other")
        time.sleep(STILL)
        assert ready(app, "other") == 1
        admin.resume("other")
        assert late.get(timeout=15) == 8
        assert "queue other is resumed" in worker.log()
    finally:
        worker.stop()


@pytest.mark.parametrize("pool", ["threads", "solo", "processes"])
def test_a_pause_gives_back_the_tasks_a_worker_prefetched_and_they_run_after_resume(
    app: Conveyor, process_broker_url: str, tmp_path: Path, pool: str
) -> None:
    """One slot, held by a gated task, with three more of the queue prefetched behind it: a
    pause now must keep those three from starting when the slot frees (Celery's prefetched
    tasks would run), back in their queue, unstarted; the worker goes on fetching from its
    other queue (giving them back frees room, as finishing them would); resume runs them."""
    blocker = basic.gated.apply_async(("pause-gate", "b"), queue="prefetched")
    behind = [basic.add.apply_async((i, i), queue="prefetched") for i in range(3)]
    worker = WorkerProcess(
        # Four held per slot, as Celery's default (Conveyor's holds only the running one here).
        process_broker_url,
        tmp_path,
        "-Q",
        "prefetched,other",
        "-c",
        "1",
        "-P",
        pool,
        "--prefetch-multiplier",
        "4",
    ).wait_ready()
    try:
        wait_for((tmp_path / "pause-gate").exists, 30)  # the blocker holds the slot
        wait_for(lambda: ready(app, "prefetched") == 0, 30)  # the other three are prefetched
        app.admin.pause("prefetched")
        wait_for(lambda: "queue prefetched is paused" in worker.log(), 15)
        (tmp_path / "pause-gate.open").touch()
        assert blocker.get(timeout=30) == "b"
        wait_for(lambda: ready(app, "prefetched") == 3, 15)  # given back, not run
        time.sleep(STILL)
        assert [r.status for r in behind] == ["PENDING"] * 3 and ready(app, "prefetched") == 3
        assert basic.add.apply_async((5, 5), queue="other").get(timeout=30) == 10  # still fetching
        app.admin.resume("prefetched")
        assert [r.get(timeout=30) for r in behind] == [0, 2, 4]
    finally:
        worker.stop()

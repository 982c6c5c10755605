"""The start-up heap frozen (worker/heap.py): every process ``conveyor worker`` runs tasks in
has the objects it held once the app was imported out of the garbage collector's full
collections; a worker embedded in the application's own process leaves its collector alone.
Real worker processes; each reports its own ``gc.get_freeze_count()`` from a task."""

from __future__ import annotations

import gc
import os
from pathlib import Path

import pytest

from conveyor import Conveyor

from ..apps import basic
from ..procs import wait_for
from .test_usable_cpus import heartbeats, url, worker

__all__ = ["url"]  # the fixture, used by name

# An imported app and Conveyor's worker come to tens of thousands of objects; a process that
# froze nothing reports 0.
SOME = 5_000


def states(count: int) -> dict[int, int]:
    """pid -> frozen objects, from tasks run until ``count`` different processes answered."""
    seen: dict[int, int] = {}

    def more() -> bool:
        pid, frozen = basic.heap_state.delay().get(timeout=30)
        seen[pid] = frozen
        return len(seen) >= count

    wait_for(more, 120)
    return seen


def test_a_single_worker_process_freezes_its_start_up_heap(tmp_path: Path, url: str) -> None:
    with worker(tmp_path, url, "-c", "2"):
        [(pid, frozen)] = states(1).items()
        assert frozen > SOME
        assert pid != os.getpid()


def test_each_of_several_worker_processes_runs_on_a_frozen_heap(tmp_path: Path, url: str) -> None:
    with worker(tmp_path, url, "--processes", "2", "-P", "solo"):
        wait_for(lambda: len(heartbeats()) == 2, 60)
        frozen = states(2)
        assert len(frozen) == 2
        assert all(count > SOME for count in frozen.values()), frozen


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_process_pool_children_run_on_a_frozen_heap(tmp_path: Path, url: str, method: str) -> None:
    """Forked, a child keeps its worker's frozen heap; spawned, it freezes what it imported."""
    with worker(tmp_path, url, "-P", "processes", "-c", "1", "--pool-start-method", method):
        wait_for(lambda: len(heartbeats()) == 1 and heartbeats()[0].get("pool_processes"), 60)
        [(pid, frozen)] = states(1).items()
        children = heartbeats()[0]["pool_processes"]
        assert isinstance(children, list)
        assert pid in {int(str(p)) for p in children}  # the task ran in the child, not the worker
        assert frozen > SOME


def test_an_embedded_worker_leaves_its_process_collector_alone() -> None:
    """``app.Worker(...).run()`` in your own process: your objects stay collectable."""
    app = Conveyor("heap-embedded", broker="memory://heap-embedded")

    @app.task
    def frozen_here() -> int:
        return gc.get_freeze_count()

    before = gc.get_freeze_count()
    try:
        result = frozen_here.delay()
        app.Worker(burst=True, install_signal_handlers=False).run()
        assert result.get(timeout=30) == before == 0
        assert gc.get_freeze_count() == 0
    finally:
        app.close()

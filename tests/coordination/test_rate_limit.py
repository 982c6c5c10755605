"""Global rate limits: runs of a ``rate_limit="4/s"`` task are spaced across every worker, and a
limited task waits in the broker, not in a worker slot."""

from __future__ import annotations

from pathlib import Path

from conveyor import Conveyor

from ..apps import coord_tasks as t
from ..conftest import ThreadWorker
from ..procs import WorkerProcess, lines, wait_for

RATE = 4  # coord_tasks.limited: "4/s"
JOBS = 12


def start_times(path: Path) -> list[float]:
    return sorted(float(line.split()[0]) for line in lines(path))


def assert_rate_held(times: list[float]) -> None:
    assert len(times) == JOBS
    # Over the whole run: 12 runs at 4/s take at least 11 intervals (2.75 s); a run may start a
    # little late, which can only shorten the measured span by that lateness (allow 0.5 s).
    assert times[-1] - times[0] >= (JOBS - 1) / RATE - 0.5, times
    # In any one-second window: at most RATE runs, plus one for a run that started late.
    for first in times:
        in_window = [x for x in times if first <= x < first + 1.0]
        assert len(in_window) <= RATE + 1, f"{len(in_window)} runs within 1 s of {first}: {times}"


def test_rate_limit_spaces_runs_and_other_tasks_keep_flowing(
    coord: Conveyor, run_worker: type[ThreadWorker], tmp_path: Path
) -> None:
    with run_worker(coord, concurrency=2, prefetch_multiplier=1):
        limited = [t.limited.delay(f"r{i}") for i in range(JOBS)]
        # Two worker slots and twelve rate-limited jobs queued first: unlimited work still
        # gets through at once, because the waiting jobs sit in the broker, not in the slots.
        for i in range(5):
            assert t.unlimited.delay(f"u{i}").get(timeout=5) == f"u{i}"
        assert len(lines(tmp_path / "limited")) < JOBS
        assert [r.get(timeout=30) for r in limited] == [f"r{i}" for i in range(JOBS)]
    assert all(r.retries == 0 for r in limited), "waiting for the rate limit is not a retry"
    assert_rate_held(start_times(tmp_path / "limited"))


def test_rate_limit_holds_across_two_worker_processes(
    coord_shared: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    workers = [
        WorkerProcess(process_broker_url, tmp_path, "-c", "4", app="tests.apps.coord_tasks", name=f"w{i}")
        for i in range(2)
    ]
    try:
        for worker in workers:
            worker.wait_ready()
        results = [t.limited.delay(f"r{i}") for i in range(JOBS)]
        assert [r.get(timeout=60) for r in results] == [f"r{i}" for i in range(JOBS)]
        wait_for(lambda: len(lines(tmp_path / "limited")) == JOBS, 5)
    finally:
        for worker in workers:
            worker.stop()
    assert_rate_held(start_times(tmp_path / "limited"))

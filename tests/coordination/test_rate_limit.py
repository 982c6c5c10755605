"""Global rate limits: runs of a ``rate_limit="4/s"`` task are spaced across every worker, and a
limited task waits in the broker, not in a worker slot."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

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
    # In any one-second window: at most RATE runs, plus two: runs that started late (their
    # reserved times passed while the loaded machine had no slot or no CPU for them) start as
    # soon as they can, next to the runs whose turn it is. Without a limit all 12 fit in one.
    for first in times:
        in_window = [x for x in times if first <= x < first + 1.0]
        assert len(in_window) <= RATE + 2, f"{len(in_window)} runs within 1 s of {first}: {times}"


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


@pytest.mark.parametrize("change", ["raise", "lower", "same"])
def test_a_rate_limit_changed_at_run_time_retimes_the_runs_it_held_back(
    coord_shared: Conveyor, process_broker_url: str, tmp_path: Path, change: str
) -> None:
    """Under "1/m" one run starts and two wait in the broker for their reserved start times (in
    one and two minutes). Raised to "100/s", they run at once; lowered to "1/h" instead, they
    are re-timed under the new limit (an hour and two hours away), not left to run at the old
    one's times. Set to "1/m" again, nothing changes."""
    worker = WorkerProcess(
        process_broker_url, tmp_path, "-c", "4", app="tests.apps.coord_tasks", name="rl"
    ).wait_ready()
    try:
        coord_shared.admin.control.rate_limit(t.limited.name, "1/m", timeout=10)
        held = [t.limited.delay(f"r{i}") for i in range(3)]
        wait_for(lambda: len(lines(tmp_path / "limited")) == 1, 20)
        wait_for(lambda: coord_shared.admin.queue("default").delayed == 2, 20)

        def etas() -> list[float]:
            return sorted(j.eta or 0.0 for j in coord_shared.broker.pending(delayed=True))

        if change == "same":  # set again: the reservations stand, nothing runs early or twice
            before = etas()
            coord_shared.admin.control.rate_limit(t.limited.name, "1/m", timeout=10)
            assert etas() == before and len(lines(tmp_path / "limited")) == 1
            t.limited.delay("r3")  # reserves after the two that wait, not between them
            wait_for(lambda: len(etas()) == 3, 20)
            assert etas()[2] >= before[1] + 59, (before, etas())
            return
        if change == "raise":
            coord_shared.admin.control.rate_limit(t.limited.name, "100/s", timeout=10)
            assert sorted(r.get(timeout=20) for r in held) == ["r0", "r1", "r2"]
            assert all(r.retries == 0 for r in held)  # waiting for the limit is no retry
        else:
            coord_shared.admin.control.rate_limit(t.limited.name, "1/h", timeout=10)

            def retimed() -> bool:  # both back in the delayed set, now an hour or more away
                now = etas()
                return len(now) == 2 and now[0] > time.time() + 1800 and now[1] > now[0] + 1800

            wait_for(retimed, 20)
            assert len(lines(tmp_path / "limited")) == 1  # the first run's start counts as now
    finally:
        worker.stop()

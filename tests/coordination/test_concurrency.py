"""Per-key concurrency limits: at most N runs at once per key, across workers and processes."""

from __future__ import annotations

from pathlib import Path

from conveyor import Conveyor

from ..apps import coord_tasks as t
from ..conftest import ThreadWorker
from ..procs import WorkerProcess, lines

LIMIT = 2  # coord_tasks.per_user: concurrency_key="user:{user_id}", concurrency_limit=2
USERS = (1, 2, 3)


def observed(tmp_path: Path, user: int) -> list[int]:
    return [int(x) for x in lines(tmp_path / f"per_user-{user}")]


def test_per_key_limit_holds_under_load_across_two_workers(
    coord: Conveyor, run_worker: type[ThreadWorker], tmp_path: Path
) -> None:
    with run_worker(coord, concurrency=8), run_worker(coord, concurrency=8):
        results = [t.per_user.delay(user, 0.15) for _ in range(8) for user in USERS]
        assert sorted(r.get(timeout=60) for r in results) == sorted(USERS * 8)
    for user in USERS:
        runs = observed(tmp_path, user)
        assert len(runs) == 8
        assert max(runs) <= LIMIT, f"user {user}: {max(runs)} runs at once (limit {LIMIT})"
    assert any(max(observed(tmp_path, u)) == LIMIT for u in USERS), "the limit was never even reached"
    assert all(r.retries == 0 for r in results), "waiting for a slot is not a retry"
    assert not coord.broker.kv_scan("conc:"), "every slot is given back"


def test_per_key_limit_holds_across_two_worker_processes(
    coord_shared: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    workers = [
        WorkerProcess(process_broker_url, tmp_path, "-c", "6", app="tests.apps.coord_tasks", name=f"w{i}")
        for i in range(2)
    ]
    try:
        for worker in workers:
            worker.wait_ready()
        results = [t.per_user.delay(user, 0.2) for _ in range(6) for user in USERS]
        assert sorted(r.get(timeout=60) for r in results) == sorted(USERS * 6)
    finally:
        for worker in workers:
            worker.stop()
    for user in USERS:
        assert max(observed(tmp_path, user)) <= LIMIT

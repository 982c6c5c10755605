"""The launch tracker's scenario: a periodic scrape and manual refreshes, two worker processes,
one lock ("scrape:{source}"): the scrape body never runs twice at once."""

from __future__ import annotations

import time
from pathlib import Path

from conveyor import Conveyor, TaskRevokedError, states

from ..apps import coord_tasks as t
from ..procs import WorkerProcess, lines


def test_periodic_scrape_and_manual_refresh_never_overlap(
    coord_shared: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    # One task at a time each, none held back in a prefetch, so while one worker runs a scrape the
    # other fetches the next. Debug logging shows it finding the lock held.
    one = ["-c", "1", "--prefetch-multiplier", "1", "-l", "debug"]
    workers = [
        WorkerProcess(process_broker_url, tmp_path, *one, app="tests.apps.coord_tasks", name=f"w{i}")
        for i in range(2)
    ]
    try:
        for worker in workers:
            worker.wait_ready()
        scrapes, refreshes = [], []
        for tick in range(6):  # the scheduler fires faster than a scrape takes ...
            scrapes.append(t.scrape.delay("nasa", 0.4))
            if tick % 2:  # ... and users press "refresh" in between
                refreshes.append(t.manual_refresh.delay("nasa", 0.4))
            time.sleep(0.2)
        assert [r.get(timeout=60) for r in scrapes] == ["nasa"] * 6  # on_locked="wait": all run
        for refresh in refreshes:  # on_locked="skip": runs if the lock is free, else skipped
            try:
                assert refresh.get(timeout=30) == "nasa"
            except TaskRevokedError as exc:
                assert str(exc).startswith("skipped: lock 'scrape:nasa' is held by task ")
                assert refresh.state == states.REVOKED
    finally:
        for worker in workers:
            worker.stop()
    assert not (tmp_path / "overlaps").exists(), lines(tmp_path / "overlaps")
    runs = lines(tmp_path / "scrapes")
    assert sum(line.startswith("scrape ") for line in runs) == 6
    # Both workers took part: each ran a scrape or found the lock held by the other process. Which
    # one runs them is up to timing: the worker that releases the lock fetches again at once and
    # often takes it again before the other's deferred job comes back.
    ran = {line.split()[2] for line in runs}
    waited = [w for w in workers if "waits: lock 'scrape:nasa' is held" in w.log()]
    for worker in workers:
        assert str(worker.pid) in ran or worker in waited, f"{worker.name} took no part:\n{worker.log()}"
    assert waited, "the lock was never contended"
    assert coord_shared.locks() == []

"""``conveyor worker --processes N``: children start, a killed one is replaced, SIGTERM stops all."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from ..apps import basic
from ..procs import WorkerProcess, wait_for


def live_pids() -> set[int]:
    return {json.loads(w.info)["pid"] for w in basic.app.broker.workers()}


def test_processes_runs_n_workers_and_replaces_a_killed_one(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sup.db'}"
    basic.app.conf.broker_url = url
    supervisor = WorkerProcess(url, tmp_path, "--processes", "2", name="sup")
    try:
        wait_for(lambda: len(live_pids()) == 2, 30)
        names = sorted(json.loads(w.info)["hostname"] for w in basic.app.broker.workers())
        assert [n.split("@")[0] for n in names] == ["sup.1", "sup.2"]
        victim = min(live_pids())
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len(live_pids() - {victim}) == 2, 60)  # a replacement is heartbeating
        assert basic.add.delay(1, 2).get(timeout=10) == 3
    finally:
        assert supervisor.stop() == 0
        basic.app.close()
    assert "died with exit code -9; restarting" in supervisor.log()

"""The worker's control thread answers while a solo-pool task holds the event loop: it lists
what the worker holds and a terminating revoke reaches the running task."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from conveyor import Conveyor, states

from ..procs import wait_for


def test_a_solo_worker_busy_with_a_task_answers_and_a_terminating_revoke_stops_the_task(
    tmp_path: Path, run_worker: type
) -> None:
    app = Conveyor("solo_control", broker=f"sqlite:///{tmp_path / 'solo.db'}")
    started = threading.Event()

    @app.task
    def spin() -> None:
        started.set()
        while True:  # Python code holding the loop thread until it is terminated
            time.sleep(0.001)

    @app.task
    def noop() -> None: ...

    try:
        running, waiting = spin.delay(), noop.delay()
        with run_worker(app, queues=["default"], pool="solo", prefetch_multiplier=2) as worker:
            assert started.wait(20)
            control = app.admin.control
            [reserved] = control.reserved(timeout=15)
            assert reserved.ok and [t["id"] for t in reserved.data] == [waiting.id]
            [found] = control.query_task([running.id, waiting.id], timeout=15)
            states_ = {i: info["state"] for i, info in found.data.items()}
            assert states_ == {running.id: "active", waiting.id: "reserved"}
            [reply] = control.revoke([running.id], terminate=True, timeout=15)
            assert reply.data == {
                "revoked": [running.id],
                "terminated": [running.id],
                "running": [running.id],
            }
            wait_for(lambda: running.status == states.REVOKED and waiting.status == states.SUCCESS, 20)
            [known] = control.revoked(timeout=15)
            assert known.hostname == worker.hostname and running.id in known.data
    finally:
        app.close()

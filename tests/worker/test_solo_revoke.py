"""``revoke --terminate`` stops a task running on the solo pool (``-P solo``), whose event loop is
busy running it: through the heartbeat (``AsyncResult.revoke(terminate=True)``) and through the
control channel (``conveyor revoke --terminate``). Real worker processes on SQLite and Redis."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import Conveyor

from ..apps import history_app
from ..apps.history_app import quick, spin
from ..cli.helpers import conveyor
from ..procs import WorkerProcess, wait_for

APP = "tests.apps.history_app"


@pytest.fixture
def app(process_broker_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Conveyor]:
    monkeypatch.setenv("CONVEYOR_TEST_DIR", str(tmp_path))
    history_app.app.conf.broker_url = process_broker_url
    yield history_app.app
    history_app.app.close()


def test_revoke_terminate_stops_a_task_running_on_the_solo_pool_by_heartbeat_and_by_control(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    worker = WorkerProcess(process_broker_url, tmp_path, "-P", "solo", app=APP, name="solo").wait_ready()
    try:
        by_heartbeat = spin.delay(120)
        wait_for(lambda: app.admin.task(by_heartbeat.id).state == "running", 20)
        by_heartbeat.revoke(terminate=True)
        wait_for(lambda: by_heartbeat.state == "REVOKED", 20)  # long before its 120 s
        by_control = spin.delay(120)
        wait_for(lambda: app.admin.task(by_control.id).state == "running", 20)
        out = conveyor("revoke", by_control.id, "--terminate", url=process_broker_url)
        assert out.returncode == 0, out
        wait_for(lambda: by_control.state == "REVOKED", 20)
        assert quick.delay(5).get(timeout=20) == 5  # the worker goes on
        for r in (by_heartbeat, by_control):
            info = app.admin.task(r.id)
            assert info.state == "revoked" and info.runtime is not None and info.runtime < 100
        signals = (tmp_path / "revoked_signals").read_text().split("\n")
        assert f"{worker.pid} {by_heartbeat.id} True" in signals
        assert f"{worker.pid} {by_control.id} True" in signals
        assert worker.proc.poll() is None and os.getpid() != worker.pid
    finally:
        worker.stop()

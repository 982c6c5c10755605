"""The worker's heartbeat info, as the admin API reads it: what it runs (with arguments and
attempt), its memory, registered tasks and whether its fetch loop is alive."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import Conveyor

from ..apps import basic
from ..conftest import ThreadWorker
from ..procs import wait_for


@pytest.fixture
def app(broker_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Conveyor]:
    monkeypatch.setenv("CONVEYOR_TEST_DIR", str(tmp_path))
    basic.app.conf.broker_url = broker_url
    yield basic.app
    basic.app.close()


def test_a_running_task_is_listed_with_its_worker_arguments_and_attempt(
    app: Conveyor, run_worker: type[ThreadWorker]
) -> None:
    admin = app.admin
    result = basic.sleeper.delay(3.0)
    with run_worker(app, name="info@%h") as worker:
        wait_for(admin.running, 10)
        [task] = admin.running()
        assert (task.id, task.name, task.args, task.attempt) == (result.id, basic.sleeper.name, "3.0", 1)
        assert task.worker == worker.hostname and task.delivery >= 1 and task.queue == "default"
        assert admin.queue("default").running == 1
        [info] = admin.workers()
        assert info.hostname == worker.hostname and [t.id for t in info.running] == [task.id]
        assert info.memory_rss is not None and info.memory_rss > 1_000_000
        assert basic.sleeper.name in info.registered and basic.add.name in info.registered
        assert info.fetch_state in ("fetching", "full")
        assert info.fetched_at is not None and time.time() - info.fetched_at < 10
        assert result.get(timeout=15) == 3.0
        wait_for(lambda: not admin.running() and admin.workers()[0].processed == 1, 10)

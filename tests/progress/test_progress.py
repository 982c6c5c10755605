"""Task progress (issue 13): ``self.progress()`` and ``self.update_state()`` in real worker
processes on SQLite and Redis, seen through ``AsyncResult.state``/``.info``, the admin API and
``conveyor task ID``; in a thread worker on the memory broker; and in eager mode."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor import Conveyor
from conveyor.exceptions import EncodeError

from ..apps import progress_app
from ..cli.helpers import conveyor
from ..conftest import ThreadWorker
from ..procs import WorkerProcess, wait_for

APP = "tests.apps.progress_app"


@pytest.fixture
def app(process_broker_url: str) -> Iterator[Conveyor]:
    progress_app.app.conf.broker_url = process_broker_url
    yield progress_app.app
    progress_app.app.close()


def test_progress_is_visible_while_the_task_runs_then_the_result_alone(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    worker = WorkerProcess(process_broker_url, tmp_path, "-c", "4", app=APP).wait_ready()
    try:
        r = progress_app.rows.delay(500, "rows-done")
        # 500 reports in a tight loop: throttled, yet the last one is what is stored.
        wait_for(lambda: r.state == "PROGRESS" and r.info["done"] == 500, 20)
        assert r.info == {"done": 500, "total": 500, "percent": 100.0, "message": "row 500"}
        info = app.admin.task(r.id)
        assert info.state == "running" and info.progress is not None
        assert (info.progress.state, info.progress.meta["done"]) == ("PROGRESS", 500)
        shown = conveyor("task", r.id, url=process_broker_url)
        assert shown.returncode == 0, shown
        assert "progress:  PROGRESS 500/500 (100.0%) row 500" in shown.stdout
        c = progress_app.custom.delay("custom-done")
        wait_for(lambda: c.state == "RESIZING", 20)
        assert c.info == {"file": "a.png", "step": 2}
        again = progress_app.retried.delay("retried-done")
        # Its second attempt runs and has reported nothing yet: the first one's report is hidden.
        # The retry count is read first: STARTED read before it may still be the first attempt
        # (about to retry), and RETRY would follow.
        wait_for(lambda: again.retries == 1 and again.state == "STARTED", 20)
        assert again.info is None
        (tmp_path / "retried-done").touch()
        assert again.get(timeout=20) == "second"
        (tmp_path / "rows-done").touch()
        (tmp_path / "custom-done").touch()
        assert r.get(timeout=20) == 500 and c.get(timeout=20) == "resized"
        assert (r.state, r.info, c.state, c.info) == ("SUCCESS", 500, "SUCCESS", "resized")
        done = app.admin.task(r.id)
        assert done.state == "succeeded" and done.progress is None  # "500/500" beside a success: noise
        out = json.loads(conveyor("task", r.id, "--json", url=process_broker_url).stdout)
        assert out["state"] == "succeeded" and out["progress"] is None
    finally:
        worker.stop()


def test_a_failed_task_keeps_its_last_progress_and_a_retried_dead_letter_waits_without_it(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    """How far a failed run got stays readable; once its dead letter is retried the task waits
    (PENDING, no info), not showing the old run's PROGRESS, and then runs afresh."""
    worker = WorkerProcess(process_broker_url, tmp_path, app=APP).wait_ready()
    try:
        r = progress_app.fails_once.delay("fixed")
        wait_for(lambda: r.state == "FAILURE", 20)
        wait_for(lambda: [d.id for d in app.broker.dead_letters()] == [r.id], 20)
        failed = app.admin.task(r.id)
        assert failed.progress is not None and failed.progress.meta["done"] == 3
    finally:
        worker.stop()
    assert app.admin.retry_dead([r.id]) == 1  # no worker now: it waits
    assert (r.state, r.info) == ("PENDING", None)
    assert app.admin.task(r.id).progress is None
    shown = conveyor("task", r.id, url=process_broker_url)
    assert shown.returncode == 0 and "progress:" not in shown.stdout, shown
    (tmp_path / "fixed").touch()
    worker = WorkerProcess(process_broker_url, tmp_path, app=APP).wait_ready()
    try:
        assert r.get(timeout=20) == "embedded"
    finally:
        worker.stop()


def test_progress_on_the_memory_broker_and_bad_progress_input_fails_the_task_clearly(
    run_worker: type[ThreadWorker],
) -> None:
    app = Conveyor("mem", broker_url="memory://progress-mem")
    seen: list[Any] = []

    @app.task(bind=True, name="m.steps")
    def steps(self: Any) -> str:
        self.progress(1, 4)
        wait_for(lambda: app.AsyncResult(self.request.id).state == "PROGRESS", 10)
        seen.append(app.AsyncResult(self.request.id).info)
        return "ok"

    @app.task(bind=True, name="m.bad")
    def bad(self: Any) -> None:
        self.update_state(meta={"when": object()})

    @app.task(bind=True, name="m.nan")
    def nan(self: Any) -> None:
        self.update_state(meta={"mean": float("nan")})  # would be read back as None

    with run_worker(app):
        assert steps.delay().get(timeout=20) == "ok"
        with pytest.raises(EncodeError, match="not JSON-serialisable"):
            bad.delay().get(timeout=20)
        with pytest.raises(EncodeError, match="holds a float NaN or infinity"):
            nan.delay().get(timeout=20)
    assert seen == [{"done": 1, "total": 4, "percent": 25.0, "message": None}]
    app.close()


def test_progress_in_eager_mode_is_seen_while_the_run_lasts_and_never_touches_the_broker() -> None:
    app = Conveyor("eager", broker_url="memory://")
    app.conf.task_always_eager = True
    seen: list[tuple[str, Any]] = []

    @app.task(bind=True, name="e.steps")
    def steps(self: Any) -> int:
        self.progress(3, 4, "almost")
        r = app.AsyncResult(self.request.id)
        seen.append((r.state, r.info))
        return 4

    result = steps.delay()
    assert result.get() == 4 and result.state == "SUCCESS"
    assert seen == [("PROGRESS", {"done": 3, "total": 4, "percent": 75.0, "message": "almost"})]
    assert app.broker.kv_scan("progress:") == {}
    assert app.AsyncResult(result.id).state != "PROGRESS"  # the run is over
    with pytest.raises(ValueError, match="non-negative number for total"):
        steps.progress(1, -2)
    with pytest.raises(RuntimeError, match="outside a running task"):
        steps.update_state(state="X")
    app.close()

"""The task history through the admin API, written by a real worker on every broker: every
ending recorded with its attempts, ``ignore_result`` tasks without their result, running and
waiting tasks by id, counters per minute, and history turned off."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from conveyor import Conveyor
from conveyor.admin import UnknownState, UnknownTask
from conveyor.config import Settings
from conveyor.exceptions import ConfigurationError

from ..conftest import ThreadWorker
from ..procs import wait_for


def define(app: Conveyor) -> dict[str, Any]:
    gate = threading.Event()

    @app.task(name="h.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="h.charge", bind=True, max_retries=1, default_retry_delay=0.01, autoretry_for=(OSError,))
    def charge(self: Any, order: str) -> None:
        raise OSError(f"declined {order} #{self.request.retries}")

    @app.task(name="h.quiet", ignore_result=True)
    def quiet() -> int:
        return 7

    @app.task(name="h.wait")
    def wait() -> None:
        gate.wait(20)

    return {"add": add, "charge": charge, "quiet": quiet, "wait": wait, "gate": gate}


def test_every_ending_is_recorded_with_its_attempts_and_ignore_result_without_its_result(
    app: Conveyor, run_worker: type[ThreadWorker]
) -> None:
    t = define(app)
    with run_worker(app):
        ok, bad, quiet = t["add"].delay(2, 3), t["charge"].delay("order-9"), t["quiet"].delay()
        wait_for(lambda: ok.ready() and bad.ready(), 20)
        wait_for(lambda: app.admin.tasks(name="h.quiet").items, 20)
    admin = app.admin
    assert [x.id for x in admin.tasks().items][-1] in {ok.id, bad.id, quiet.id}
    info = admin.task(bad.id)
    assert (info.name, info.state, info.dead, info.args, info.attempts_made) == (
        "h.charge",
        "failed",
        True,
        "'order-9'",
        2,
    )
    assert [(a.state, a.error) for a in info.attempts] == [
        ("retrying", "OSError: declined order-9 #0"),
        ("failed", "OSError: declined order-9 #1"),
    ]
    assert info.error == "OSError: declined order-9 #1" and info.traceback
    assert [x.id for x in admin.tasks(state="dead").items] == [bad.id]
    assert [x.id for x in admin.tasks(state="failed", search="ORDER-9").items] == [bad.id]
    assert admin.tasks(state="failed", since=time.time() + 60).items == ()
    done = admin.task(ok.id)
    assert (done.state, done.result, done.queue, done.worker is not None) == ("succeeded", 5, "default", True)
    assert done.enqueued is not None and done.finished is not None and done.runtime is not None
    silent = admin.task(quiet.id)
    assert (silent.state, silent.result) == ("succeeded", None)  # recorded, its result not kept
    page = admin.tasks(limit=2)
    assert len(page.items) == 2 and page.next_offset == 2
    assert len(admin.tasks(limit=2, offset=2).items) == 1
    counts = {c.name: c for c in admin.counters()}
    assert (counts["h.charge"].processed, counts["h.charge"].failed, counts["h.charge"].retried) == (2, 1, 1)
    assert counts["h.add"].processed == 1 and counts["h.add"].runtime >= 0


def test_task_shows_a_waiting_a_scheduled_and_a_running_task_and_refuses_an_unknown_id(
    app: Conveyor, run_worker: type[ThreadWorker]
) -> None:
    t = define(app)
    admin = app.admin
    later = t["add"].apply_async((1, 1), countdown=3600)
    waiting = t["add"].apply_async((7, 8), queue="nobody-consumes")
    scheduled = admin.task(later.id)
    assert (scheduled.state, scheduled.name, scheduled.args, scheduled.next_attempt is not None) == (
        "scheduled",
        "h.add",
        "1, 1",
        True,
    )
    assert [x.id for x in admin.tasks(state="scheduled").items] == [later.id]
    assert [x.id for x in admin.tasks(state="waiting", search="7, 8").items] == [waiting.id]
    assert (admin.task(waiting.id).state, admin.task(waiting.id).queue) == ("waiting", "nobody-consumes")
    with pytest.raises(UnknownTask, match="unknown task id 'nope'"):
        admin.task("nope")
    with pytest.raises(UnknownState, match="unknown state 'lost'"):
        admin.tasks(state="lost")
    with run_worker(app):
        running = t["wait"].delay()
        try:
            wait_for(lambda: admin.tasks(state="running").items, 20)
            info = admin.task(running.id)
            assert (info.state, info.name, info.worker is not None) == ("running", "h.wait", True)
        finally:
            t["gate"].set()


def test_history_turned_off_records_nothing(app: Conveyor, run_worker: type[ThreadWorker]) -> None:
    app.conf.task_history = False
    t = define(app)
    with run_worker(app):
        ok = t["add"].delay(1, 2)
        assert ok.get(timeout=20) == 3
    assert app.admin.tasks().items == () and app.admin.counters() == []
    assert app.admin.task(ok.id).state == "succeeded"  # the result still answers by id


def test_the_environment_turns_history_off_and_a_bad_value_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONVEYOR_TASK_HISTORY", "0")
    assert Settings().task_history is False
    assert Settings({"task_history": True}).task_history is True  # a setting in code wins
    monkeypatch.setenv("CONVEYOR_TASK_HISTORY", "maybe")
    with pytest.raises(ConfigurationError, match="CONVEYOR_TASK_HISTORY must be"):
        Settings()

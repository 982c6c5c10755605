"""The task history records every ending, not only runs (issue 10): a task revoked while it
waits in the broker or in a worker's prefetch, a message refused at intake (unknown task,
undecodable body), a job dead-lettered because its worker died, and a dead letter requeued
(waiting again, then its new outcome, never still "failed"). Real worker processes on SQLite
and Redis; the memory broker with a worker thread for the requeue."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import Conveyor
from conveyor.brokers import JobSpec

from ..apps import history_app
from ..apps.history_app import dies, needs_file, quick, slow
from ..cli.helpers import conveyor
from ..conftest import ThreadWorker
from ..procs import WorkerProcess, wait_for

APP = "tests.apps.history_app"


@pytest.fixture
def app(process_broker_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Conveyor]:
    monkeypatch.setenv("CONVEYOR_TEST_DIR", str(tmp_path))
    history_app.app.conf.broker_url = process_broker_url
    yield history_app.app
    history_app.app.close()


def _signals(tmp_path: Path) -> list[tuple[int, str, str]]:
    path = tmp_path / "revoked_signals"
    if not path.exists():
        return []
    return [(int(p), i, t) for p, i, t in (line.split() for line in path.read_text().splitlines())]


def test_a_task_revoked_while_queued_or_prefetched_is_listed_as_revoked_and_signalled_where_dropped(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    # In the broker (no worker yet): dropped by the revoke itself, in this process.
    waiting = quick.delay(1)
    waiting.revoke()
    assert waiting.state == "REVOKED"
    info = app.admin.task(waiting.id)
    assert (info.state, info.name, info.args, info.worker) == ("revoked", "hist.quick", "1", None)
    assert [t.id for t in app.admin.tasks(state="revoked").items] == [waiting.id]
    assert _signals(tmp_path) == [(os.getpid(), waiting.id, "False")]
    by_cli = quick.delay(3)  # `conveyor revoke` records it too (and, importing no task, signals nothing)
    out = conveyor("revoke", by_cli.id, url=process_broker_url)
    assert out.returncode == 0, out
    assert app.admin.task(by_cli.id).state == "revoked" and len(_signals(tmp_path)) == 1
    # Prefetched by a one-slot worker busy with another task (its fetch loop stays free to
    # prefetch, four per slot): dropped by that worker when its turn comes.
    one_slot = ["-c", "1", "--prefetch-multiplier", "4"]
    worker = WorkerProcess(process_broker_url, tmp_path, *one_slot, app=APP, name="hr").wait_ready()
    try:
        busy = slow.delay("gate")
        wait_for(lambda: app.admin.task(busy.id).state == "running", 20)
        held = quick.delay(2)
        wait_for(lambda: app.broker.pending_job(held.id) is None, 20)  # in the worker's prefetch
        revoked_at = time.time()
        held.revoke()
        assert held.state != "REVOKED"  # the broker did not drop it: the worker holds it
        # The worker learns of it from its next heartbeat.
        wait_for(lambda: app.admin.workers()[0].heartbeat > revoked_at + 1.5, 20)
        (tmp_path / "gate").touch()
        wait_for(lambda: held.state == "REVOKED", 20)
        wait_for(lambda: len(app.admin.tasks(state="revoked").items) == 3, 20)
        record = app.admin.task(held.id)
        assert (record.state, record.name, record.worker) == ("revoked", "hist.quick", "hr@" + os.uname()[1])
        assert (worker.pid, held.id, "False") in _signals(tmp_path)
        out = conveyor("tasks", "--state", "revoked", "--json", url=process_broker_url)
        assert out.returncode == 0, out
        assert {t["id"] for t in json.loads(out.stdout)["items"]} == {waiting.id, by_cli.id, held.id}
    finally:
        worker.stop()


def test_refused_messages_and_tasks_whose_worker_died_leave_a_failed_record_with_the_reason(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    workers = [
        WorkerProcess(process_broker_url, tmp_path, app=APP, name=f"hd{i}").wait_ready() for i in (1, 2)
    ]
    try:
        unknown = app.send_task("hist.not_registered", args=[7])
        app.broker.enqueue([JobSpec("garbled-1", "default", b"\xffnot an envelope")])
        killer = dies.delay()
        wait_for(unknown.ready, 20)
        wait_for(lambda: getattr(app.broker.status("garbled-1"), "state", None) == "FAILURE", 20)
        wait_for(lambda: killer.state == "FAILURE", 40)  # its worker died; the other reclaims it
        wait_for(lambda: len(app.admin.tasks(state="failed").items) == 3, 20)
    finally:
        for w in workers:
            w.kill()
    not_run = app.admin.task(unknown.id)
    assert (not_run.state, not_run.dead, not_run.name, not_run.args) == (
        "failed",
        True,
        "hist.not_registered",
        "7",
    )
    assert "not registered" in (not_run.error or "")
    assert "unknown task" in (not_run.attempts[0].error or "")
    garbled = app.admin.task("garbled-1")
    assert (garbled.state, garbled.dead, garbled.name) == ("failed", True, "<malformed>")
    assert "malformed message" in (garbled.attempts[0].error or "")
    lost = app.admin.task(killer.id)
    assert (lost.state, lost.dead, lost.name) == ("failed", True, "hist.dies")
    assert "worker" in (lost.error or "") and "worker" in (lost.attempts[-1].error or "")
    # The runs its workers died on before the last: lost attempts, then the last death's failure.
    [letter] = [d for d in app.broker.dead_letters() if d.id == killer.id]  # 1 death here
    assert [a.state for a in lost.attempts] == ["lost"] * (letter.deaths - 1) + ["failed"]
    assert lost.attempts_made == letter.deaths
    counts = {c.name: c for c in app.admin.counters()}
    assert counts["hist.dies"].failed == 1


def _requeue_then_succeed(app: Conveyor, tmp_path: Path, start: object) -> None:
    """A task fails into the dead letters; requeued, it is waiting (not failed); run again, it
    succeeded, listed once. ``start()`` runs a worker as a context manager."""
    r = needs_file.delay("present")
    with start():  # type: ignore[operator]
        wait_for(lambda: r.state == "FAILURE", 20)
        wait_for(lambda: app.admin.tasks(state="dead").items, 20)
    assert app.admin.retry_dead([r.id]) == 1
    assert app.admin.task(r.id).state == "waiting"
    assert app.admin.tasks(state="failed").items == () and app.admin.tasks(state="dead").items == ()
    [listed] = app.admin.tasks().items
    assert (listed.id, listed.state, listed.dead) == (r.id, "waiting", False)
    assert [a.state for a in listed.attempts] == ["failed"]
    with start():  # type: ignore[operator]  # fails again: a second run with the same retries
        wait_for(lambda: [t.id for t in app.admin.tasks(state="dead").items] == [r.id], 20)
    again = app.admin.task(r.id)
    # Numbered as runs, though both ran with retries 0: attempts 1 and 2, not 1 and 1.
    assert ([a.attempt for a in again.attempts], again.attempts_made) == ([1, 2], 2)
    assert app.admin.retry_dead([r.id]) == 1
    waiting = app.admin.task(r.id)  # two runs made so far, the third to come
    assert (waiting.state, [a.attempt for a in waiting.attempts], waiting.attempts_made) == (
        "waiting",
        [1, 2],
        2,
    )
    (tmp_path / "present").touch()
    with start():  # type: ignore[operator]
        assert r.get(timeout=20) == "present"
        wait_for(lambda: app.admin.tasks(state="succeeded").items, 20)
    assert app.admin.tasks(state="failed").items == ()
    [listed] = app.admin.tasks().items
    assert (listed.id, listed.state) == (r.id, "succeeded")
    done = app.admin.task(r.id)
    assert done.state == "succeeded"
    assert ([a.attempt for a in done.attempts], done.attempts_made) == ([1, 2], 3)


def test_a_requeued_dead_letter_is_waiting_again_then_shows_its_new_outcome_not_failed(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    import contextlib

    @contextlib.contextmanager
    def start() -> Iterator[None]:
        w = WorkerProcess(process_broker_url, tmp_path, app=APP, name="hq").wait_ready()
        try:
            yield
        finally:
            w.stop()

    _requeue_then_succeed(app, tmp_path, start)


def test_a_requeued_dead_letter_on_the_memory_broker_behaves_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_TEST_DIR", str(tmp_path))
    history_app.app.conf.broker_url = "memory://"
    try:
        _requeue_then_succeed(history_app.app, tmp_path, lambda: ThreadWorker(history_app.app))
    finally:
        history_app.app.close()


def test_a_running_task_and_one_terminated_while_running_keep_their_enqueued_time(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    worker = WorkerProcess(process_broker_url, tmp_path, "-c", "1", app=APP, name="he").wait_ready()
    try:
        sent_at = time.time()
        busy = slow.delay("never-opened")
        # Running, as the worker's heartbeat describes it (before it, the broker only knows it
        # is leased, and by whom).
        wait_for(lambda: app.admin.task(busy.id).state == "running", 20)
        running = app.admin.task(busy.id)
        assert running.state == "running" and running.enqueued is not None and running.started is not None
        assert sent_at - 1 <= running.enqueued <= running.started
        busy.revoke(terminate=True)
        wait_for(lambda: app.admin.task(busy.id).state == "revoked", 20)
        assert app.admin.task(busy.id).enqueued == pytest.approx(running.enqueued)
    finally:
        worker.stop()


def test_a_task_a_worker_holds_without_running_it_is_leased_not_running(app: Conveyor) -> None:
    """Leased by a worker whose heartbeat does not list it (prefetched, or the worker died):
    ``task ID`` says ``leased``, not ``running`` (a user trial: a task whose worker was killed
    showed as running for as long as no worker came to requeue it)."""
    r = quick.delay(1)
    [held] = app.broker.fetch(["default"], "gone-worker", 1, 30, 0)
    assert held.id == r.id
    info = app.admin.task(r.id)
    assert (info.state, info.name, info.args, info.worker) == ("leased", "hist.quick", "1", "gone-worker")


def test_a_task_requeued_after_its_worker_died_waits_with_that_run_counted(app: Conveyor) -> None:
    """A user trial: a task whose worker was killed under it, requeued by another worker's
    keeper and not fetched yet, showed ``attempts: 0``; the run it lost is one of its runs."""
    r = quick.delay(1)
    [held] = app.broker.fetch(["default"], "dying-worker", 1, 0.05, 0)
    app.broker.heartbeat("dying-worker", 0.05, b"{}", [(r.id, held.delivery)])  # it was running
    wait_for(lambda: app.broker.reclaim(5, 60).requeued == [r.id], 10)
    info = app.admin.task(r.id)
    assert (info.state, info.attempts_made) == ("waiting", 1)

"""Workflow steps the broker ends itself, with no worker's settle: revoked while still queued,
dead-lettered after their worker died ``task_max_worker_deaths`` times (a thread worker's lease
expiring, a ``-P processes`` child dying), an at-most-once step whose worker died or whose
acknowledgement a broker crash lost (given back by the worker's reconcile). Each ends
its workflow at once: a chord fails with ``ChordError`` naming the member (its body never runs,
its errback runs once), a chain stops with the error on its later steps (docs/workflows.md,
"Steps the broker ends")."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conveyor import ChordError, Conveyor, GroupResult, WorkerLostError, chain, chord
from conveyor.brokers import Outcome
from conveyor.exceptions import TaskRevokedError

from ..apps.canvas_app import collect, errback, fatal, fatal_at_most_once, member, once, step
from ..procs import ROOT, WorkerProcess, lines, process_env, wait_for
from .conftest import worker


def _header(result: Any) -> GroupResult:
    header = result.parent
    assert isinstance(header, GroupResult)
    return header


def test_a_chord_whose_header_task_is_revoked_while_queued_fails_at_once(
    canvas: Conveyor, run_worker: Any, tmp_path: Path
) -> None:
    """Memory, SQLite and Redis, with a worker thread: the chord fails in the revoke itself."""
    body = collect.s("body")
    body.link_error(errback.s("errbacks"))
    result = chord([member.s(0), member.s(1), member.s(2)])(body)
    revoked = _header(result).results[1].id
    canvas.revoke(revoked)
    # No worker has run anything yet: the revoke failed the chord.
    with pytest.raises(ChordError, match=rf"header task {revoked} \(.*member, member 1\) ended in REVOKED"):
        result.get(timeout=10)
    with run_worker(canvas):
        wait_for(lambda: lines(tmp_path / "errbacks"), 20)
        _header(result).results[2].get(timeout=20)
        time.sleep(0.3)
    assert lines(tmp_path / "errbacks") == [revoked]
    assert not (tmp_path / "body").exists()


def test_a_chain_whose_middle_step_is_revoked_while_queued_stops_with_the_error_on_later_steps(
    canvas: Conveyor, run_worker: Any, tmp_path: Path
) -> None:
    # The middle step waits on a queue no worker serves, so it is still queued when revoked.
    workflow = chain(
        step.s(1, "log", "first"), step.s("log", "middle").set(queue="parked"), step.s("log", "last")
    )
    result = workflow.delay()
    middle = result.parent
    assert middle is not None
    with run_worker(canvas):
        wait_for(lambda: canvas.broker.pending_job(middle.id) is not None, 20)
        canvas.revoke(middle.id)
        with pytest.raises(TaskRevokedError):
            result.get(timeout=10)
        with pytest.raises(TaskRevokedError):
            middle.get(timeout=5)
    assert lines(tmp_path / "log") == ["first"]


def test_a_chain_whose_middle_step_is_revoked_before_it_was_enqueued_stops_at_it(
    canvas: Conveyor, run_worker: Any, tmp_path: Path
) -> None:
    result = chain(step.s(1, "log", "first"), step.s("log", "middle"), step.s("log", "last")).delay()
    middle = result.parent
    assert middle is not None
    canvas.revoke(middle.id)  # only the first step is queued yet
    with run_worker(canvas):
        # The fetch that finds the revoked step hands it to the worker, which settles it as
        # REVOKED with the chain's continuation (as any revoked job is handed out flagged).
        with pytest.raises(TaskRevokedError):
            result.get(timeout=20)
        with pytest.raises(TaskRevokedError):
            middle.get(timeout=5)
    assert lines(tmp_path / "log") == ["first"]


def _started_and_its_ack_lost(app: Conveyor, task_id: str) -> None:
    """What a broker crash that lost an acknowledgement leaves behind: ``task_id`` (queued on
    "parked") leased to a live worker that started it at-most-once and no longer holds it. That
    worker's reconcile (after the broker came back) gives it back, as its fetcher does."""
    owner = "w-ack-lost"
    [delivery] = app.broker.fetch(["parked"], owner, 1, 30, 0)
    assert delivery.id == task_id
    app.broker.settle([Outcome("start", task_id, delivery.delivery)], 60)
    assert app.broker.reconcile(owner, []) == [task_id]


def test_a_chain_whose_at_most_once_step_is_given_back_by_reconcile_stops_with_worker_lost(
    canvas: Conveyor, run_worker: Any, tmp_path: Path
) -> None:
    """Memory, SQLite and Redis: the step is dead-lettered, never run again, and the chain's
    later step gets its FAILURE (it used to stay PENDING for ever on SQLite and memory)."""
    result = chain(once.s(1, "runs").set(queue="parked"), step.s("log", "last")).delay()
    first = result.parent
    assert first is not None
    _started_and_its_ack_lost(canvas, first.id)
    with run_worker(canvas):  # its keeper's reclaim ends the step, with the app's ``lost`` hook
        with pytest.raises(WorkerLostError):
            result.get(timeout=20)
        with pytest.raises(WorkerLostError):
            first.get(timeout=5)
    assert first.id in [d.id for d in canvas.broker.dead_letters()]
    assert not (tmp_path / "runs").exists() and not (tmp_path / "log").exists()


def test_a_chord_whose_at_most_once_header_task_is_given_back_by_reconcile_fails(
    canvas: Conveyor, run_worker: Any, tmp_path: Path
) -> None:
    """Memory, SQLite and Redis: the header task counts as failed, so the chord fails with
    ``ChordError`` naming it and its errback runs once (its counter used to wait for ever)."""
    body = collect.s("body")
    body.link_error(errback.s("errbacks"))
    result = chord([once.s(0, "runs").set(queue="parked"), member.s(1)])(body)
    lost = _header(result).results[0].id
    _started_and_its_ack_lost(canvas, lost)
    with run_worker(canvas):
        with pytest.raises(ChordError, match=rf"header task {lost} .*ended in FAILURE: .*WorkerLostError"):
            result.get(timeout=20)
        wait_for(lambda: lines(tmp_path / "errbacks"), 20)
        _header(result).results[1].get(timeout=20)
    assert lines(tmp_path / "errbacks") == [lost]
    assert not (tmp_path / "body").exists() and not (tmp_path / "runs").exists()


def _fatal_chord(task: Any, tmp_path: Path) -> Any:
    body = collect.s("body")
    body.link_error(errback.s("errbacks"))
    return chord([member.s(0), task.s(1, "starts"), member.s(2)])(body)


def _keep_a_worker_running(
    app: Conveyor, tmp_path: Path, result: Any, env: dict[str, str]
) -> list[WorkerProcess]:
    """Workers that die on the fatal task are replaced until the chord has failed."""
    workers: list[WorkerProcess] = []
    deadline = time.monotonic() + 90
    while not result.ready():
        assert time.monotonic() < deadline, "the chord never failed"
        if not workers or workers[-1].proc.poll() is not None:
            workers.append(
                WorkerProcess(
                    app.conf.broker_url,
                    tmp_path,
                    "-c",
                    "2",
                    app="tests.apps.canvas_app",
                    name=f"w{len(workers)}",
                    env=env,
                )
            )
        time.sleep(0.1)
    return workers


@pytest.mark.parametrize("task", [fatal, fatal_at_most_once], ids=["at-least-once", "at-most-once"])
def test_a_chord_whose_header_task_kills_its_worker_every_time_fails_after_max_deaths(
    process_canvas: Conveyor, tmp_path: Path, task: Any
) -> None:
    app = process_canvas
    env = {"CONVEYOR_TEST_MAX_DEATHS": "2"}
    result = _fatal_chord(task, tmp_path)
    lost = _header(result).results[1].id
    workers = _keep_a_worker_running(app, tmp_path, result, env)
    try:
        with pytest.raises(
            ChordError, match=rf"header task {lost} .*member 1\) ended in FAILURE: .*WorkerLostError"
        ):
            result.get(timeout=5)
        wait_for(lambda: lines(tmp_path / "errbacks"), 20)
        time.sleep(0.5)
    finally:
        for w in workers:
            w.kill()
    starts = len(lines(tmp_path / "starts"))
    assert starts == (2 if task is fatal else 1)
    assert lines(tmp_path / "errbacks") == [lost]
    assert not (tmp_path / "body").exists()
    assert lost in [d.id for d in app.broker.dead_letters()]


def test_a_chord_whose_header_task_kills_its_pool_process_every_time_fails_after_max_deaths(
    process_canvas: Conveyor, tmp_path: Path
) -> None:
    app = process_canvas
    result = _fatal_chord(fatal, tmp_path)
    lost = _header(result).results[1].id
    w = worker(app, tmp_path, "w", "-P", "processes", "-c", "2")
    try:
        w.wait_ready(60)
        with pytest.raises(
            ChordError, match=rf"header task {lost} .*member 1\) ended in FAILURE: .*WorkerLostError"
        ):
            result.get(timeout=90)
        wait_for(lambda: lines(tmp_path / "errbacks"), 20)
        time.sleep(0.5)
    finally:
        w.stop()
    assert len(lines(tmp_path / "starts")) == app.conf.task_max_worker_deaths
    assert lines(tmp_path / "errbacks") == [lost]
    assert not (tmp_path / "body").exists()


def test_conveyor_revoke_without_the_app_fails_the_chord_of_a_queued_header_task(
    process_canvas: Conveyor, tmp_path: Path
) -> None:
    """``conveyor -b URL revoke ID`` (no ``-A``: the operator's shell) ends the workflow too."""
    app = process_canvas
    body = collect.s("body")
    body.link_error(errback.s("errbacks"))
    result = chord([member.s(0), member.s(1)])(body)
    revoked = _header(result).results[0].id
    cmd = [sys.executable, "-m", "conveyor", "-b", app.conf.broker_url, "revoke", revoked, "--timeout", "0.2"]
    subprocess.run(cmd, cwd=ROOT, env=process_env(tmp_path), capture_output=True, timeout=60, check=True)
    with pytest.raises(ChordError, match=rf"header task {revoked} .*member 0\) ended in REVOKED"):
        result.get(timeout=10)
    w = worker(app, tmp_path, "w").wait_ready()
    try:
        wait_for(lambda: lines(tmp_path / "errbacks"), 20)
        _header(result).results[1].get(timeout=20)
        time.sleep(0.3)
    finally:
        w.stop()
    assert lines(tmp_path / "errbacks") == [revoked]
    assert not (tmp_path / "body").exists()

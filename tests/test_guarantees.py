"""Every delivery guarantee in DESIGN.md, each with real worker processes and real signals.

Run against the brokers several processes can share (SQLite and Redis).
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from conveyor import Conveyor, TimeLimitExceeded, states
from conveyor.brokers import JobSpec

from .apps import basic
from .cli.helpers import conveyor
from .procs import WorkerProcess, lines, wait_for

FAST_LEASE = {"CONVEYOR_TEST_LEASE": "1.0", "CONVEYOR_TEST_HEARTBEAT": "0.25"}
# A 2 s lease renewed every 0.5 s: a heartbeat late by a busy machine's second still renews it
# (with 1 s and 0.25 s, a 0.75 s stall of the keeper thread was enough for a second run).
RENEWED_LEASE = {"CONVEYOR_TEST_LEASE": "2.0", "CONVEYOR_TEST_HEARTBEAT": "0.5"}


@pytest.fixture
def app(process_broker_url: str) -> Conveyor:
    basic.app.conf.broker_url = process_broker_url
    yield basic.app
    basic.app.close()


def starts(path: Path, token: str = "") -> list[str]:
    return [line for line in lines(path) if line.startswith(f"start {token}".rstrip())]


def test_sigkilled_workers_in_flight_task_runs_again_on_a_live_worker_within_5s(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    """Default settings (3 s lease, 1 s heartbeat): killed mid-task, restarted elsewhere within 5 s."""
    doomed = WorkerProcess(process_broker_url, tmp_path, name="doomed").wait_ready()
    log = tmp_path / "runs"
    result = basic.record.delay("runs", "t1", 2.0)
    wait_for(lambda: starts(log, "t1"), 15)
    survivor = WorkerProcess(process_broker_url, tmp_path, name="survivor").wait_ready()
    try:
        doomed.kill()
        killed_at = time.monotonic()
        wait_for(lambda: len(starts(log, "t1")) == 2, 10)
        restarted_after = time.monotonic() - killed_at
        assert result.get(timeout=15) == "t1"
        assert restarted_after <= 5.0, f"re-run started {restarted_after:.2f}s after SIGKILL"
        assert str(survivor.pid) in starts(log, "t1")[1]
    finally:
        survivor.stop()


def test_a_run_its_worker_died_on_shows_in_the_tasks_history_as_lost(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    """Killed mid-task once its heartbeat had told the broker the task was running: the run on
    the next worker succeeds, and the task's history shows both runs, the first as lost."""
    doomed = WorkerProcess(process_broker_url, tmp_path, env=FAST_LEASE, name="doomed").wait_ready()
    log = tmp_path / "runs"
    result = basic.record.delay("runs", "t1", 2.0)
    wait_for(lambda: any(t.id == result.id for t in app.admin.running()), 15)  # heartbeat said so
    doomed.kill()
    survivor = WorkerProcess(process_broker_url, tmp_path, env=FAST_LEASE, name="survivor").wait_ready()
    try:
        assert result.get(timeout=30) == "t1"
        assert len(starts(log, "t1")) == 2
        info = app.admin.task(result.id)
        assert info.state == "succeeded" and info.attempts_made == 2
        [lost] = info.attempts
        assert (lost.attempt, lost.state) == (1, "lost")
        assert lost.error is not None
        assert "WorkerLostError: lost while it ran (its worker or pool process died" in lost.error
    finally:
        survivor.stop()


def test_a_task_revoked_while_its_dead_worker_held_it_ends_revoked_in_its_history(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    """A user trial: the worker running it was killed, the operator revoked it before any live
    worker requeued it, and it vanished (the next fetch dropped it: no ``revoked`` listing, no
    record of the run that was lost). Now the next worker settles it as revoked, never running
    it again, and its history holds the lost run and the revoke."""
    doomed = WorkerProcess(process_broker_url, tmp_path, env=FAST_LEASE, name="doomed").wait_ready()
    result = basic.record.delay("revoked-runs", "t1", 30.0)
    wait_for(lambda: any(t.id == result.id for t in app.admin.running()), 15)  # heartbeat said so
    doomed.kill()
    # `conveyor revoke` keeps the revoke, and says the dead worker did not reply (or, if it
    # started after the worker's heartbeat aged past a lease, that no live worker was told).
    revoked = conveyor("revoke", result.id, url=process_broker_url)
    assert "did not reply" in revoked.stderr or "no live worker to tell" in revoked.stdout, revoked
    survivor = WorkerProcess(process_broker_url, tmp_path, env=FAST_LEASE, name="survivor").wait_ready()
    try:
        wait_for(lambda: app.admin.task(result.id).state == "revoked" and app.admin.task(result.id).name, 30)
        assert len(starts(tmp_path / "revoked-runs", "t1")) == 1  # not run again
        info = app.admin.task(result.id)
        assert (info.name, info.attempts_made) == (basic.record.name, 2)
        assert [(a.attempt, a.state) for a in info.attempts] == [(1, "lost"), (2, "revoked")]
        listed = json.loads(conveyor("tasks", "--state", "revoked", "--json", url=process_broker_url).stdout)
        assert [t["id"] for t in listed["items"]] == [result.id]
        assert result.state == "REVOKED"
    finally:
        survivor.stop()


@pytest.mark.parametrize("pool", ["threads", "solo"])
def test_long_task_on_a_live_worker_is_never_redelivered(
    app: Conveyor, process_broker_url: str, tmp_path: Path, pool: str
) -> None:
    """A task running 4x longer than the lease, with a second idle worker waiting: runs once.

    With -P solo the task blocks the worker's event loop, so this also shows that heartbeats do
    not depend on the loop (Celery's visibility-timeout redelivery bug)."""
    workers = [
        WorkerProcess(process_broker_url, tmp_path, "-P", pool, env=RENEWED_LEASE, name=f"w{i}")
        for i in range(2)
    ]
    try:
        for w in workers:
            w.wait_ready()
        result = basic.record.delay("long", "t1", 4 * 2.0)
        assert result.get(timeout=30) == "t1"
        assert len(starts(tmp_path / "long")) == 1
    finally:
        for w in workers:
            w.stop()


def _recorded_failed(app: Conveyor, task_id: str) -> bool:
    """Its history record says failed (with its attempts), not only its stored result."""
    info = app.admin.task(task_id)
    return info.state == "failed" and bool(info.attempts)


def test_task_whose_worker_dies_on_it_5_times_goes_to_dead_letters(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    result = basic.suicide.delay("suicides")
    deaths = 0
    while app.AsyncResult(result.id).state != states.FAILURE:
        assert deaths < 9, "task was not dead-lettered"
        worker = WorkerProcess(process_broker_url, tmp_path, env=FAST_LEASE, name=f"w{deaths}")
        # Until it died on the task, or its keeper dead-lettered the task and wrote its record
        # (the record, not only the FAILURE result the dead-lettering stores just before it:
        # killed in between, the worker would not write the record).
        wait_for(lambda w=worker: w.proc.poll() is not None or _recorded_failed(app, result.id), 30)
        worker.kill()
        deaths += 1
    # A death counts once the broker knows the task was running: this one kills its worker
    # before the first heartbeat can say so, so its first run only makes it a redelivery, which
    # the next worker confirms with the broker before starting it. Five counted deaths, then.
    assert len(lines(tmp_path / "suicides")) in (5, 6)
    letters = [d for d in app.broker.dead_letters() if d.id == result.id]
    assert letters and "worker lost 5 times" in letters[0].reason
    with pytest.raises(Exception, match="worker lost 5 times"):
        result.get(timeout=1)
    # Its history, written from the dead letter: four lost runs, then the fifth death's failure.
    wait_for(lambda: _recorded_failed(app, result.id), 30)
    info = app.admin.task(result.id)
    assert [a.state for a in info.attempts] == ["lost"] * 4 + ["failed"] and info.attempts_made == 5


def test_at_most_once_task_is_not_run_again_after_its_worker_dies(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    doomed = WorkerProcess(process_broker_url, tmp_path, env=FAST_LEASE, name="doomed").wait_ready()
    result = basic.record_at_most_once.delay("once", "t1", 30.0)
    wait_for(lambda: starts(tmp_path / "once"), 15)
    doomed.kill()
    other = WorkerProcess(process_broker_url, tmp_path, env=FAST_LEASE, name="other").wait_ready()
    try:
        wait_for(lambda: app.AsyncResult(result.id).state == states.FAILURE, 15)
        marker = basic.add.delay(1, 1)
        assert marker.get(timeout=10) == 2
        assert len(starts(tmp_path / "once")) == 1
        assert "at-most-once" in next(d.reason for d in app.broker.dead_letters() if d.id == result.id)
    finally:
        other.stop()


def test_revoke_is_durable_for_a_worker_that_was_down(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    revoked = basic.record.delay("revoked", "never")
    kept = basic.record.delay("kept", "yes")
    app.AsyncResult(revoked.id).revoke()
    worker = WorkerProcess(process_broker_url, tmp_path, name="late").wait_ready()
    try:
        assert kept.get(timeout=15) == "yes"
        assert revoked.state == states.REVOKED
        assert lines(tmp_path / "revoked") == []
    finally:
        worker.stop()


def test_revoke_with_terminate_stops_a_running_task(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    worker = WorkerProcess(process_broker_url, tmp_path, env=FAST_LEASE).wait_ready()
    try:
        result = basic.busy_loop.delay(60.0)
        wait_for(lambda: result.state == states.STARTED, 10)
        result.revoke(terminate=True)
        wait_for(lambda: result.state == states.REVOKED, 10)
        assert basic.add.delay(2, 3).get(timeout=10) == 5  # the worker goes on
    finally:
        worker.stop()


@pytest.mark.parametrize("pool", ["threads", "solo"])
@pytest.mark.parametrize("stop", ["time_limit", "revoke_terminate"])
def test_a_hard_stop_ends_a_task_that_catches_every_exception(
    app: Conveyor, process_broker_url: str, tmp_path: Path, pool: str, stop: str
) -> None:
    """A hard time limit or a terminating revoke is raised in the thread as a BaseException: the
    task's ``except Exception:`` cannot swallow it, so its thread unwinds instead of running on
    (the task itself fails or is revoked as before)."""
    worker = WorkerProcess(process_broker_url, tmp_path, "-P", pool, env=FAST_LEASE).wait_ready()
    try:
        if stop == "time_limit":
            result = basic.swallowing_loop.apply_async(("swallow",), time_limit=1.0)
            with pytest.raises(TimeLimitExceeded):
                result.get(timeout=30)
        else:
            result = basic.swallowing_loop.delay("swallow")
            wait_for(lambda: result.state == states.STARTED, 15)
            result.revoke(terminate=True)
            wait_for(lambda: result.state == states.REVOKED, 15)
        # The loop would take 30 s and log what it swallowed; stopped, it unwinds at once.
        wait_for(lambda: "unwound" in lines(tmp_path / "swallow"), 15)
        assert lines(tmp_path / "swallow") == ["unwound"]
        assert basic.add.delay(2, 3).get(timeout=15) == 5  # the worker goes on
    finally:
        worker.stop()


def test_sigterm_lets_running_tasks_finish_and_gives_prefetched_ones_back(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    # Queued before the worker starts, so that its first fetch leases all four (queued while it
    # fetches, they may come in twos, and the first could finish before the last is leased).
    results = [basic.record.delay("graceful", f"t{i}", 1.0) for i in range(4)]
    worker = WorkerProcess(process_broker_url, tmp_path, "-c", "1", "--prefetch-multiplier", "4").wait_ready()
    wait_for(lambda: starts(tmp_path / "graceful"), 10)
    # One running, three prefetched: all four leased before the signal (on a busy machine the
    # fetch may trail the first task's start).
    wait_for(lambda: (q := app.broker.queue_stats().get("default")) is not None and q.leased == 4, 10)
    assert worker.stop() == 0  # one SIGTERM
    finished = [line for line in lines(tmp_path / "graceful") if line.startswith("done")]
    assert len(finished) == 1  # the running one finished; the three prefetched were not started
    assert "gave 3 prefetched task(s) back" in worker.log()
    successor = WorkerProcess(process_broker_url, tmp_path, name="successor").wait_ready()
    try:
        assert sorted(r.get(timeout=20) for r in results) == ["t0", "t1", "t2", "t3"]
        assert len(starts(tmp_path / "graceful")) == 4  # each ran exactly once
    finally:
        successor.stop()


def test_sigterm_past_the_grace_period_gives_the_running_task_back(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    worker = WorkerProcess(process_broker_url, tmp_path, "--shutdown-timeout", "0.5").wait_ready()
    result = basic.record.delay("grace", "t1", 3.0)
    wait_for(lambda: starts(tmp_path / "grace"), 10)
    assert worker.stop(timeout=15) == 0  # exits promptly and cleanly after giving the task back
    assert "giving them back to the queue" in worker.log()
    successor = WorkerProcess(process_broker_url, tmp_path, name="successor").wait_ready()
    try:
        assert result.get(timeout=20) == "t1"
        assert len(starts(tmp_path / "grace")) == 2
    finally:
        successor.stop()


def test_a_second_signal_stops_the_worker_at_once(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    worker = WorkerProcess(process_broker_url, tmp_path).wait_ready()
    basic.record.delay("second", "t1", 60.0)
    wait_for(lambda: starts(tmp_path / "second"), 10)  # the body is running, not just prefetched
    worker.signal(signal.SIGTERM)
    time.sleep(1.5)  # a repeat within a second is taken as the same request delivered twice
    worker.signal(signal.SIGTERM)
    assert worker.proc.wait(timeout=5) != 0
    assert "second signal" in worker.log()


def test_bad_messages_go_to_dead_letters_and_the_worker_keeps_running(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    app.broker.enqueue(
        [
            JobSpec("garbage", "default", b"\x00not json at all"),
            JobSpec("no-such-task", "default", b'{"id":"no-such-task","task":"nobody.registered.this"}'),
            JobSpec(
                "wrong-shape", "default", b'{"id":"wrong-shape","task":"tests.apps.basic.add","args":"x"}'
            ),
        ]
    )
    worker = WorkerProcess(process_broker_url, tmp_path).wait_ready()
    try:
        assert basic.add.delay(20, 22).get(timeout=10) == 42
        wait_for(lambda: len(app.broker.dead_letters()) == 3, 10)
        reasons = {d.id: d.reason for d in app.broker.dead_letters()}
        assert "malformed message" in reasons["garbage"]
        assert "unknown task 'nobody.registered.this'" in reasons["no-such-task"]
        assert "malformed message" in reasons["wrong-shape"]
        assert app.AsyncResult("no-such-task").state == states.FAILURE
        assert worker.proc.poll() is None
    finally:
        worker.stop()


def test_sigterm_under_load_loses_nothing_and_runs_nothing_twice(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    first = WorkerProcess(process_broker_url, tmp_path, "-c", "4", name="first").wait_ready()
    second = WorkerProcess(process_broker_url, tmp_path, "-c", "4", name="second").wait_ready()
    results = basic.record.delay_many([("load", f"t{i}", 0.02) for i in range(300)])
    wait_for(lambda: len(starts(tmp_path / "load")) >= 50, 30)
    assert first.stop() == 0  # graceful, mid-load
    try:
        assert sorted(r.get(timeout=60) for r in results) == sorted(f"t{i}" for i in range(300))
    finally:
        second.stop()
    tokens = [line.split()[1] for line in starts(tmp_path / "load")]
    assert len(tokens) == len(set(tokens)) == 300


def test_several_worker_processes_share_a_queue(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    """Three workers, 150 tasks of 20 ms: every worker does a real share (none hoards the queue)."""
    workers = [WorkerProcess(process_broker_url, tmp_path, "-c", "2", name=f"w{i}") for i in range(3)]
    try:
        for w in workers:
            w.wait_ready()
        results = basic.record.delay_many([("fair", f"t{i}", 0.02) for i in range(150)])
        assert len([r.get(timeout=60) for r in results]) == 150
    finally:
        for w in workers:
            w.stop()
    pids = [line.split()[2] for line in starts(tmp_path / "fair")]
    shares = sorted(pids.count(str(w.pid)) for w in workers)
    assert sum(shares) == 150
    assert shares[0] >= 20, f"runs per worker: {shares}"

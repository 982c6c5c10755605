"""Worker behaviour on every broker, with a real Worker running in a thread of the test process."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conveyor import Conveyor, SoftTimeLimitExceeded, TimeLimitExceeded, states
from conveyor.exceptions import EncodeError, RemoteError, TimeoutError

from ..apps import basic
from ..procs import assert_starts_at_the_task, assert_stopped_at, lines, wait_for


@pytest.fixture
def app(broker_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Conveyor:
    monkeypatch.setenv("CONVEYOR_TEST_DIR", str(tmp_path))
    basic.app.conf.broker_url = broker_url
    yield basic.app
    basic.app.close()


def test_sync_and_async_tasks_return_results(app: Conveyor, run_worker) -> None:
    with run_worker(app):
        assert basic.add.delay(2, 3).get(timeout=10) == 5
        assert basic.async_add.delay(4, 5).get(timeout=10) == 9


@pytest.mark.parametrize("pool", ["threads", "asyncio", "solo"])
def test_every_pool_runs_sync_and_async_tasks(app: Conveyor, run_worker, pool: str) -> None:
    with run_worker(app, pool=pool):
        results = [basic.add.delay(i, i) for i in range(20)] + [
            basic.async_add.delay(i, 1) for i in range(20)
        ]
        assert [r.get(timeout=10) for r in results] == [i * 2 for i in range(20)] + [i + 1 for i in range(20)]


def test_states_go_from_pending_to_started_to_success(app: Conveyor, run_worker) -> None:
    result = basic.sleeper.delay(0.5)
    assert result.state == states.PENDING
    with run_worker(app):
        wait_for(lambda: result.state == states.STARTED, 10)
        assert result.get(timeout=10) == 0.5
        assert result.state == states.SUCCESS and result.ready() and result.successful()


def test_an_id_nobody_enqueued_is_unknown_not_pending(app: Conveyor) -> None:
    result = app.AsyncResult("no-such-id")
    assert result.state == states.UNKNOWN
    assert not result.ready()


def test_get_times_out_with_a_clear_error(app: Conveyor) -> None:
    result = basic.add.delay(1, 1)
    with pytest.raises(TimeoutError, match=r"not ready after 0\.2s"):
        result.get(timeout=0.2)


def test_autoretry_with_backoff_then_success(app: Conveyor, run_worker, tmp_path: Path) -> None:
    with run_worker(app):
        result = basic.flaky.delay("attempts", 2)
        assert result.get(timeout=15) == 2
    assert lines(tmp_path / "attempts") == ["attempt 0", "attempt 1", "attempt 2"]


def test_autoretry_gives_up_after_max_retries_with_the_original_error(app: Conveyor, run_worker) -> None:
    with run_worker(app):
        result = basic.flaky.delay("attempts", 10)
        with pytest.raises(OSError, match="attempt 3 failed"):
            result.get(timeout=15)
    assert result.state == states.FAILURE
    assert "OSError" in (result.traceback or "")
    reasons = [d.reason for d in app.broker.dead_letters() if d.id == result.id]
    assert reasons == ["failed: builtins.OSError: attempt 3 failed (after 3 retries)"]


def test_manual_retry_and_retry_state(app: Conveyor, run_worker) -> None:
    with run_worker(app):
        assert basic.manual_retry.delay(2).get(timeout=15) == 2
        exhausted = basic.manual_retry.delay(5)
        with pytest.raises(Exception, match="max retries"):
            exhausted.get(timeout=15)


def test_failure_is_stored_and_propagated(app: Conveyor, run_worker) -> None:
    with run_worker(app):
        result = basic.boom.delay()
        with pytest.raises(ValueError, match="boom"):
            result.get(timeout=10)
        assert isinstance(result.get(timeout=1, propagate=False), ValueError)
        assert result.failed()
    assert_starts_at_the_task(result.traceback, "tests/apps/basic.py")


def test_reject_dead_letters_or_requeues(app: Conveyor, run_worker) -> None:
    with run_worker(app) as worker:
        result = basic.reject.delay()
        wait_for(lambda: result.state == states.FAILURE, 10)
    assert [d.reason for d in app.broker.dead_letters()] == ["rejected: not today"]
    stats = worker.stats  # a rejected run is a failed one in the counters, as in the history
    assert (stats.processed, stats.failed, stats.dead_lettered) == (1, 1, 1)


def test_a_result_that_does_not_serialise_fails_the_task_clearly(
    app: Conveyor, run_worker, caplog: pytest.LogCaptureFixture
) -> None:
    """A failure everywhere: its result, the worker's counters and its log line (not "succeeded")."""
    with caplog.at_level(logging.INFO, logger="conveyor"), run_worker(app) as worker:
        result = basic.unserialisable_result.delay()
        with pytest.raises(EncodeError, match="not JSON-serialisable"):
            result.get(timeout=10)
    stats = worker.stats
    assert (stats.processed, stats.succeeded, stats.failed, stats.dead_lettered) == (1, 0, 1, 1)
    lines = [r.getMessage() for r in caplog.records if result.id in r.getMessage()]
    assert any("failed: result not serialisable" in line for line in lines), lines
    assert not any("succeeded" in line for line in lines), lines


def test_retry_past_max_retries_raises_the_tasks_exception_with_only_the_tasks_frames(
    app: Conveyor, run_worker
) -> None:
    """``self.retry(exc=e)`` past max_retries re-raises ``e`` from inside Conveyor: the stored
    traceback shows the task's call and the line that raised ``e``, none of Conveyor's frames."""
    with run_worker(app):
        result = basic.retries_with_exc.delay()
        with pytest.raises(KeyError):
            result.get(timeout=20)
    trace = result.traceback or ""
    assert 'raise KeyError("upstream down")' in trace and "raise self.retry(exc=exc" in trace, trace
    assert "/conveyor/" not in trace, trace


@pytest.mark.parametrize("pool", ["threads", "solo"])
def test_soft_time_limit_raises_inside_a_sync_task(app: Conveyor, run_worker, pool: str) -> None:
    with run_worker(app, pool=pool):
        assert basic.soft_limited.delay().get(timeout=10) == "cleaned up"


@pytest.mark.parametrize("pool", ["threads", "solo"])
def test_hard_time_limit_stops_a_sync_task_and_fails_it(app: Conveyor, run_worker, pool: str) -> None:
    with run_worker(app, pool=pool):
        result = basic.hard_limited.delay()
        with pytest.raises(TimeLimitExceeded):
            result.get(timeout=10)
        assert basic.add.delay(1, 2).get(timeout=10) == 3  # the worker goes on


@pytest.mark.parametrize("pool", ["threads", "solo"])
def test_a_task_stopped_by_its_hard_time_limit_shows_where_it_was(
    app: Conveyor, run_worker, pool: str
) -> None:
    """Blocked in C (time.sleep): the thread pool stops waiting at the limit and reports the
    stack the thread was on then; the solo pool's exception is raised there when sleep returns."""
    with run_worker(app, pool=pool):
        result = basic.sleeper.apply_async((3.0,), time_limit=0.5)
        with pytest.raises(TimeLimitExceeded):
            result.get(timeout=30)
    assert_stopped_at(result.traceback, "basic.py", "time.sleep(seconds)")


def test_an_async_task_stopped_by_its_hard_time_limit_shows_the_await_it_was_on(
    app: Conveyor, run_worker
) -> None:
    with run_worker(app):
        result = basic.async_hard_limited.delay()
        with pytest.raises(TimeLimitExceeded):
            result.get(timeout=30)
    assert_starts_at_the_task(result.traceback, "basic.py")
    assert "await asyncio.sleep(10)" in (result.traceback or ""), result.traceback


def test_soft_time_limit_in_an_async_task_can_be_caught(app: Conveyor, run_worker) -> None:
    with run_worker(app):
        assert basic.async_soft_limited.delay().get(timeout=10) == "cleaned up"


def test_hard_time_limit_cancels_an_async_task(app: Conveyor, run_worker) -> None:
    with run_worker(app), pytest.raises(TimeLimitExceeded):
        basic.async_hard_limited.delay().get(timeout=10)


def test_per_call_soft_time_limit_overrides_the_task(app: Conveyor, run_worker) -> None:
    with run_worker(app):
        result = basic.sleeper.apply_async(args=(5.0,), soft_time_limit=0.2)
        with pytest.raises(SoftTimeLimitExceeded):
            result.get(timeout=10)


def test_an_expired_task_is_not_run(app: Conveyor, run_worker, tmp_path: Path) -> None:
    result = basic.record.apply_async(args=("expired", "x"), expires=0.1)
    time.sleep(0.3)
    with run_worker(app):
        wait_for(lambda: result.state == states.REVOKED, 10)
    assert lines(tmp_path / "expired") == []
    assert "expired" in str(result.result)


def test_countdown_delays_the_run(app: Conveyor, run_worker) -> None:
    with run_worker(app):
        enqueued = time.time()
        result = basic.add.apply_async(args=(1, 1), countdown=0.5)
        assert result.state == states.PENDING
        assert result.get(timeout=10) == 2
        assert time.time() - enqueued >= 0.5


def test_higher_priority_runs_first(app: Conveyor, run_worker, tmp_path: Path) -> None:
    for i in range(3):
        basic.record.apply_async(args=("order", f"low{i}"), priority=1)
    basic.record.apply_async(args=("order", "high"), priority=9)
    with run_worker(app, pool="solo", prefetch_multiplier=1):
        wait_for(lambda: len(lines(tmp_path / "order")) == 8, 10)
    assert lines(tmp_path / "order")[0].startswith("start high")


def test_task_routes_send_tasks_to_their_queue(app: Conveyor, run_worker) -> None:
    app.conf.task_routes = {"tests.apps.basic.a*": {"queue": "math"}}
    try:
        result = basic.add.delay(1, 2)
        assert app.broker.queue_stats()["math"].ready == 1
        with run_worker(app, queues=["math"]):
            assert result.get(timeout=10) == 3
    finally:
        app.conf.task_routes = None


def test_revoke_of_a_prefetched_task_is_honoured(app: Conveyor, run_worker, tmp_path: Path) -> None:
    with run_worker(app, pool="solo", prefetch_multiplier=4) as worker:
        blocker = basic.gated.delay("gate", "b")  # holds the only slot until the gate opens
        victim = basic.record.delay("victim", "x")
        wait_for(lambda: blocker.state == states.STARTED and victim.state == states.STARTED, 10)
        victim.revoke()
        # The worker hears of it at its next heartbeat; only then may the blocker finish (a
        # fixed run time would race the heartbeat on a busy machine).
        processor = worker._processor
        assert processor is not None
        wait_for(lambda: victim.id in processor.revoked, 20)
        (tmp_path / "gate.open").touch()
        assert blocker.get(timeout=20) == "b"
        wait_for(lambda: victim.state == states.REVOKED, 10)
    assert lines(tmp_path / "victim") == []


def test_bulk_enqueue_runs_every_task(app: Conveyor, run_worker) -> None:
    results = basic.add.delay_many([(i, 1) for i in range(300)] + [{"x": 1, "y": 2}])
    with run_worker(app, concurrency=4):
        assert [r.get(timeout=20) for r in results] == [i + 1 for i in range(300)] + [3]


def test_remote_exception_of_an_unimported_module_is_not_imported(app: Conveyor, run_worker) -> None:
    from conveyor.message import ResultPayload
    from conveyor.results import rebuild_exception

    exc = rebuild_exception(ResultPayload(exc_type="evil_module_never_imported.Boom", exc_message="x"))
    assert isinstance(exc, RemoteError) and exc.exc_type == "evil_module_never_imported.Boom"


def test_a_delayed_task_starts_within_100ms_of_its_due_time(
    app: Conveyor, run_worker, tmp_path: Path
) -> None:
    with run_worker(app):
        basic.add.delay(0, 0).get(timeout=10)  # the worker is idle and blocked in fetch now
        due = [time.time() + 0.3 + 0.15 * i for i in range(7)]
        for when in due:
            basic.stamp.apply_async(args=("stamps",), eta=datetime.fromtimestamp(when, UTC))
        wait_for(lambda: len(lines(tmp_path / "stamps")) == 7, 15)
    started = sorted(float(x) for x in lines(tmp_path / "stamps"))
    lateness = sorted(s - d for s, d in zip(started, due, strict=True))
    assert lateness[0] >= -0.01  # never early
    assert lateness[3] < 0.1, f"lateness: {lateness}"  # the median, robust to a busy machine


def test_a_fetch_that_returns_during_shutdown_does_not_stall_it(
    tmp_path: Path, run_worker, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """While the worker stops, its only consumer is busy and its fetch is stuck on SQLite's write
    lock; the fetch then returns a job. That job goes back to the queue, the running task
    finishes, and the worker stops at once (the late fetch must not swallow the stop signal)."""
    import sqlite3
    import threading

    monkeypatch.setenv("CONVEYOR_TEST_DIR", str(tmp_path))
    basic.app.conf.broker_url = f"sqlite:///{tmp_path / 'stall.db'}"
    try:
        running = basic.sleeper.delay(4.0)
        late = basic.record.apply_async(args=("stall", "t"), countdown=0.8)
        context = run_worker(basic.app, pool="threads", concurrency=1, shutdown_timeout=8.0)
        with caplog.at_level("WARNING", logger="conveyor.worker"):
            context.__enter__()
            wait_for(lambda: running.state == states.STARTED, 10)
            blocker = sqlite3.connect(tmp_path / "stall.db", isolation_level=None, timeout=30)
            blocker.execute("BEGIN IMMEDIATE")  # the worker's next lease waits for this lock
            time.sleep(1.0)  # the delayed job is due: the fetch is blocked in its lease
            stopper = threading.Thread(target=context.__exit__, args=(None, None, None))
            stopper.start()
            time.sleep(2.5)  # past the shutdown's wait for the fetcher: stop signals are queued
            blocker.execute("COMMIT")  # the fetch returns the due job while the consumer is busy
            stopper.join(30)
        assert not stopper.is_alive()
        assert "still running" not in caplog.text
        assert running.get(timeout=1) == 4.0
        assert late.state == states.PENDING  # given back, not lost and not run
        assert lines(tmp_path / "stall") == []
    finally:
        basic.app.close()


def test_a_stop_wakes_a_full_fetcher_so_the_grace_starts_at_once(
    tmp_path: Path, run_worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fetcher whose prefetch is full sleeps until a delivery ends (solo and process pools).
    A stop must wake it: the shutdown otherwise waited for the first running task to end, or
    for the fetch wait, before its grace even began. The fetch wait is made a minute long here,
    so a fetcher the stop does not wake keeps the worker from stopping within the 15 s the
    test's worker allows."""
    from conveyor.worker import fetcher as fetcher_module
    from conveyor.worker import worker as worker_module

    monkeypatch.setattr(fetcher_module, "FETCH_WAIT", 60.0)
    monkeypatch.setattr(worker_module, "FETCH_WAIT", 60.0)
    basic.app.conf.broker_url = f"sqlite:///{tmp_path / 'full.db'}"
    try:
        running = basic.async_sleeper.delay(120.0)
        queued = [basic.add.delay(i, 1) for i in range(10)]
        context = run_worker(basic.app, pool="solo", concurrency=1, shutdown_timeout=0.5)
        worker = context.__enter__()
        try:
            wait_for(lambda: running.state == states.STARTED, 10)
            fetcher = worker._fetcher
            assert fetcher is not None
            wait_for(lambda: fetcher.state == "full" and fetcher.room.sleeping, 10)
        finally:
            context.__exit__(None, None, None)  # fails unless the worker stops within 15 s
        assert running.state == states.PENDING  # given back at the end of the grace
        assert all(r.state == states.PENDING for r in queued)  # prefetched, given back unstarted
    finally:
        basic.app.close()

"""The faults a fault-injection probe found in the engine's own promises, each reproduced by its
own recipe with real worker processes (and a real redis-server), on every broker it applies to.

- a message that breaks the worker's handling of it is dead-lettered once, never looped;
- ``sys.exit()`` / ``KeyboardInterrupt`` in a task fails that task, never the worker;
- a task that kills its worker takes none of its batchmates to the dead letters;
- an ack lost in a Redis crash does not leave its task stuck;
- an outage longer than the lease reruns nothing of the live workers;
- a job with an id that is not UTF-8 is dead-lettered alone;
- a forged ``SystemExit`` failure is not raised in the caller; a full SQLite disk is a
  ``BrokerError`` for producers;
- one SIGTERM stops a worker whose broker is gone (Redis killed, SQLite file locked) within
  its grace period and a few seconds; the outcomes it could not report are not lost.
"""

from __future__ import annotations

import re
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from conveyor import AsyncResult, Conveyor, states
from conveyor.brokers import JobSpec, Outcome, broker_from_url
from conveyor.exceptions import BrokerError, RemoteError

from .apps import basic
from .procs import WorkerProcess, lines, wait_for
from .redis_server import RedisServer
from .test_guarantees import FAST_LEASE, starts


@pytest.fixture
def app(process_broker_url: str) -> Iterator[Conveyor]:
    basic.app.conf.broker_url = process_broker_url
    yield basic.app
    basic.app.close()


def dead_reason(app: Conveyor, task_id: str) -> str:
    return next(d.reason for d in app.broker.dead_letters() if d.id == task_id)


# -- poison messages -------------------------------------------------------------------------
def test_a_task_whose_exception_cannot_be_printed_runs_once_and_is_dead_lettered(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    worker = WorkerProcess(process_broker_url, tmp_path).wait_ready()
    try:
        result = basic.unprintable.delay("unprintable")
        wait_for(lambda: result.state == states.FAILURE, 15)
        assert basic.add.delay(1, 2).get(timeout=10) == 3  # the worker goes on
        time.sleep(0.5)  # a loop would have rerun it hundreds of times by now
        assert len(lines(tmp_path / "unprintable")) == 1
        assert "Unprintable: <Unprintable: str() failed>" in dead_reason(app, result.id)
        with pytest.raises(basic.Unprintable):
            result.get(timeout=1)
    finally:
        worker.stop()


def test_messages_that_break_the_workers_handling_are_dead_lettered_once(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    """A body nested deeper than the decoder goes, and an expiry out of time's range."""
    nested = b'{"id":"deep","task":"tests.apps.basic.add","args":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    far_past = b'{"id":"far-past","task":"tests.apps.basic.add","args":[1,2],"expires":-1e300}'
    app.broker.enqueue([JobSpec("deep", "default", nested), JobSpec("far-past", "default", far_past)])
    worker = WorkerProcess(process_broker_url, tmp_path).wait_ready()
    try:
        assert basic.add.delay(20, 22).get(timeout=10) == 42
        wait_for(lambda: app.AsyncResult("far-past").state == states.REVOKED, 10)
        wait_for(lambda: any(d.id == "deep" for d in app.broker.dead_letters()), 10)
        assert "malformed message" in dead_reason(app, "deep")
        assert "expired at -1e+300" in str(app.AsyncResult("far-past").result)
        time.sleep(0.5)
        log = worker.log()
        assert log.count("deep") <= 2, "the poison message was delivered again and again"
        assert "internal error" not in log
    finally:
        worker.stop()


# -- BaseException from task code ----------------------------------------------------------------
@pytest.mark.parametrize("pool", ["threads", "solo"])
def test_sys_exit_in_a_task_fails_that_task_and_the_worker_goes_on(
    app: Conveyor, process_broker_url: str, tmp_path: Path, pool: str
) -> None:
    concurrency = ["-c", "4"] if pool == "threads" else []
    worker = WorkerProcess(process_broker_url, tmp_path, "-P", pool, *concurrency).wait_ready()
    try:
        long = basic.record.delay("long", "t1", 2.0) if pool == "threads" else None
        if long is not None:
            wait_for(lambda: starts(tmp_path / "long"), 10)  # another task runs meanwhile
        exited = basic.exits.delay("exits", 3)
        interrupted = basic.interrupted.delay("interrupted")
        async_exited = basic.async_exits.delay("async_exits", 4)
        for result, kind in ((exited, "SystemExit"), (interrupted, "KeyboardInterrupt")):
            wait_for(lambda r=result: r.state == states.FAILURE, 15)
            with pytest.raises(RemoteError, match=kind):
                result.get(timeout=1)  # rebuilt as RemoteError: never raised as itself here
        wait_for(lambda: async_exited.state == states.FAILURE, 15)
        assert "SystemExit" in dead_reason(app, async_exited.id)
        assert [basic.add.delay(i, i).get(timeout=10) for i in range(5)] == [0, 2, 4, 6, 8]
        if long is not None:
            assert long.get(timeout=15) == "t1"
        assert worker.proc.poll() is None, worker.log()
        assert all(len(lines(tmp_path / n)) == 1 for n in ("exits", "interrupted", "async_exits"))
    finally:
        assert worker.stop() == 0


def test_a_supervisor_replaces_a_child_that_exits_with_code_0_unasked(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    supervisor = WorkerProcess(process_broker_url, tmp_path, "--processes", "2", env=FAST_LEASE)
    try:
        wait_for(lambda: supervisor.log().count(" ready: ") == 2, 30)
        basic.exits_process_cleanly.delay("clean-exit")
        wait_for(lambda: "died with exit code 0; restarting" in supervisor.log(), 20)
        wait_for(lambda: supervisor.log().count(" ready: ") == 3, 30)
        assert [basic.add.delay(i, 1).get(timeout=15) for i in range(4)] == [1, 2, 3, 4]
    finally:
        assert supervisor.stop() == 0


# -- a task that kills its worker ------------------------------------------------------------------
def test_a_task_that_kills_its_worker_takes_no_batchmates_to_the_dead_letters(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    """The killer is fetched in one batch with 20 innocent tasks every time (prefetch), and
    starts first (higher priority); the innocents go back without a death each time."""
    killer = basic.suicide.apply_async(args=("suicides",), priority=9)
    innocents = basic.record.delay_many([("innocents", f"t{i}") for i in range(20)])
    rounds = 0
    while app.AsyncResult(killer.id).state != states.FAILURE:
        assert rounds < 9, "the killer was not dead-lettered"
        worker = WorkerProcess(
            process_broker_url, tmp_path, "-c", "1", "--prefetch-multiplier", "30", env=FAST_LEASE
        )
        wait_for(lambda w=worker: w.proc.poll() is not None or killer.state == states.FAILURE, 30)
        worker.kill()
        rounds += 1
    survivor = WorkerProcess(process_broker_url, tmp_path, name="survivor").wait_ready()
    try:
        assert sorted(r.get(timeout=20) for r in innocents) == sorted(f"t{i}" for i in range(20))
    finally:
        survivor.stop()
    assert [d.id for d in app.broker.dead_letters()] == [killer.id]
    assert "worker lost 5 times" in dead_reason(app, killer.id)


# -- malformed ids ---------------------------------------------------------------------------------
def _write_job_with_a_non_utf8_id(app: Conveyor, broker_url: str) -> None:
    app.broker.queue_stats()  # the schema exists
    body = b'{"id":"bad","task":"tests.apps.basic.add","args":[1,1]}'
    if broker_url.startswith("sqlite"):
        db = sqlite3.connect(broker_url.removeprefix("sqlite:///"))
        db.execute(
            "INSERT INTO jobs (id, queue, priority, seq, body) VALUES (CAST(? AS TEXT), 'default', 9, 0, ?)",
            (b"\xff\xfebad", body),
        )
        db.commit()
        db.close()
    else:
        broker = broker_from_url(broker_url)
        keys = broker._enqueue_keys  # type: ignore[attr-defined]
        head = broker._enqueue_head  # type: ignore[attr-defined]
        conn = broker._conn  # type: ignore[attr-defined]
        conn.run(conn.scripts.enqueue, keys, [*head, b"\xff\xfebad", "default", 9, "", 0, body])
        broker.close()


def test_a_job_whose_id_is_not_utf8_is_dead_lettered_alone(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    _write_job_with_a_non_utf8_id(app, process_broker_url)
    results = [basic.add.delay(i, 100) for i in range(5)]  # behind it in the queue
    worker = WorkerProcess(process_broker_url, tmp_path).wait_ready()
    try:
        assert [r.get(timeout=15) for r in results] == [100, 101, 102, 103, 104]
        letters = app.broker.dead_letters()
        assert [d.id for d in letters] == ["malformed-id:\\xff\\xfebad"]
        assert "not UTF-8" in letters[0].reason
        assert app.AsyncResult(letters[0].id).state == states.FAILURE
        assert sum(s.ready + s.leased for s in app.broker.queue_stats().values()) == 0
        assert "fetch failed" not in worker.log()
    finally:
        worker.stop()


# -- producers ---------------------------------------------------------------------------------------
def test_a_forged_systemexit_failure_is_not_raised_in_the_caller(broker_url: str) -> None:
    app = Conveyor("forged", broker=broker_url)
    try:
        app.broker.enqueue([JobSpec("forged", "default", b"{}")])
        d = app.broker.fetch(["default"], "w", 1, 30, 0)[0]
        payload = b'{"exc_type":"builtins.SystemExit","exc_message":"3"}'
        app.broker.settle([Outcome("ack", "forged", d.delivery, states.FAILURE, payload)], 60)
        with pytest.raises(RemoteError, match="SystemExit"):
            app.AsyncResult("forged").get(timeout=1)
        assert isinstance(app.AsyncResult("forged").result, RemoteError)
    finally:
        app.close()


def test_a_full_sqlite_disk_reaches_producers_as_a_broker_error(tmp_path: Path) -> None:
    app = Conveyor("full", broker=f"sqlite:///{tmp_path / 'full.db'}")
    app.conf.task_publish_retry = False
    try:

        @app.task(name="full.echo")
        def echo(text: str) -> str:
            return text

        echo.delay("first")
        db = app.broker._conn.db()  # type: ignore[attr-defined]
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages}")  # this connection can grow the file no more
        with pytest.raises(BrokerError, match="full"):
            echo.delay_many([("x" * 2000,)] * 50)
    finally:
        app.close()


# -- Redis crashes ---------------------------------------------------------------------------------
def _truncate_aof(server: RedisServer, to_timestamp: int) -> None:
    """Cut the append-only file back to a moment: the writes after it are lost, as in a power
    loss with ``appendfsync everysec`` or a failover to a replica that lagged."""
    import subprocess

    manifest = next((server.dir / "appendonlydir").glob("*.manifest"))
    subprocess.run(
        ["redis-check-aof", "--truncate-to-timestamp", str(to_timestamp), str(manifest)],
        check=True,
        capture_output=True,
        input=b"y\n",
    )


@pytest.mark.slow
def test_an_ack_lost_in_a_redis_crash_does_not_leave_its_task_stuck(tmp_path: Path) -> None:
    server = RedisServer(appendonly=True, extra=["--aof-timestamp-enabled", "yes"]).start()
    basic.app.conf.broker_url = server.url
    worker = WorkerProcess(server.url, tmp_path, env=FAST_LEASE).wait_ready()
    try:
        time.sleep(1.1 - time.time() % 1)  # start on a fresh second
        result = basic.record.delay("lost-ack", "t1", 2.0)
        wait_for(lambda: starts(tmp_path / "lost-ack"), 10)
        fetched_in = int(time.time())
        assert result.get(timeout=10) == "t1"  # acked at least a second later
        server.stop(kill=True)
        _truncate_aof(server, fetched_in)  # the fetch survives, the ack is lost
        server.start()
        # The job is leased again to the live worker, which finished it long ago. It must run
        # again (at-least-once: the broker lost the ack), not stay STARTED for ever.
        wait_for(lambda: len(starts(tmp_path / "lost-ack")) == 2, 30)
        assert result.get(timeout=15) == "t1"
        assert "gave them back" in worker.log()
    finally:
        worker.stop()
        basic.app.close()
        server.cleanup()


@pytest.mark.slow
def test_a_redis_outage_longer_than_the_lease_reruns_no_task_of_a_live_worker(tmp_path: Path) -> None:
    server = RedisServer(appendonly=True).start()
    basic.app.conf.broker_url = server.url
    workers = [
        WorkerProcess(server.url, tmp_path, "-c", "4", env=FAST_LEASE, name=f"w{i}").wait_ready()
        for i in range(2)
    ]
    try:
        results = basic.record.delay_many([("outage", f"t{i}", 0.4) for i in range(40)])
        wait_for(lambda: len(starts(tmp_path / "outage")) >= 8, 20)
        server.restart(down_for=3.0)  # three lease timeouts: every lease expires meanwhile
        assert sorted(r.get(timeout=60) for r in results) == sorted(f"t{i}" for i in range(40))
        tokens = [line.split()[1] for line in starts(tmp_path / "outage")]
        assert len(tokens) == len(set(tokens)), (
            f"ran twice: {sorted(t for t in tokens if tokens.count(t) > 1)}"
        )
    finally:
        for w in workers:
            w.stop()
        basic.app.close()
        server.cleanup()


def test_delivery_numbers_stay_unique_after_redis_loses_writes(redis_server: RedisServer) -> None:
    """Rewind a job's lease as a crash that lost the last writes would; the next hand-out must
    not reuse the number a live worker still holds (its late ack would settle the new lease)."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    broker = broker_from_url(redis_server.url)
    try:
        broker.enqueue([JobSpec("a", "q", b"{}")])
        snapshot = {key: client.dump(key) for key in client.keys("*")}
        first = broker.fetch(["q"], "w1", 1, 30, 0)[0]
        time.sleep(0.01)
        client.flushall()
        for key, value in snapshot.items():
            client.restore(key, 0, value)  # back to before the fetch
        second = broker.fetch(["q"], "w2", 1, 30, 0)[0]
        assert second.delivery != first.delivery
        broker.settle([Outcome("ack", "a", first.delivery, states.SUCCESS, b'{"result":"stale"}')], 60)
        assert broker.status("a").state == states.STARTED  # w2's lease is untouched
    finally:
        broker.close()
        client.close()


def test_sys_exit_0_in_a_task_is_a_failure_too_and_sigterm_still_stops_the_worker_cleanly(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    worker = WorkerProcess(process_broker_url, tmp_path).wait_ready()
    result = basic.exits.delay("exits2", 0)
    wait_for(lambda: result.state == states.FAILURE, 15)
    worker.signal(signal.SIGTERM)
    assert worker.proc.wait(timeout=15) == 0


# -- a broker gone at shutdown ---------------------------------------------------------------------
GRACE = 2.0  # the workers' --shutdown-timeout in these tests


def _finish_after_cutting_off(worker: WorkerProcess, tmp_path: Path, cut_off: Callable[[], None]) -> None:
    """Two gated tasks run on ``worker``; cut it off from its broker, then let them finish: it now
    holds two outcomes it cannot report."""
    wait_for(lambda: len(starts(tmp_path / "gone")) == 2, 15)
    cut_off()
    (tmp_path / "gone.open").touch()
    wait_for(lambda: sum(line.startswith("done") for line in lines(tmp_path / "gone")) == 2, 15)


def _stops_on_one_sigterm(worker: WorkerProcess) -> None:
    worker.signal(signal.SIGTERM)  # once: an operator or an orchestrator sends one
    assert worker.proc.wait(timeout=GRACE + 10) == 0, worker.log()
    assert "could not report 2 outcome(s) to the broker" in worker.log()


def _both_run_again(url: str, tmp_path: Path, results: list[AsyncResult]) -> None:
    """The given-up outcomes are not lost: their leases expire and a new worker runs them again."""
    successor = WorkerProcess(url, tmp_path, env=FAST_LEASE, name="successor").wait_ready()
    try:
        assert sorted(r.get(timeout=30) for r in results) == ["t0", "t1"]
        assert sorted(line.split()[1] for line in starts(tmp_path / "gone")) == ["t0", "t0", "t1", "t1"]
    finally:
        successor.stop()


@pytest.mark.slow
def test_sigterm_stops_a_worker_whose_broker_is_gone(tmp_path: Path) -> None:
    server = RedisServer(appendonly=True).start()  # the leases survive the crash, as in production
    basic.app.conf.broker_url = server.url
    worker = WorkerProcess(
        server.url, tmp_path, "-c", "2", "--shutdown-timeout", str(GRACE), env=FAST_LEASE
    ).wait_ready()
    try:
        results = [basic.gated.delay("gone", f"t{i}") for i in range(2)]
        _finish_after_cutting_off(worker, tmp_path, lambda: server.stop(kill=True))
        # Retrying the settle meanwhile, and saying which worker (--processes N share one log).
        wait_for(lambda: re.search(r"\S+@\S+: could not settle", worker.log()) is not None, 15)
        _stops_on_one_sigterm(worker)
        server.start()  # same port, same data
        _both_run_again(server.url, tmp_path, results)
    finally:
        worker.stop()
        basic.app.close()
        server.cleanup()


@pytest.mark.slow
def test_sigterm_stops_a_worker_whose_sqlite_database_is_locked(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'broker.db'}"
    basic.app.conf.broker_url = url
    worker = WorkerProcess(url, tmp_path, "-c", "2", "--shutdown-timeout", str(GRACE), env=FAST_LEASE)
    worker.wait_ready()
    # Another process holds the write lock (a stuck process, a backup tool): every write of the
    # worker waits for it, for longer than the worker's grace period.
    locker = sqlite3.connect(tmp_path / "broker.db", isolation_level=None)
    try:
        results = [basic.gated.delay("gone", f"t{i}") for i in range(2)]
        _finish_after_cutting_off(worker, tmp_path, lambda: locker.execute("BEGIN IMMEDIATE"))
        _stops_on_one_sigterm(worker)
        locker.execute("ROLLBACK")
        _both_run_again(url, tmp_path, results)
    finally:
        worker.stop()
        locker.close()
        basic.app.close()


@pytest.mark.slow
def test_a_second_sigterm_stops_a_worker_whose_broker_is_gone_at_once(tmp_path: Path) -> None:
    server = RedisServer().start()
    basic.app.conf.broker_url = server.url
    # A grace period far longer than the test: only the second signal can end the worker in time.
    worker = WorkerProcess(server.url, tmp_path, "-c", "2", "--shutdown-timeout", "600").wait_ready()
    try:
        for i in range(2):
            basic.gated.delay("gone", f"t{i}")
        _finish_after_cutting_off(worker, tmp_path, lambda: server.stop(kill=True))
        worker.signal(signal.SIGTERM)
        wait_for(lambda: "SIGTERM received" in worker.log(), 10)
        time.sleep(1.5)  # a repeat within a second is taken as the same request delivered twice
        worker.signal(signal.SIGTERM)
        assert worker.proc.wait(timeout=10) != 0
        assert "second signal" in worker.log()
    finally:
        worker.stop()
        basic.app.close()
        server.cleanup()

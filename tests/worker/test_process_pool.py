"""``-P processes``: sync tasks in child processes of the worker, with real kills and recycling.

Real worker processes (``conveyor worker -P processes``) on both brokers several processes can
share; every deadline is generous (a loaded 2-core machine) and polled, never slept.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from conveyor import Conveyor, states
from conveyor.exceptions import TimeLimitExceeded
from conveyor.worker import Worker

from ..apps import proc_tasks
from ..procs import WorkerProcess, assert_starts_at_the_task, assert_stopped_at, lines, wait_for

APP = "tests.apps.proc_tasks"


@pytest.fixture
def app(process_broker_url: str) -> Iterator[Conveyor]:
    proc_tasks.app.conf.broker_url = process_broker_url
    yield proc_tasks.app
    proc_tasks.app.close()


def worker(url: str, tmp_path: Path, *args: str, name: str = "w") -> WorkerProcess:
    return WorkerProcess(url, tmp_path, "-P", "processes", *args, app=APP, name=name)


@contextlib.contextmanager
def running(url: str, tmp_path: Path, *args: str, name: str = "w") -> Iterator[WorkerProcess]:
    """A ready ``-P processes`` worker, stopped at the end; it must exit 0."""
    w = worker(url, tmp_path, *args, name=name).wait_ready()
    try:
        yield w
    finally:
        assert w.stop() == 0


def children_of(pid: int) -> list[int]:
    try:
        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def started_pids(path: Path) -> list[int]:
    return [int(line.split()[1]) for line in lines(path) if line.startswith("start")]


def test_sync_tasks_run_in_children_and_async_tasks_on_the_worker(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    with running(process_broker_url, tmp_path, "-c", "2") as w:
        child = proc_tasks.pid.delay().get(timeout=30)
        assert child != w.pid and child in children_of(w.pid)
        assert proc_tasks.async_pid.delay().get(timeout=30) == w.pid

        def shown() -> list[int]:  # what the heartbeat tells `inspect stats` and the admin API
            return [p for info in app.admin.workers() for p in info.pool_processes]

        wait_for(lambda: sorted(shown()) == sorted(children_of(w.pid)), 10)
        assert child in shown()
    assert "pool=processes concurrency=2" in w.log()


def test_a_hard_time_limit_kills_the_child_after_the_soft_limit_and_the_next_task_runs(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    """``stuck`` catches SoftTimeLimitExceeded (0.5 s), then blocks in time.sleep(60): the hard
    limit (1.5 s) kills its child; the task fails with TimeLimitExceeded and a fresh child runs
    the next task."""
    with running(process_broker_url, tmp_path, "-c", "1") as w:
        t0 = time.monotonic()
        result = proc_tasks.stuck.delay("stuck", 60)
        with pytest.raises(TimeLimitExceeded):
            result.get(timeout=30)
        assert time.monotonic() - t0 < 30  # far below the 60 s the body asked for
        killed = started_pids(tmp_path / "stuck")
        assert [line.split()[0] for line in lines(tmp_path / "stuck")] == ["start", "soft"]
        wait_for(lambda: not alive(killed[0]), 10)
        fresh = proc_tasks.pid.delay().get(timeout=30)
        assert fresh != killed[0] and fresh in children_of(w.pid)
    assert result.state == states.FAILURE


@pytest.mark.parametrize("blocked", ["sleeps", "socket_read"])
def test_a_time_limit_of_one_second_stops_time_sleep_60_and_a_socket_read(
    app: Conveyor, process_broker_url: str, tmp_path: Path, blocked: str
) -> None:
    with running(process_broker_url, tmp_path, "-c", "1"):
        result = getattr(proc_tasks, blocked).delay("sleeps", 60)
        with pytest.raises(TimeLimitExceeded, match="hard time limit"):
            result.get(timeout=30)
        assert proc_tasks.pid.delay().get(timeout=30) != started_pids(tmp_path / "sleeps")[0]
        # The fresh child was started while the kill was being handled: a failure in it is
        # still the task's own, with no cancellation of the worker's chained to it.
        failed = proc_tasks.raises_custom.delay()
        wait_for(lambda: failed.state == states.FAILURE, 30)
        assert "CancelledError" not in (failed.traceback or "") and "During handling" not in (
            failed.traceback or ""
        ), failed.traceback
        assert_starts_at_the_task(failed.traceback, "proc_tasks.py")
    # Where it was stuck: read from the child (faulthandler) just before it was killed.
    stuck_on = {"sleeps": "time.sleep(seconds)", "socket_read": "return ours.recv(1)"}[blocked]
    assert_stopped_at(result.traceback, "proc_tasks.py", stuck_on)


@pytest.mark.parametrize(
    "how",
    [
        "control-SIGKILL",
        "control-SIGTERM",
        "control-SIGQUIT",
        "control-SIGUSR1",
        "control-HUP",
        "stored",
        "result-SIGQUIT",
    ],
)
def test_revoke_terminate_kills_only_the_child_running_a_c_blocked_task(
    app: Conveyor, process_broker_url: str, tmp_path: Path, how: str
) -> None:
    """Through the control channel with each kind of --signal (SIGTERM, which children ignore,
    becomes SIGKILL; SIGQUIT and SIGHUP, any signal Celery's --signal takes, kill by themselves;
    SIGUSR1 is followed by SIGKILL), or stored and seen at the next heartbeat."""
    with running(process_broker_url, tmp_path, "-c", "2") as w:
        other = proc_tasks.sleeps.apply_async(("other", 0.8))  # runs in the other child meanwhile
        blocked = proc_tasks.c_blocked.delay("blocked", 60)
        wait_for(lambda: started_pids(tmp_path / "blocked"), 30)
        victim = started_pids(tmp_path / "blocked")[0]
        # inspect active (the heartbeat) names the child running it (Celery's worker_pid).
        wait_for(
            lambda: [t.pid for x in app.admin.workers() for t in x.running if t.id == blocked.id] == [victim],
            15,
        )
        if how == "stored":
            blocked.revoke(terminate=True)
        elif how == "result-SIGQUIT":  # Celery's AsyncResult.revoke(terminate=True, signal=...)
            blocked.revoke(terminate=True, signal="SIGQUIT")
        else:
            sig = how.partition("-")[2]
            replies = app.admin.control.revoke([blocked.id], terminate=True, signal=sig, timeout=10)
            assert [r.data["terminated"] for r in replies if r.ok] == [[blocked.id]]
        wait_for(lambda: app.broker.status(blocked.id).state == states.REVOKED, 30)
        wait_for(lambda: not alive(victim), 10)
        assert other.get(timeout=30) == "slept"  # its child was not touched
        assert proc_tasks.pid.delay().get(timeout=30) != victim
    assert "died" not in w.log()  # a kill the worker asked for is no child death
    # Where the task was when it was stopped: in the log line and in the revoke's reason.
    assert f"running task {blocked.id} (" in w.log() and "it was at proc_tasks.py:" in w.log()
    assert "stopped at proc_tasks.py:" in str(app.admin.task(blocked.id).error), app.admin.task(blocked.id)
    if how == "result-SIGQUIT":
        assert f"running task {blocked.id} (SIGQUIT)" in w.log()  # that very signal, not SIGKILL
    if how == "control-HUP":
        assert f"running task {blocked.id} (SIGHUP)" in w.log()
    if how in ("control-SIGTERM", "stored"):  # SIGTERM (the default): the log names what is sent
        assert f"running task {blocked.id} (SIGKILL)" in w.log()


@pytest.mark.parametrize(("crash", "how"), [("segfault", "killed by SIGSEGV"), ("exits", "exit code 3")])
def test_a_segfaulting_child_is_replaced_its_task_redelivered_then_dead_lettered(
    app: Conveyor, process_broker_url: str, tmp_path: Path, crash: str, how: str
) -> None:
    """task_max_worker_deaths = 3 in the app: three runs, three dead children, one dead letter
    naming how the last one died; the worker itself never died and still runs tasks."""
    with running(process_broker_url, tmp_path, "-c", "1") as w:
        result = getattr(proc_tasks, crash).delay("segv")
        wait_for(lambda: app.broker.status(result.id).state == states.FAILURE, 60)
        pids = started_pids(tmp_path / "segv")
        assert len(pids) == 3 and len(set(pids)) == 3
        letters = app.broker.dead_letters()
        assert [x.id for x in letters] == [result.id]
        assert "died 3 times" in letters[0].reason and how in letters[0].reason
        assert proc_tasks.pid.delay().get(timeout=30) not in pids
        # The worker's counters (inspect stats, status, the dashboard) count the task as
        # failed once, like the task history's counters: not each death, not zero times.
        wait_for(lambda: [(x.processed, x.failed) for x in app.admin.workers()] == [(2, 1)], 30)
        # Its history: two lost runs, brought by the third, whose death ended it.
        info = app.admin.task(result.id)
        assert [a.state for a in info.attempts] == ["lost", "lost", "failed"] and info.attempts_made == 3
        # ...failed and dead: `conveyor tasks --state dead` lists it, as any dead letter.
        assert info.state == "failed" and info.dead
        assert [t.id for t in app.admin.tasks(state="dead").items] == [result.id]
    assert "redelivered (death 1 of 3)" in w.log()
    assert f"task {getattr(proc_tasks, crash).name}[{result.id}] moved to dead letters" in w.log()


def test_an_at_most_once_task_that_kills_its_child_is_dead_lettered_at_once(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    with running(process_broker_url, tmp_path, "-c", "1") as w:
        result = proc_tasks.segfault_at_most_once.delay("once")
        wait_for(lambda: app.broker.status(result.id).state == states.FAILURE, 60)
        assert len(started_pids(tmp_path / "once")) == 1
        assert "at-most-once" in app.broker.dead_letters()[0].reason
        wait_for(lambda: [(x.processed, x.failed) for x in app.admin.workers()] == [(1, 1)], 30)
    assert f"task {proc_tasks.segfault_at_most_once.name}[{result.id}] moved to dead letters" in w.log()


def test_max_tasks_per_child_10_over_100_tasks_uses_at_least_10_children(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    with running(process_broker_url, tmp_path, "-c", "2", "--max-tasks-per-child", "10") as w:
        results = [proc_tasks.pid.delay() for _ in range(100)]
        pids = Counter(r.get(timeout=120) for r in results)
        assert len(pids) >= 10, pids
        assert max(pids.values()) <= 10
        assert w.proc.poll() is None  # the worker itself was not replaced
    assert "max tasks per child 10); replacing it" in w.log()


def test_a_memory_limit_below_a_fresh_childs_size_is_said_before_any_task(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    """As the threads pool says it at start (no task sent here): 1,000 KiB is below any Python
    process. Said once, not for every child that replaces one."""
    said = "max memory per child 1000 KiB is below what a pool process uses at start"
    with running(process_broker_url, tmp_path, "-c", "2", "--max-memory-per-child", "1000") as w:
        wait_for(lambda: said in w.log(), 60)
        assert proc_tasks.pid.delay().get(timeout=30) > 0  # replaced after it: a fresh child
        assert proc_tasks.pid.delay().get(timeout=30) > 0
    assert w.log().count(said) == 1


def test_a_child_past_max_memory_per_child_is_replaced_after_its_task(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    # 150 MiB: a fresh child is well under it, one keeping 200 MiB well over.
    w = worker(process_broker_url, tmp_path, "-c", "1", "--max-memory-per-child", str(150 * 1024))
    try:
        w.wait_ready()
        first = proc_tasks.pid.delay().get(timeout=30)
        assert proc_tasks.pid.delay().get(timeout=30) == first
        assert proc_tasks.hoard.delay(200).get(timeout=30) == first  # the task itself finishes
        assert proc_tasks.pid.delay().get(timeout=30) != first
    finally:
        assert w.stop() == 0
    assert "is over max memory per child 153600 KiB; replacing it" in w.log()


def test_sigterm_drains_the_children_gracefully(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    w = worker(process_broker_url, tmp_path, "-c", "2").wait_ready()
    running = proc_tasks.first_run_hangs.delay("drain", 1.5)
    wait_for(lambda: started_pids(tmp_path / "drain"), 30)
    children = children_of(w.pid)
    assert children
    w.signal(signal.SIGTERM)
    assert w.proc.wait(timeout=60) == 0
    assert running.get(timeout=10) == started_pids(tmp_path / "drain")[0]  # it finished, not killed
    for pid in children:
        wait_for(lambda pid=pid: not alive(pid), 10)
    assert "died" not in w.log()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_to_the_whole_process_group_drains_instead_of_killing_running_tasks(
    app: Conveyor, process_broker_url: str, tmp_path: Path, signum: int
) -> None:
    """Ctrl-C in a terminal (SIGINT), systemd's KillMode=control-group (SIGTERM): the signal
    reaches the worker and every child at once."""
    w = worker(process_broker_url, tmp_path, "-c", "1").wait_ready()
    running = proc_tasks.first_run_hangs.delay("group", 1.5)
    wait_for(lambda: started_pids(tmp_path / "group"), 30)
    for pid in [w.pid, *children_of(w.pid)]:
        os.kill(pid, signum)
    assert w.proc.wait(timeout=60) == 0
    assert running.get(timeout=10) == started_pids(tmp_path / "group")[0]


def test_sigkill_of_the_worker_leaves_no_orphan_children_and_its_tasks_are_redelivered(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    w = worker(process_broker_url, tmp_path, "-c", "2").wait_ready()
    result = proc_tasks.first_run_hangs.delay("orphan", 60)
    wait_for(lambda: started_pids(tmp_path / "orphan"), 30)
    children = children_of(w.pid)
    assert len(children) == 2
    w.kill()
    for pid in children:
        wait_for(lambda pid=pid: not alive(pid), 10)  # PR_SET_PDEATHSIG / the pipe watch
    with running(process_broker_url, tmp_path, "-c", "1", name="w2") as again:
        assert result.get(timeout=60) in children_of(again.pid)  # redelivered, run once more
    assert len(started_pids(tmp_path / "orphan")) == 2


def test_children_hold_no_broker_connection_of_the_worker_and_open_their_own(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    with running(process_broker_url, tmp_path, "-c", "1"):
        opened = proc_tasks.open_descriptors.delay().get(timeout=30)
        sockets = [name for name in opened if name.startswith("socket:")]
        assert len(sockets) == 1, opened  # its own pipe to the worker, nothing else
        assert not any(name.endswith((".db", ".db-wal")) for name in opened), opened
        sent = proc_tasks.enqueue_from_child.delay(1).get(timeout=30)  # a task sending a task
        assert app.AsyncResult(sent).get(timeout=30) > 0


def test_hooks_logging_and_worker_process_init_happen_in_the_child(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    with running(process_broker_url, tmp_path, "-c", "1") as w:
        child = proc_tasks.logs.delay("hello").get(timeout=30)
        wait_for(lambda: "child says hello" in w.log(), 10)
        assert str(child) in lines(tmp_path / "process_init")
        assert proc_tasks.fails_twice.delay("retried").get(timeout=30) == 3  # autoretry_for, in the child
        failing = proc_tasks.raises_custom.delay()
        with pytest.raises(Exception) as caught:
            failing.get(timeout=30)
        assert type(caught.value).__name__ == "CustomError" and "custom failure" in str(caught.value)
        assert_starts_at_the_task(failing.traceback, "tests/apps/proc_tasks.py")
    assert "PoolWorker-1] tests.apps.proc_tasks.logs[" in w.log()


@pytest.mark.parametrize("pool", ["prefork", "processes"])
def test_spawn_start_method_and_the_prefork_alias(
    app: Conveyor, process_broker_url: str, tmp_path: Path, pool: str
) -> None:
    w = WorkerProcess(
        process_broker_url, tmp_path, "-P", pool, "-c", "1", "--pool-start-method", "spawn", app=APP
    ).wait_ready()
    try:
        child = proc_tasks.pid.delay().get(timeout=60)
        assert child in children_of(w.pid)
        with pytest.raises(TimeLimitExceeded):
            proc_tasks.sleeps.delay("spawned", 60).get(timeout=60)
        assert proc_tasks.pid.delay().get(timeout=60) != child
    finally:
        assert w.stop() == 0


def test_a_bad_pool_start_method_is_refused_with_the_choices() -> None:
    app = Conveyor("start", broker="memory://start", worker_pool="prefork", worker_pool_start_method="vfork")
    with pytest.raises(ValueError, match="pool start method 'vfork': choose one of fork, spawn"):
        Worker(app)
    assert Worker(Conveyor("alias", broker="memory://alias", worker_pool="prefork")).pool == "processes"


def test_a_killed_tasks_on_failure_runs_in_the_worker_and_a_finished_ones_in_its_child(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    with running(process_broker_url, tmp_path, "-c", "1") as w:
        child = proc_tasks.hooked.delay(0).get(timeout=30)
        with pytest.raises(TimeLimitExceeded):
            proc_tasks.hooked.delay(60).get(timeout=30)
    assert lines(tmp_path / "hooks") == [
        f"on_success {child}",
        f"on_failure TimeLimitExceeded {w.pid} True",  # the child was killed: here, self.request set
    ]


def test_spawned_children_log_to_the_workers_log_file(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    logfile = tmp_path / "worker.log"
    w = worker(
        process_broker_url, tmp_path, "-c", "1", "--pool-start-method", "spawn", "--logfile", str(logfile)
    )
    try:
        wait_for(lambda: " ready: " in (logfile.read_text() if logfile.exists() else ""), 30)
        child = proc_tasks.logs.delay("from a spawned child").get(timeout=60)
        assert child in children_of(w.pid)
        wait_for(lambda: "child says from a spawned child" in logfile.read_text(), 10)
    finally:
        assert w.stop() == 0
    assert "PoolWorker-1] tests.apps.proc_tasks.logs[" in logfile.read_text()


def test_a_task_outliving_the_shutdown_timeout_is_given_back_and_its_child_killed(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    """The child is killed when the grace period ends, before its task goes back to the queue:
    no other worker runs the task while this child still does. Its first run sleeps 4 s: the
    child used to be killed only 5 s after the grace period, and so finished it."""
    w = worker(process_broker_url, tmp_path, "-c", "1", "--shutdown-timeout", "1").wait_ready()
    result = proc_tasks.first_run_hangs.delay("outlives", 4)
    wait_for(lambda: started_pids(tmp_path / "outlives"), 30)
    child = started_pids(tmp_path / "outlives")[0]
    w.signal(signal.SIGTERM)
    assert w.proc.wait(timeout=30) == 0
    wait_for(lambda: not alive(child), 10)
    assert [line for line in lines(tmp_path / "outlives") if line.startswith("done")] == []
    with running(process_broker_url, tmp_path, "-c", "1", name="w2") as again:
        assert result.get(timeout=60) in children_of(again.pid)  # given back at once, run again
    assert "giving them back to the queue" in w.log()


def test_an_idle_child_killed_from_outside_is_replaced_and_no_task_pays_for_it(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    """The OOM killer taking an idle child: a fresh one takes its slot; nothing is redelivered."""
    with running(process_broker_url, tmp_path, "-c", "1") as w:
        first = proc_tasks.pid.delay().get(timeout=30)
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: children_of(w.pid) and first not in children_of(w.pid), 20)
        results = [proc_tasks.pid.delay() for _ in range(5)]
        assert {r.get(timeout=30) for r in results} == set(children_of(w.pid))
        assert app.broker.dead_letters() == []
    assert "died (killed by SIGKILL); starting a fresh one" in w.log()
    assert "redelivered" not in w.log()


def test_an_embedded_worker_runs_sync_tasks_in_children_and_returns_when_the_queue_is_empty(
    app: Conveyor,
) -> None:
    results = [proc_tasks.pid.delay() for _ in range(4)]
    failing = proc_tasks.raises_custom.delay()
    w = Worker(app, pool="processes", concurrency=2, burst=True, install_signal_handlers=False)
    w.run()
    pids = {r.get(timeout=10) for r in results}
    assert pids and os.getpid() not in pids
    assert app.broker.status(failing.id).state == states.FAILURE
    assert not any(alive(pid) for pid in pids)  # the children stopped with the worker


def test_a_result_json_cannot_carry_fails_the_task_unless_it_is_not_stored(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    with running(process_broker_url, tmp_path, "-c", "1") as w:
        with pytest.raises(Exception, match="task result is not JSON-serialisable"):
            proc_tasks.unserialisable_result.delay().get(timeout=30)
        ignored = proc_tasks.unserialisable_ignored.delay()
        wait_for(lambda: "unserialisable_ignored[" + ignored.id + "] succeeded" in w.log(), 30)


def test_children_that_cannot_start_stop_the_worker_and_its_tasks_go_back(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    """A broken deploy (here a worker_process_init handler that exits in every child): the
    worker gives up after a few failed starts, exits 1, and holds no task hostage."""
    broken = WorkerProcess(
        process_broker_url, tmp_path, "-P", "processes", "-c", "1", app=APP, name="broken",
        env={"PROC_TASKS_BREAK_CHILDREN": "1"},
    )  # fmt: skip
    result = proc_tasks.pid.delay()
    assert broken.proc.wait(timeout=60) == 1
    assert "pool processes in a row died before they were ready (last: exit code 5)" in broken.log()
    with running(process_broker_url, tmp_path, "-c", "1", name="healthy") as healthy:
        assert result.get(timeout=30) in children_of(healthy.pid)


def test_a_task_killed_by_its_hard_limit_retries_per_its_policy(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    """autoretry_for=(TimeLimitExceeded,), max_retries=1: killed, retried once, killed, failed."""
    with running(process_broker_url, tmp_path, "-c", "1") as w:
        result = proc_tasks.retried_after_time_limit.delay("retried")
        with pytest.raises(TimeLimitExceeded):
            result.get(timeout=60)
        pids = started_pids(tmp_path / "retried")
        assert len(pids) == 2 and pids[0] != pids[1]
    assert "will retry in" in w.log()


def test_with_several_worker_processes_recycling_replaces_pool_children_not_workers(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    args = ("--processes", "2", "-c", "1", "--max-tasks-per-child", "2")
    with running(process_broker_url, tmp_path, *args) as w:
        workers = children_of(w.pid)
        results = [proc_tasks.pid.delay() for _ in range(12)]
        pids = Counter(r.get(timeout=60) for r in results)
        assert len(pids) >= 6 and max(pids.values()) <= 2, pids
        assert not set(pids) & {w.pid}
        assert all(alive(pid) for pid in workers if pid not in pids)  # the worker processes live on
    assert "max tasks per child 2); replacing it" in w.log()
    assert "starting a fresh one" not in w.log()  # no worker process was recycled

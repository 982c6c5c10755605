"""Recycling: ``--max-tasks-per-child`` and ``--max-memory-per-child`` replace a worker process
after the task that reached the limit; real processes, on both brokers processes can share."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import Conveyor, states
from conveyor.worker import Worker

from ..apps import basic
from ..procs import WorkerProcess, lines, wait_for


@pytest.fixture
def app(process_broker_url: str) -> Iterator[Conveyor]:
    basic.app.conf.broker_url = process_broker_url
    yield basic.app
    basic.app.close()


def test_max_tasks_per_child_recycles_and_runs_every_task_once(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    results = [basic.record.delay("runs", str(i)) for i in range(100)]
    worker = WorkerProcess(process_broker_url, tmp_path, "-c", "2", "--max-tasks-per-child", "10")
    try:
        assert sorted(int(r.get(timeout=120)) for r in results) == list(range(100))
    finally:
        assert worker.stop() == 0
    done = [line.split() for line in lines(tmp_path / "runs") if line.startswith("done")]
    starts = Counter(line.split()[1] for line in lines(tmp_path / "runs") if line.startswith("start"))
    assert sorted(starts) == sorted(str(i) for i in range(100)) and set(starts.values()) == {1}
    per_pid = Counter(pid for _, _, pid in done)
    assert len(per_pid) >= 10, per_pid
    assert max(per_pid.values()) <= 10 + 1  # the 10th task, plus the one the other slot was running
    assert "max tasks per child 10); draining" in worker.log()


@pytest.mark.parametrize("acks", ["late", "early"])
def test_a_retiring_worker_lets_a_long_task_in_another_slot_finish_past_the_shutdown_timeout(
    app: Conveyor, process_broker_url: str, tmp_path: Path, acks: str
) -> None:
    """The threads pool retires its whole process: the short tasks reach the limit while a long
    one runs in the other slot. It finishes, once, however long past --shutdown-timeout: given
    back, it would run again from the start (or fail, at-most-once). Its replacement starts as
    it begins to retire, and runs the task queued meanwhile while the long one still runs."""
    long_task = basic.record if acks == "late" else basic.record_at_most_once
    flags = ("-c", "2", "--max-tasks-per-child", "2", "--shutdown-timeout", "1")
    worker = WorkerProcess(process_broker_url, tmp_path, *flags).wait_ready()
    try:
        slow = long_task.delay("slow", "long", 15.0)
        wait_for(lambda: lines(tmp_path / "slow"), 30)
        shorts = [basic.record.delay("short", str(i)) for i in range(2)]
        assert sorted(r.get(timeout=30) for r in shorts) == ["0", "1"]
        after = basic.record.delay("short", "after")
        assert after.get(timeout=60) == "after"
        assert not slow.ready()  # the fresh process ran it beside the retiring one
        assert slow.get(timeout=60) == "long"
    finally:
        worker.stop()
    assert [line.split()[0] for line in lines(tmp_path / "slow")] == ["start", "done"]  # run once
    first_pid = lines(tmp_path / "slow")[0].split()[2]
    [after_pid] = [line.split()[2] for line in lines(tmp_path / "short") if line.startswith("done after")]
    assert after_pid != first_pid  # the fresh process ran it
    assert "giving them back" not in worker.log()
    assert "retiring: starting a fresh one beside it" in worker.log()


def test_sigterm_to_a_retiring_worker_starts_the_usual_grace_period(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    """An operator's stop is not held up by a long task of a retiring worker: the grace period
    (--shutdown-timeout 1) runs from the SIGTERM, then the task goes back to the queue."""
    flags = ("-c", "2", "--max-tasks-per-child", "1", "--shutdown-timeout", "1")
    worker = WorkerProcess(process_broker_url, tmp_path, *flags).wait_ready()
    slow = basic.record.delay("slow", "long", 120.0)
    wait_for(lambda: lines(tmp_path / "slow"), 30)
    assert basic.record.delay("short", "0").get(timeout=30) == "0"  # the limit: it retires
    wait_for(lambda: "draining so that a fresh process takes over" in worker.log(), 30)
    worker.signal(signal.SIGTERM)
    assert worker.proc.wait(timeout=60) == 0  # long before the 120 s task could end
    assert "giving them back to the queue" in worker.log()
    assert app.broker.status(slow.id) is None or app.broker.status(slow.id).state != states.SUCCESS


def test_a_worker_past_max_memory_per_child_is_replaced_after_that_task(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    # 150 MiB limit; a fresh worker is well under it, and 200 MiB kept by one task is well over.
    worker = WorkerProcess(process_broker_url, tmp_path, "--max-memory-per-child", str(150 * 1024))
    try:
        worker.wait_ready(30)
        first = basic.pid.delay().get(timeout=20)
        assert basic.pid.delay().get(timeout=20) == first  # under the limit: no recycling
        assert basic.hoard.delay("hoard", 200).get(timeout=30) == first
        wait_for(lambda: "starting a fresh one" in worker.log(), 30)
        assert basic.pid.delay().get(timeout=30) != first
    finally:
        assert worker.stop() == 0
    assert "is over max memory per child 153600 KiB; draining" in worker.log()


@pytest.mark.parametrize("pool", ["solo", "threads"])
def test_an_embedded_worker_retires_after_its_task_and_gives_the_rest_back(pool: str) -> None:
    app = Conveyor("recycle", broker=f"memory://recycle-{pool}", worker_max_tasks_per_child=3)
    try:
        add = app.task(name="add")(lambda x, y: x + y)
        results = [add.delay(i, 0) for i in range(10)]
        worker = Worker(app, pool=pool, concurrency=1, install_signal_handlers=False)
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the worker did not retire"
        assert worker.recycled == "ran 3 task(s) (max tasks per child 3)"
        assert [r.state for r in results].count(states.SUCCESS) == 3  # none started after the 3rd
        assert app.broker.queue_stats()["default"].ready == 7  # prefetched ones went back at once
    finally:
        app.close()


def test_a_bad_worker_pool_setting_names_what_to_use_instead() -> None:
    app = Conveyor("pools", broker="memory://pools", worker_pool="gevent")
    try:
        with pytest.raises(ValueError, match="use -P threads -c 100, or async def tasks on -P asyncio"):
            Worker(app)
    finally:
        app.close()


def test_a_memory_limit_below_the_start_size_warns_at_start(caplog: pytest.LogCaptureFixture) -> None:
    app = Conveyor(
        "small", broker="memory://small", worker_max_memory_per_child=1, worker_max_tasks_per_child=1
    )
    try:
        app.task(name="noop")(lambda: None).delay()
        worker = Worker(app, pool="solo", install_signal_handlers=False)
        with caplog.at_level("WARNING", logger="conveyor.worker"):
            worker.run()  # retires after its one task
        assert "max memory per child 1 KiB is below this worker's resident memory at start" in caplog.text
        assert worker.recycled is not None
    finally:
        app.close()


def test_a_recycled_worker_counts_each_task_it_gives_back_once(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    """Ten tiny tasks, two per process: each retiring process gives back what is left (8, then
    6, 4, 2). A fetch under way as it stopped leased again the tasks just released, and the
    log line counted them twice (16, 12, 8, 4)."""
    results = [basic.add.delay(i, 1) for i in range(10)]
    flags = ("-c", "1", "--burst", "--max-tasks-per-child", "2")
    worker = WorkerProcess(process_broker_url, tmp_path, *flags)
    assert worker.proc.wait(timeout=120) == 0
    worker.stop()
    assert sorted(r.get(timeout=5) for r in results) == list(range(1, 11))
    given = [int(n) for n in re.findall(r"gave (\d+) prefetched task\(s\) back", worker.log())]
    assert given, worker.log()
    left = 8
    for n in given:  # a later process may find fewer than were left (the broker's order)
        assert n <= left, given
        left -= 2


def test_a_retiring_worker_killed_while_it_drains_is_not_replaced_twice_and_its_task_runs_again(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    """SIGKILL (the OOM killer) of a worker that is letting a long task finish while its
    replacement already runs: the supervisor says so and starts no third process for that
    index; the task's lease expires and the replacement runs it, once more, to the end."""
    flags = ("-c", "2", "--max-tasks-per-child", "2", "--shutdown-timeout", "1")
    worker = WorkerProcess(process_broker_url, tmp_path, *flags).wait_ready()
    try:
        slow = basic.record.delay("slow", "long", 25.0)
        wait_for(lambda: lines(tmp_path / "slow"), 30)
        retiring = int(lines(tmp_path / "slow")[0].split()[2])
        shorts = [basic.record.delay("short", str(i)) for i in range(2)]
        assert sorted(r.get(timeout=30) for r in shorts) == ["0", "1"]  # its share: it retires
        wait_for(lambda: "retiring: starting a fresh one beside it" in worker.log(), 30)
        assert len(lines(tmp_path / "slow")) == 1  # still running: killed in the middle of it
        os.kill(retiring, signal.SIGKILL)
        wait_for(lambda: "ended with exit code -9 while retiring" in worker.log(), 30)
        assert slow.get(timeout=60) == "long"
    finally:
        assert worker.stop() == 0
    runs = [line.split() for line in lines(tmp_path / "slow")]
    assert [kind for kind, _, _ in runs] == ["start", "start", "done"], runs
    assert runs[1][2] != str(retiring)  # run again by the replacement
    log = worker.log()
    assert len(re.findall(r"started worker process 1 \(pid", log)) == 2, log  # the first and one replacement
    assert "restarting" not in log


def test_a_burst_worker_recycling_on_its_task_count_runs_every_task_once_and_exits(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    """``--burst`` with ``--max-tasks-per-child``: each retired process is replaced when it
    exits (not beside it: a fresh one finding the queue empty would end the command before a
    retiring one's last tasks were done), and the command ends, with 0, once the queue is."""
    results = [basic.record.delay("runs", str(i)) for i in range(30)]
    worker = WorkerProcess(process_broker_url, tmp_path, "-c", "2", "--max-tasks-per-child", "5", "--burst")
    assert worker.proc.wait(timeout=120) == 0, worker.log()
    worker.stop()
    assert sorted(int(r.get(timeout=10)) for r in results) == list(range(30))
    starts = Counter(line.split()[1] for line in lines(tmp_path / "runs") if line.startswith("start"))
    assert sorted(starts, key=int) == [str(i) for i in range(30)] and set(starts.values()) == {1}
    pids = {line.split()[2] for line in lines(tmp_path / "runs")}
    assert len(pids) >= 5, pids  # 30 tasks, at most 5 (and one the other slot ran) per process
    assert "starting a fresh one beside it" not in worker.log()


def test_a_control_shutdown_of_a_retiring_worker_also_stops_its_replacement(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    """``control shutdown`` reaching a process that is letting a long task finish, after its
    replacement started beside it (sent to it alone here; sent to the node, it can miss a
    replacement that has not yet said it is alive): the operator asked for one process fewer,
    so the replacement stops too and the command ends, instead of one process running on. The
    replacement here has begun to retire as well (its own long task, its share of short ones):
    it is not replaced either."""
    flags = ("-c", "2", "--max-tasks-per-child", "2", "--shutdown-timeout", "1")
    worker = WorkerProcess(process_broker_url, tmp_path, *flags).wait_ready()
    code = None
    try:
        retiring, names = _retiring_beside_its_replacement(app, tmp_path, 120.0)
        basic.record.delay("slow", "two", 120.0)  # the replacement runs it: the other one drains
        wait_for(lambda: len(lines(tmp_path / "slow")) == 2, 30)
        more = [basic.record.delay("short", str(i)) for i in range(2, 4)]
        assert sorted(r.get(timeout=30) for r in more) == ["2", "3"]  # the replacement retires too
        wait_for(lambda: worker.log().count("); draining so that a fresh process takes over") == 2, 30)
        [reply] = app.admin.control.shutdown(destination=[names[retiring]], timeout=10)
        assert reply.ok, reply
        code = worker.proc.wait(timeout=60)
    finally:
        worker.stop()
    log = worker.log()
    assert code == 0, log
    assert f"worker process 1 (pid {retiring}) shut down by control; not replaced" in log
    assert "replaced one shut down by control; stopping it" in log
    assert log.count("retiring: starting a fresh one beside it") == 1, log


def test_an_operator_sigterm_does_not_cut_short_a_replacement_already_draining_after_a_control_shutdown(
    app: Conveyor, process_broker_url: str, tmp_path: Path
) -> None:
    """The replacement of a process shut down by control drains on the supervisor's SIGTERM; the
    operator's own first SIGTERM to the command afterwards must not reach it as a second signal
    (a worker's "again to stop at once"): it keeps its grace period and exits cleanly."""
    flags = ("-c", "2", "--max-tasks-per-child", "2", "--shutdown-timeout", "8")
    worker = WorkerProcess(process_broker_url, tmp_path, *flags).wait_ready()
    code = None
    try:
        retiring, names = _retiring_beside_its_replacement(app, tmp_path, 15.0)
        basic.record.delay("slow", "two", 120.0)  # the replacement runs it
        wait_for(lambda: len(lines(tmp_path / "slow")) == 2, 30)
        [reply] = app.admin.control.shutdown(destination=[names[retiring]], timeout=10)
        assert reply.ok, reply
        wait_for(lambda: "replaced one shut down by control; stopping it" in worker.log(), 60)
        time.sleep(1.5)  # past the worker's same-signal window: a second signal would count as one
        worker.signal(signal.SIGTERM)
        code = worker.proc.wait(timeout=60)
    finally:
        worker.stop()
    log = worker.log()
    assert code == 0, log
    assert "second signal, stopping at once" not in log
    assert "giving them back to the queue" in log  # the replacement's grace ran out, as asked


def _retiring_beside_its_replacement(
    app: Conveyor, tmp_path: Path, seconds: float
) -> tuple[int, dict[int, str]]:
    """(A worker run with ``-c 2 --max-tasks-per-child 2``) A task of ``seconds`` in one slot,
    then two short ones: the process retires while the long one runs, and its replacement
    starts beside it. The retiring process's pid, and each live process's unique name by pid,
    once both heartbeat."""
    basic.record.delay("slow", "one", seconds)
    wait_for(lambda: lines(tmp_path / "slow"), 30)
    retiring = int(lines(tmp_path / "slow")[0].split()[2])
    shorts = [basic.record.delay("short", str(i)) for i in range(2)]
    assert sorted(r.get(timeout=30) for r in shorts) == ["0", "1"]  # its share: it retires
    names: dict[int, str] = {}

    def both_up() -> bool:
        names.update({w.pid: w.name for w in app.admin.workers()})
        return len(names) == 2

    wait_for(both_up, 30)
    return retiring, names

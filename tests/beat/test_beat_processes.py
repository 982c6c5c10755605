"""Real scheduler processes: failover under SIGKILL, worker --beat, restarts.

Each test counts enqueues per slot two ways: the schedulers' own "sent" log lines (a slot sent
twice by two schedulers would show up there even though the broker's idempotent enqueue would
hide it) and the broker (every slot on the grid exists as a job).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from conveyor import Conveyor
from conveyor.beat.claims import slot_task_id

from ..procs import WorkerProcess, wait_for
from ..redis_server import RedisServer
from .helpers import duplicates
from .procs import APP, BeatProcess, sent_slots

TAKEOVER_BOUND = 5.0  # the guarantee: a follower takes over within 5 s


@pytest.fixture
def observer(process_broker_url: str) -> Iterator[Conveyor]:
    app = Conveyor("observer", broker=process_broker_url)
    try:
        yield app
    finally:
        app.close()


def leader_pid(observer: Conveyor) -> int | None:
    leader = observer.schedules.leader()
    return int(leader["pid"]) if leader else None


def kill_leader(observer: Conveyor, procs: list[BeatProcess] | list[WorkerProcess]) -> float:
    """SIGKILL the process holding the lease; return how long until another one held it."""
    wait_for(lambda: leader_pid(observer) in {p.pid for p in procs if p.proc.poll() is None}, 10)
    victim_pid = leader_pid(observer)
    victim = next(p for p in procs if p.pid == victim_pid)
    killed_at = time.monotonic()
    victim.kill()
    wait_for(lambda: leader_pid(observer) not in (None, victim_pid), 15, interval=0.05)
    return time.monotonic() - killed_at


def assert_every_slot_once(observer: Conveyor, sent: list[float], step: float, entry: str) -> None:
    """No slot sent twice; every slot on the grid between the first and the last exists."""
    assert sent, f"{entry}: nothing was sent"
    assert not duplicates(sent), f"{entry}: sent twice: {duplicates(sent)}"
    grid = [sent[0] + step * k for k in range(round((sent[-1] - sent[0]) / step) + 1)]
    # A slot missing from the logs was enqueued by a scheduler killed before it could log it.
    unlogged = sorted(set(grid) - set(sent))
    lost = [s for s in unlogged if observer.broker.status(slot_task_id(entry, s)) is None]
    assert not lost, f"{entry}: slots never enqueued: {lost}"
    state = observer.schedules.get(entry)
    assert state is not None and state.total_runs >= len(grid)


def test_three_schedulers_send_each_slot_once_while_the_leader_is_killed_twice(
    process_broker_url: str, tmp_path: Path, observer: Conveyor
) -> None:
    procs = [BeatProcess(process_broker_url, tmp_path, f"beat{i}") for i in range(3)]
    everyone = list(procs)
    try:
        for p in procs:
            p.wait_ready()
        takeovers = []
        for _ in range(2):
            time.sleep(4)
            takeovers.append(kill_leader(observer, procs))
            replacement = BeatProcess(process_broker_url, tmp_path, f"beat{len(everyone)}")
            procs.append(replacement)
            everyone.append(replacement)
        time.sleep(4)
    finally:
        for p in everyone:
            if p.proc.poll() is None:
                p.stop()
    logs = [p.log() for p in everyone]
    sent = sent_slots(logs)
    assert all(t < TAKEOVER_BOUND for t in takeovers), takeovers
    assert_every_slot_once(observer, sent["tick"], 1.0, "tick")  # catch_up="all": no gaps at all
    assert len(sent["tick"]) >= 12
    poll = sent["poll"]  # catch_up="once": a failover's missed slots collapse into one run
    assert not duplicates(poll)
    assert max(b - a for a, b in itertools.pairwise(poll)) <= 2.0 + TAKEOVER_BOUND
    assert "weekly-vacuum" not in sent and "scrape" not in sent  # crontabs wait for their match


def test_workers_with_embedded_schedulers_are_just_as_safe(
    process_broker_url: str, tmp_path: Path, observer: Conveyor
) -> None:
    args = ("--beat", "-Q", "default,polling")
    workers = [WorkerProcess(process_broker_url, tmp_path, *args, app=APP, name=f"w{i}") for i in range(2)]
    everyone = list(workers)
    try:
        for w in workers:
            w.wait_ready()
        time.sleep(4)
        assert kill_leader(observer, workers) < TAKEOVER_BOUND
        workers.append(WorkerProcess(process_broker_url, tmp_path, *args, app=APP, name="w2").wait_ready())
        everyone.append(workers[-1])
        time.sleep(4)
    finally:
        for w in everyone:
            if w.proc.poll() is None:
                w.stop()
    sent = sent_slots([w.log() for w in everyone])
    assert_every_slot_once(observer, sent["tick"], 1.0, "tick")
    # The workers ran them: each run recorded its task id, which names its slot.
    ran = {_slot_of(line) for line in (tmp_path / "tick").read_text().split()}
    settled = {s for s in sent["tick"] if s < max(sent["tick"]) - 5}  # the last few may be queued
    assert settled <= ran, f"sent but never run: {sorted(settled - ran)}"


def test_a_restarted_scheduler_continues_from_its_stored_cursor(
    process_broker_url: str, tmp_path: Path, observer: Conveyor
) -> None:
    first = BeatProcess(process_broker_url, tmp_path, "first").wait_ready()
    time.sleep(3)
    assert first.stop() == 0
    stopped = time.time()
    time.sleep(3)
    second = BeatProcess(process_broker_url, tmp_path, "second").wait_ready()
    time.sleep(3)
    second.stop()
    sent = sent_slots([first.log(), second.log()])
    assert_every_slot_once(observer, sent["tick"], 1.0, "tick")  # "all": the downtime's slots too
    poll_after = [s for s in sent["poll"] if s > stopped]
    assert not duplicates(sent["poll"]) and poll_after  # "once": one catch-up run, then on time
    assert "declared entries created" not in second.log()  # everything came from the broker


def _slot_of(task_id: str) -> float:
    stamp = task_id.split(":", 2)[2]  # beat:<entry>:<slot, ISO 8601 UTC>
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def test_a_scheduler_whose_redis_lost_its_data_writes_its_declared_entries_again(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """A Redis restarted without persistence comes back empty: the entries, the lease and the
    claims are gone. The scheduler loses the lease, takes it again, writes its declared
    entries again (create-only) and goes on sending, instead of leading an empty schedule."""
    url = redis_server.url
    client = redis.Redis.from_url(url)
    client.flushall()
    beat = BeatProcess(url, tmp_path, "lonely").wait_ready()
    try:
        wait_for(lambda: sent_slots([beat.log()]).get("tick"), 15)
        client.flushall()
        lost = time.time()
        wait_for(lambda: any(s > lost for s in sent_slots([beat.log()]).get("tick", [])), 30)
        assert "declared entries missing from the broker were written again" in beat.log()
    finally:
        beat.stop()
        client.close()


def test_a_worker_with_beat_recycling_on_its_task_count_keeps_sending_every_slot_once(
    process_broker_url: str, tmp_path: Path, observer: Conveyor
) -> None:
    """``worker --beat --max-tasks-per-child 3``: the process holding the scheduler retires
    every few ticks and is replaced; each replacement takes the schedule over again where the
    last left it: no slot sent twice, none lost, and the ticks keep coming."""
    args = ("--beat", "-Q", "default,polling", "--max-tasks-per-child", "3")
    worker = WorkerProcess(process_broker_url, tmp_path, *args, app=APP, name="recycling").wait_ready()
    try:
        wait_for(lambda: worker.log().count("retired; starting a fresh one") >= 2, 60)
        retired = time.time()
        wait_for(lambda: any(s > retired + 1 for s in sent_slots([worker.log()]).get("tick", [])), 30)
    finally:
        assert worker.stop() == 0
    sent = sent_slots([worker.log()])
    assert_every_slot_once(observer, sent["tick"], 1.0, "tick")
    ran = {_slot_of(line) for line in (tmp_path / "tick").read_text().split()}
    settled = {s for s in sent["tick"] if s < max(sent["tick"]) - 5}
    assert settled <= ran, f"sent but never run: {sorted(settled - ran)}"

"""The admin API on every broker: queues, pauses, workers, running tasks, dead letters."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from conveyor import states
from conveyor.admin import Admin, UnknownQueue, UnknownWorker, deadletters
from conveyor.brokers import Broker, JobSpec, Outcome, broker_from_url
from conveyor.message import Envelope, encode_envelope

from ..procs import wait_for


@pytest.fixture
def broker(broker_url: str) -> Iterator[Broker]:
    b = broker_from_url(broker_url)
    yield b
    b.close()


@pytest.fixture
def admin(broker: Broker) -> Admin:
    return Admin(broker, lease_timeout=3.0)


def job(
    job_id: str, queue: str = "q", task: str = "proj.add", priority: int = 5, created: float = 0.0
) -> JobSpec:
    env = Envelope(id=job_id, task=task, args=[1, 2], queue=queue, priority=priority, created=created)
    return JobSpec(job_id, queue, encode_envelope(env), priority)


def beat(broker: Broker, owner: str, **info: object) -> None:
    broker.heartbeat(owner, 30, json.dumps({"hostname": owner.partition("/")[0], **info}).encode())


def test_queues_show_counts_per_priority_latency_and_pauses(broker: Broker, admin: Admin) -> None:
    broker.enqueue([job("a", created=time.time() - 30), job("b", priority=9), job("c", queue="other")])
    admin.pause("other")
    other, q = admin.queues()
    assert (q.name, q.ready, q.ready_by_priority, q.paused) == ("q", 2, {5: 1, 9: 1}, False)
    assert 29 < q.latency < 120
    assert other.paused and other.paused_at is not None and other.ready == 1
    assert admin.queue("q").ready == 2


def test_a_queue_is_known_while_paused_or_consumed_by_a_live_worker(broker: Broker, admin: Admin) -> None:
    with pytest.raises(UnknownQueue, match="unknown queue 'emails'"):
        admin.queue("emails")
    with pytest.raises(UnknownQueue):
        admin.pause("emails")
    assert admin.pause("emails", allow_unknown=True)
    assert not admin.pause("emails")  # already paused
    assert admin.queue("emails").paused
    assert admin.resume("emails")
    with pytest.raises(UnknownQueue):
        admin.queue("emails")
    beat(broker, "w1@h/1-a", queues=["emails"])
    assert admin.queue("emails").ready == 0
    assert not admin.resume("emails")  # known, not paused
    with pytest.raises(UnknownQueue):
        admin.resume("nothing")


def test_purge_deletes_waiting_tasks_of_known_queues_only(broker: Broker, admin: Admin) -> None:
    broker.enqueue([job("a"), job("b")])
    with pytest.raises(UnknownQueue):
        admin.purge(["q", "nope"])
    assert admin.purge(["q"]) == 2


def test_workers_report_their_heartbeat_info_and_running_tasks(broker: Broker, admin: Admin) -> None:
    active = [
        {
            "id": "t1",
            "task": "proj.add",
            "queue": "q",
            "args": "1, 2",
            "started": time.time() - 5,
            "attempt": 2,
        }
    ]
    beat(broker, "w1@h/1-a", host="h", pid=42, queues=["q"], processed=7, memory_rss=1024, active=active)
    [w] = admin.workers()
    assert (w.hostname, w.host, w.pid, w.queues, w.processed, w.memory_rss, w.gone) == (
        "w1@h",
        "h",
        42,
        ("q",),
        7,
        1024,
        False,
    )
    [t] = admin.running()
    assert (t.id, t.name, t.args, t.worker, t.queue, t.attempt) == ("t1", "proj.add", "1, 2", "w1@h", "q", 2)
    assert admin.queue("q").running == 1
    assert 4 < t.runtime < 60
    assert admin.worker("w1@h").name == "w1@h/1-a" == admin.worker("w1@h/1-a").name
    with pytest.raises(UnknownWorker, match="unknown worker 'w9@h'"):
        admin.worker("w9@h")


def test_a_silent_worker_is_gone_after_a_lease_and_hidden_by_default(broker: Broker) -> None:
    admin = Admin(broker, lease_timeout=0.2)
    beat(broker, "w1@h/1-a")
    wait_for(lambda: not admin.workers(), 10)
    [w] = admin.workers(include_gone=True)
    assert w.gone and admin.worker("w1@h").gone


def _dead(broker: Broker, *specs: JobSpec) -> None:
    broker.enqueue(list(specs))
    for d in broker.fetch(["q", "other"], "w1", len(specs), 30, 0):
        broker.settle([Outcome("dead", d.id, d.delivery, states.FAILURE, None, reason=f"boom {d.id}")], 60)


def test_dead_letters_page_and_filter(broker: Broker, admin: Admin, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deadletters, "SCAN_PAGE", 2)  # several broker pages per call
    _dead(broker, *[job(f"a{i}") for i in range(5)], *[job(f"b{i}", task="proj.mail") for i in range(3)])
    first = admin.dead_letters(limit=3)
    assert len(first.items) == 3 and first.total == 8 and first.next_offset == 3
    assert first.items[0].task in ("proj.add", "proj.mail") and first.items[0].args == "1, 2"
    assert admin.dead_letters(offset=6, limit=3).next_offset is None
    mails: list[str] = []
    page = admin.dead_letters(limit=2, task="proj.m*")
    while True:
        mails += [d.id for d in page.items]
        if page.next_offset is None:
            break
        page = admin.dead_letters(offset=page.next_offset, limit=2, task="proj.m*")
    assert sorted(mails) == ["b0", "b1", "b2"]
    assert [d.id for d in admin.dead_letters(search="BOOM A3").items] == ["a3"]


def test_dead_letters_retried_and_deleted_by_filter_in_pages(
    broker: Broker, admin: Admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deadletters, "SCAN_PAGE", 2)
    _dead(broker, *[job(f"a{i}") for i in range(5)], *[job(f"b{i}", task="proj.mail") for i in range(3)])
    assert admin.retry_dead_matching(task="proj.mail") == 3
    assert broker.queue_stats()["q"].ready == 3
    assert admin.delete_dead(["a0"]) == 1 and admin.retry_dead(["a1"]) == 1
    assert admin.delete_dead_matching() == 3
    assert admin.dead_letters().total == 0

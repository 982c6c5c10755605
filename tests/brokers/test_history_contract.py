"""The task history's broker contract: every broker records history in ``settle``, lists it
newest first with filters, keeps failed attempts, counts per minute, and trims."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from conveyor import states
from conveyor.brokers import Broker, HistoryEntry, HistoryQuery, JobSpec, Outcome, broker_from_url
from conveyor.brokers.history import minute
from conveyor.taskrecord import (
    LOST,
    Attempt,
    TaskRecord,
    decode_attempt,
    decode_record,
    encode_attempt,
    encode_record,
)


@pytest.fixture
def broker(broker_url: str) -> Iterator[Broker]:
    b = broker_from_url(broker_url)
    yield b
    b.close()


def entry(task_id: str, state: str, at: float, name: str = "proj.add", args: str = "1, 2") -> HistoryEntry:
    record = encode_record(TaskRecord(name, "q", state, args=args, finished=at))
    attempt = (
        None if state == states.SUCCESS else encode_attempt(Attempt(1, state, at, error=f"E: {task_id}"))
    )
    return HistoryEntry(name, "q", state, at, 0.5, args, record, attempt, retries=1 if task_id == "r" else 0)


def run(
    broker: Broker, task_id: str, kind: str, state: str, at: float, due: float = 3600, **fields: object
) -> None:
    """Enqueue, lease and settle one job with a history entry (a retry is due in ``due`` s)."""
    broker.enqueue([JobSpec(task_id, "q", b'{"id":"x","task":"t"}')])
    d = broker.fetch(["q"], "w1", 1, 30, 0)[0]
    hist = entry(task_id, state, at, **fields)  # type: ignore[arg-type]
    payload = b'{"result":3}' if state == states.SUCCESS else b'{"exc_type":"E"}'
    outcome_state = state if kind == "ack" else None
    broker.settle(
        [Outcome(kind, task_id, d.delivery, outcome_state, payload, eta=time.time() + due, history=hist)], 60
    )  # type: ignore[arg-type]


def ids(broker: Broker, **query: object) -> list[str]:
    return [row.id for row in broker.history(HistoryQuery(**query))]  # type: ignore[arg-type]


def test_history_is_recorded_by_settle_and_listed_newest_first_by_state(broker: Broker) -> None:
    now = time.time()
    run(broker, "ok", "ack", states.SUCCESS, now - 30)
    run(broker, "bad", "dead", states.FAILURE, now - 20, args="'needle-77'")
    run(broker, "again", "retry", states.RETRY, now - 10)
    assert ids(broker) == ["again", "bad", "ok"]
    assert ids(broker, state=states.FAILURE) == ["bad"]
    assert ids(broker, state=states.RETRY) == ["again"]
    assert ids(broker, search="NEEDLE-77") == ["bad"]
    assert ids(broker, since=now - 25) == ["again", "bad"]
    assert ids(broker, until=now - 25) == ["ok"]
    assert ids(broker, name="proj.other") == []
    assert ids(broker, queue="q", state=states.SUCCESS) == ["ok"]
    row = broker.history_row("bad")
    assert row is not None and decode_record(row.record).state == states.FAILURE
    assert row.payload == b'{"exc_type":"E"}'
    assert [decode_attempt(a).error for a in row.attempts] == ["E: bad"]  # type: ignore[union-attr]
    assert broker.history_row("unknown") is None


def test_history_pages_with_limit_and_offset(broker: Broker) -> None:
    now = time.time()
    for i in range(5):
        run(broker, f"t{i}", "ack", states.SUCCESS, now + i)
    page1 = [r.id for r in broker.history(HistoryQuery(), limit=2)]
    page2 = [r.id for r in broker.history(HistoryQuery(), limit=2, offset=2)]
    assert page1 == ["t4", "t3"] and page2 == ["t2", "t1"]


def test_a_retried_task_keeps_every_failed_attempt_and_ends_in_one_state(broker: Broker) -> None:
    now = time.time()
    run(broker, "r", "retry", states.RETRY, now - 2, due=0)
    d = broker.fetch(["q"], "w1", 1, 30, 0)[0]
    broker.settle(
        [Outcome("dead", "r", d.delivery, states.FAILURE, b"{}", history=entry("r", states.FAILURE, now))], 60
    )
    row = broker.history_row("r")
    assert row is not None and len(row.attempts) == 2
    assert ids(broker, state=states.RETRY) == [] and ids(broker, state=states.FAILURE) == ["r"]


def test_an_ending_may_bring_several_attempts_and_each_is_kept_apart(broker: Broker) -> None:
    """A run after runs its worker died on brings their LOST attempts with its own, in one
    newline-separated ``attempt``: every broker keeps them as separate attempts, after any
    earlier one."""
    now = time.time()
    run(broker, "r", "retry", states.RETRY, now - 2, due=0)
    d = broker.fetch(["q"], "w1", 1, 30, 0)[0]
    lost = [encode_attempt(Attempt(n, LOST, now - 1, error=f"lost {n}")) for n in (2, 3)]
    failed = encode_attempt(Attempt(4, states.FAILURE, now, error="E: last"))
    hist = entry("r", states.FAILURE, now)._replace(attempt=b"\n".join([*lost, failed]))
    broker.settle([Outcome("dead", "r", d.delivery, states.FAILURE, b"{}", history=hist)], 60)
    row = broker.history_row("r")
    assert row is not None
    errors = [a.error for a in map(decode_attempt, row.attempts) if a is not None]
    assert errors == ["E: r", "lost 2", "lost 3", "E: last"]


def test_a_stale_outcome_records_no_history(broker: Broker) -> None:
    broker.enqueue([JobSpec("s", "q", b"{}")])
    d = broker.fetch(["q"], "w1", 1, 30, 0)[0]
    broker.settle([Outcome("ack", "s", d.delivery + 1, history=entry("s", states.SUCCESS, time.time()))], 60)
    assert broker.history_row("s") is None


def test_counters_add_up_per_task_name_and_minute(broker: Broker) -> None:
    now = time.time()
    run(broker, "a", "ack", states.SUCCESS, now)
    run(broker, "b", "dead", states.FAILURE, now)
    run(broker, "c", "retry", states.RETRY, now)
    run(broker, "d", "ack", states.SUCCESS, now, name="proj.other")
    got = {c.name: c for c in broker.counters(minute(now), minute(now) + 60)}
    add = got["proj.add"]
    assert (add.minute, add.processed, add.failed, add.retried) == (minute(now), 3, 1, 1)
    assert add.runtime == pytest.approx(1.5)
    assert [c.name for c in broker.counters(minute(now), minute(now) + 60, name="proj.other")] == [
        "proj.other"
    ]
    assert broker.counters(minute(now) + 60, minute(now) + 120) == []


def test_trim_drops_expired_records_then_the_oldest_beyond_the_cap(broker: Broker) -> None:
    now = time.time()
    for i in range(6):
        run(broker, f"t{i}", "ack", states.SUCCESS, now - 100 + i)
    assert broker.trim_history(max_records=10, older_than=now - 98) == 2  # t0, t1 expired
    assert broker.trim_history(max_records=2, older_than=0) == 2  # t2, t3 beyond the cap
    assert ids(broker) == ["t5", "t4"]
    assert broker.history_row("t0") is None


def test_pending_lists_waiting_jobs_newest_first_and_delayed_ones_soonest_first(broker: Broker) -> None:
    now = time.time()
    broker.enqueue(
        [JobSpec("w1", "q", b"1"), JobSpec("w2", "other", b"2", priority=9), JobSpec("w3", "q", b"3")]
    )
    broker.enqueue([JobSpec("d1", "q", b"4", eta=now + 200), JobSpec("d2", "other", b"5", eta=now + 100)])
    broker.fetch(["q"], "w1", 1, 30, 0)  # leases w1 (first of q): no longer pending
    assert [j.id for j in broker.pending(delayed=False)] == ["w3", "w2"]
    assert [j.id for j in broker.pending(delayed=False, limit=1, offset=1)] == ["w2"]
    delayed = broker.pending(delayed=True)
    assert [(j.id, j.queue, j.body) for j in delayed] == [("d2", "other", b"5"), ("d1", "q", b"4")]
    assert delayed[0].eta == pytest.approx(now + 100)
    job = broker.pending_job("w2")
    assert job is not None and (job.queue, job.priority, job.eta) == ("other", 9, None)
    assert broker.pending_job("w1") is None and broker.pending_job("nope") is None
    assert broker.pending_job("d1") is not None and broker.pending_job("d1").eta == pytest.approx(now + 200)  # type: ignore[union-attr]


def test_a_requeued_dead_letter_that_succeeds_is_shown_by_id_as_succeeded(broker: Broker) -> None:
    now = time.time()
    run(broker, "x", "dead", states.FAILURE, now - 5)
    assert broker.requeue_dead(["x"]) == 1
    d = broker.fetch(["q"], "w1", 1, 30, 0)[0]
    broker.settle(
        [Outcome("ack", "x", d.delivery, states.SUCCESS, b"{}", history=entry("x", states.SUCCESS, now))], 60
    )
    row = broker.history_row("x")
    assert row is not None and decode_record(row.record).state == states.SUCCESS


def test_record_history_stores_and_counts_endings_no_settle_carries(broker: Broker) -> None:
    now = time.time()
    run(broker, "r", "retry", states.RETRY, now - 10)  # a retrying task, then revoked while delayed
    broker.record_history(
        [
            ("r", entry("r", states.REVOKED, now - 5), b'{"exc_type":"R"}'),
            ("lost", entry("lost", states.FAILURE, now - 1), b'{"exc_type":"L"}'),
        ]
    )
    assert ids(broker) == ["lost", "r"]
    assert ids(broker, state=states.RETRY) == [] and ids(broker, state=states.REVOKED) == ["r"]
    row = broker.history_row("r")
    assert row is not None and decode_record(row.record).state == states.REVOKED
    assert row.payload == b'{"exc_type":"R"}' and len(row.attempts) == 2  # the retry's and the revoke's
    # Summed over minutes: the two runs fall in two minutes when a minute starts between them.
    rows = [c for c in broker.counters(now - 3600, now + 60) if c.name == "proj.add"]
    assert (sum(c.processed for c in rows), sum(c.failed for c in rows)) == (2, 1)  # the retry, the loss
    broker.record_history([])


def test_a_requeued_dead_letter_is_waiting_again_and_its_next_ending_replaces_it(broker: Broker) -> None:
    now = time.time()
    run(broker, "bad", "dead", states.FAILURE, now - 20)
    assert broker.requeue_dead(["bad", "not-a-letter"]) == 1
    row = broker.history_row("bad")
    assert row is not None
    rec = decode_record(row.record)
    assert (rec.state, rec.dead) == (states.PENDING, False) and len(row.attempts) == 1
    assert ids(broker, state=states.FAILURE) == [] and ids(broker) == ["bad"]
    d = broker.fetch(["q"], "w1", 1, 30, 0)[0]
    done = entry("bad", states.SUCCESS, now)
    broker.settle([Outcome("ack", "bad", d.delivery, states.SUCCESS, b'{"result":1}', history=done)], 60)
    assert ids(broker) == ["bad"] and ids(broker, state=states.SUCCESS) == ["bad"]
    row = broker.history_row("bad")
    assert row is not None and decode_record(row.record).state == states.SUCCESS


def test_pending_job_counts_the_deaths_of_a_job_requeued_after_its_worker_died(broker: Broker) -> None:
    """Its worker died running it and another requeued it: waiting again, with one run lost."""
    broker.enqueue([JobSpec("p", "q", b'{"id":"p","task":"t"}', 7)])
    assert broker.pending_job("p").deaths == 0  # type: ignore[union-attr]  # never leased yet
    d = broker.fetch(["q"], "w1", 1, 0.05, 0)[0]
    broker.heartbeat("w1", 0.05, b"{}", [("p", d.delivery)])  # it was running
    time.sleep(0.1)
    assert broker.reclaim(5, 60).requeued == ["p"]
    pending = broker.pending_job("p")
    assert pending is not None and (pending.deaths, pending.retries, pending.eta) == (1, 0, None)
    assert [(j.id, j.deaths) for j in broker.pending(False)] == [("p", 1)]  # listed so too


def test_held_job_names_the_lease_owner_of_a_leased_job_only(broker: Broker) -> None:
    broker.enqueue([JobSpec("h", "q", b'{"id":"h","task":"t"}', 7)])
    assert broker.held_job("h") is None  # waiting: pending_job's, not this
    d = broker.fetch(["q"], "w1@vm/123-abc", 1, 30, 0)[0]
    held = broker.held_job("h")
    assert held is not None and broker.pending_job("h") is None
    assert (held.queue, held.body, held.owner, held.deaths, held.priority) == (
        "q",
        b'{"id":"h","task":"t"}',
        "w1@vm/123-abc",
        0,
        7,
    )
    broker.settle([Outcome("ack", "h", d.delivery)], 60)
    assert broker.held_job("h") is None and broker.held_job("never") is None

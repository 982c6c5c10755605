"""The broker contract's workflow part (``WorkflowStore`` and ``Outcome.then``): every broker
(memory, SQLite, Redis) must pass every test here."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from conveyor import states
from conveyor.brokers import (
    Broker,
    Continuation,
    GroupJoin,
    JobSpec,
    LostContinuation,
    Outcome,
    broker_from_url,
)

from ..redis_ha import ClusterTopology


@pytest.fixture
def broker(broker_url: str) -> Iterator[Broker]:
    b = broker_from_url(broker_url)
    yield b
    b.close()


def job(job_id: str, queue: str = "q") -> JobSpec:
    return JobSpec(job_id, queue, f'{{"id":"{job_id}","task":"t"}}'.encode())


def lease_all(broker: Broker, owner: str = "w1", queue: str = "q") -> dict[str, int]:
    return {d.id: d.delivery for d in broker.fetch([queue], owner, 1000, 30, 0)}


def ack(task_id: str, delivery: int, then: Continuation | None, state: str = states.SUCCESS) -> Outcome:
    return Outcome("ack", task_id, delivery, state, b'{"result":"%s"}' % task_id.encode(), then=then)


def join(group: str, index: int, state: str = states.SUCCESS, **kw: object) -> Continuation:
    payload = b'{"result":%d}' % index
    return Continuation(join=GroupJoin(group, index, state, payload, **kw))  # type: ignore[arg-type]


def test_an_ack_enqueues_its_continuation_jobs_and_stores_its_results_atomically(broker: Broker) -> None:
    broker.enqueue([job("step1")])
    d = lease_all(broker)
    then = Continuation(enqueue=(job("step2"),), results=(("step3", states.FAILURE, b'{"exc_type":"X"}'),))
    broker.settle([ack("step1", d["step1"], then)], 60)
    assert list(lease_all(broker)) == ["step2"]
    assert broker.status("step3").state == states.FAILURE


def test_a_stale_outcome_applies_no_continuation(broker: Broker) -> None:
    broker.enqueue([job("a")])
    d = lease_all(broker)
    broker.settle([ack("a", d["a"] + 1, Continuation(enqueue=(job("next"),)))], 60)
    broker.settle([ack("a", d["a"], None)], 60)
    assert lease_all(broker) == {}


def test_a_dead_outcome_applies_its_continuation(broker: Broker) -> None:
    broker.enqueue([job("a")])
    d = lease_all(broker)
    then = Continuation(enqueue=(job("errback"),))
    broker.settle([Outcome("dead", "a", d["a"], states.FAILURE, b"{}", reason="failed", then=then)], 60)
    assert list(lease_all(broker)) == ["errback"]


def test_start_group_is_idempotent_and_refuses_an_empty_group(broker: Broker) -> None:
    assert broker.start_group("g", 3, job("body"), 60) is True
    assert broker.start_group("g", 5, None, 60) is False
    state = broker.group_state("g")
    assert state is not None and state.size == 3 and state.joined == 0 and state.body_id == "body"
    assert broker.group_state("unknown") is None
    with pytest.raises(ValueError, match="at least one member"):
        broker.start_group("empty", 0, None, 60)


def test_the_last_join_enqueues_the_body_once_with_results_in_order(broker: Broker) -> None:
    broker.start_group("g", 3, job("body"), 60)
    broker.enqueue([job(f"h{i}") for i in range(3)])
    d = lease_all(broker)
    broker.settle([ack("h2", d["h2"], join("g", 2)), ack("h0", d["h0"], join("g", 0))], 60)
    assert lease_all(broker) == {}  # not complete yet
    broker.settle([ack("h1", d["h1"], join("g", 1))], 60)
    assert list(lease_all(broker)) == ["body"]
    state = broker.group_state("g")
    assert state is not None and state.joined == 3 and not state.failed
    assert [s[1] for s in state.slots if s] == [b'{"result":0}', b'{"result":1}', b'{"result":2}']


def test_a_member_joining_twice_is_counted_once(broker: Broker) -> None:
    broker.start_group("g", 2, job("body"), 60)
    broker.enqueue([job("h0"), job("h0-again")])
    d = lease_all(broker)
    broker.settle([ack("h0", d["h0"], join("g", 0)), ack("h0-again", d["h0-again"], join("g", 0))], 60)
    state = broker.group_state("g")
    assert state is not None and state.joined == 1
    assert lease_all(broker) == {}


def test_two_settles_racing_for_the_last_members_enqueue_the_body_once(broker: Broker) -> None:
    for round_ in range(5):
        group = f"g{round_}"
        broker.start_group(group, 2, job(f"body{round_}"), 60)
        broker.enqueue([job(f"{group}-0"), job(f"{group}-1")])
        d = lease_all(broker)
        barrier = threading.Barrier(2)

        def settle(
            i: int, group: str = group, d: dict[str, int] = d, barrier: threading.Barrier = barrier
        ) -> None:
            barrier.wait()
            broker.settle([ack(f"{group}-{i}", d[f"{group}-{i}"], join(group, i))], 60)

        threads = [threading.Thread(target=settle, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert list(lease_all(broker)) == [f"body{round_}"]


def test_a_failed_member_stops_the_body_and_runs_the_failure_continuation_once(broker: Broker) -> None:
    broker.start_group("g", 3, job("body"), 60)
    broker.enqueue([job(f"h{i}") for i in range(3)])
    d = lease_all(broker)
    failure_results = (("", states.FAILURE, b"{}"), ("later", states.FAILURE, b"{}"))  # "": the body
    on_failure = {"on_failure": (job("errback"),), "failure_results": failure_results}
    broker.settle([ack("h1", d["h1"], join("g", 1, states.FAILURE, **on_failure), states.FAILURE)], 60)
    broker.settle([ack("h0", d["h0"], join("g", 0, states.FAILURE, **on_failure), states.FAILURE)], 60)
    broker.settle([ack("h2", d["h2"], join("g", 2))], 60)
    assert list(lease_all(broker)) == ["errback"]  # once, and no body
    assert broker.status("body").state == states.FAILURE
    assert broker.status("later").state == states.FAILURE
    state = broker.group_state("g")
    assert state is not None and state.failed and state.joined == 3


def test_a_join_to_an_unknown_group_or_slot_changes_nothing(broker: Broker) -> None:
    broker.start_group("g", 1, job("body"), 60)
    broker.enqueue([job("a"), job("b")])
    d = lease_all(broker)
    broker.settle([ack("a", d["a"], join("nope", 0)), ack("b", d["b"], join("g", 5))], 60)
    assert broker.status("a").state == states.SUCCESS
    state = broker.group_state("g")
    assert state is not None and state.joined == 0
    assert lease_all(broker) == {}


def _lost_member(group: str, calls: list[tuple[str, str]]) -> LostContinuation:
    """A ``lost`` hook that makes each dropped job join ``group`` as failed (its index from its
    id: "h1" -> 1), enqueueing an errback and failing the body on the group's first failure."""

    def lost(task_id: str, body: bytes, state: str, payload: bytes) -> Continuation | None:
        calls.append((task_id, state))
        assert body.startswith(b'{"id":"%s"' % task_id.encode())
        failure = (("", states.FAILURE, b'{"exc_type":"ChordError"}'),)
        return join(group, int(task_id[1:]), state, on_failure=(job("errback"),), failure_results=failure)

    return lost


def test_a_header_task_revoked_while_queued_fails_its_group_in_the_revoke(broker: Broker) -> None:
    broker.start_group("g", 3, job("body"), 60)
    broker.enqueue([job(f"h{i}") for i in range(3)])
    calls: list[tuple[str, str]] = []
    broker.revoke(["h1", "h2"], False, 60, _lost_member("g", calls))
    assert calls == [("h1", states.REVOKED), ("h2", states.REVOKED)]
    assert broker.status("body").state == states.FAILURE  # at once: no worker involved
    state = broker.group_state("g")
    assert state is not None and state.failed and state.joined == 2
    assert state.slots[1] is not None and state.slots[1][0] == states.REVOKED
    d = lease_all(broker)
    assert sorted(d) == ["errback", "h0"]  # the errback once, for two lost members
    broker.settle([ack("h0", d["h0"], join("g", 0))], 60)
    assert lease_all(broker) == {}  # no body
    # Revoked again (it is gone now): the hook is not asked, nothing counts twice.
    broker.revoke(["h1"], False, 60, _lost_member("g", calls))
    assert len(calls) == 2


def test_a_workflow_step_revoked_without_its_continuation_is_handed_out_flagged_revoked(
    broker: Broker,
) -> None:
    step = JobSpec("step", "q", b'{"id":"step","task":"t","workflow":{"parent":"p"}}')
    broker.enqueue([step, job("plain")])
    broker.revoke(["step", "plain"], False, 60)  # no ``lost`` hook: the step stays queued
    assert broker.status("plain").state == states.REVOKED
    later = JobSpec("later", "q", b'{"id":"later","task":"t","workflow":{"parent":"step"}}')
    broker.revoke(["later", "plain-later"], False, 60)  # revoked before they are enqueued
    broker.enqueue([later, job("plain-later")])
    got = {d.id: d.revoked for d in broker.fetch(["q"], "w1", 10, 30, 0)}
    # Every revoked job not dropped by the revoke itself is handed out flagged: a plain one for
    # its worker to settle as REVOKED with its history record (it used to be dropped here).
    assert got == {"step": True, "later": True, "plain-later": True}


def test_a_leased_job_is_not_dropped_by_a_revoke_and_its_workflow_is_left_to_its_worker(
    broker: Broker,
) -> None:
    broker.start_group("g", 1, job("body"), 60)
    broker.enqueue([job("h0")])
    d = lease_all(broker)
    calls: list[tuple[str, str]] = []
    broker.revoke(["h0"], False, 60, _lost_member("g", calls))
    state = broker.group_state("g")
    assert state is not None and state.joined == 0 and not state.failed
    broker.settle([ack("h0", d["h0"], join("g", 0))], 60)
    assert list(lease_all(broker)) == ["body"]


def test_a_header_task_dead_lettered_by_reclaim_fails_its_group_in_the_reclaim(broker: Broker) -> None:
    broker.start_group("g", 2, job("body"), 60)
    broker.enqueue([job("h0"), job("h1")])
    d = {x.id: x.delivery for x in broker.fetch(["q"], "gone", 10, 0.05, 0)}
    broker.settle([Outcome("running", "h1", d["h1"]), Outcome("start", "h0", d["h0"])], 60)
    time.sleep(0.2)  # both leases expire: their worker died
    calls: list[tuple[str, str]] = []
    report = broker.reclaim(1, 60, _lost_member("g", calls))
    assert sorted(report.dead) == ["h0", "h1"] and report.requeued == []
    assert sorted(calls) == [("h0", states.FAILURE), ("h1", states.FAILURE)]
    assert broker.status("body").state == states.FAILURE
    state = broker.group_state("g")
    assert state is not None and state.failed and state.joined == 2
    assert list(lease_all(broker)) == ["errback"]


def test_an_at_most_once_header_task_given_back_by_reconcile_fails_its_group_in_the_reclaim(
    broker: Broker,
) -> None:
    """An ack lost in a broker crash: the worker that started h0 at-most-once no longer holds
    it. Reconcile must not run it again, and the reclaim that dead-letters it applies its
    continuation, as for a worker's death (not a dead letter that leaves the chord waiting)."""
    broker.start_group("g", 2, job("body"), 60)
    broker.enqueue([job("h0"), job("h1")])
    d = {x.id: x.delivery for x in broker.fetch(["q"], "w1", 1, 30, 0)}
    broker.settle([Outcome("start", "h0", d["h0"])], 60)
    assert broker.reconcile("w1", []) == ["h0"]
    calls: list[tuple[str, str]] = []
    report = broker.reclaim(5, 60, _lost_member("g", calls))
    assert report.dead == ["h0"] and report.requeued == []
    assert calls == [("h0", states.FAILURE)]
    assert "at-most-once" in broker.dead_letters()[0].reason
    assert broker.status("body").state == states.FAILURE
    state = broker.group_state("g")
    assert state is not None and state.failed and state.joined == 1
    assert sorted(lease_all(broker)) == ["errback", "h1"]  # h0 never runs again


def test_a_dead_letter_requeued_after_its_group_failed_is_not_counted_again(broker: Broker) -> None:
    broker.start_group("g", 2, job("body"), 60)
    broker.enqueue([job("h0"), job("h1")])
    d = {x.id: x.delivery for x in broker.fetch(["q"], "gone", 10, 0.05, 0)}
    broker.settle([Outcome("start", "h1", d["h1"])], 60)
    time.sleep(0.2)
    broker.reclaim(1, 60, _lost_member("g", []))  # h1 dead-lettered: the group failed
    assert broker.requeue_dead(["h1"]) == 1  # `conveyor dead retry`
    leased = lease_all(broker)
    assert sorted(leased) == ["errback", "h0", "h1"]
    broker.settle([ack("h1", leased["h1"], join("g", 1)), ack("h0", leased["h0"], join("g", 0))], 60)
    state = broker.group_state("g")
    assert state is not None and state.failed and state.joined == 2  # h1's slot was taken: once
    assert state.slots[1] is not None and state.slots[1][0] == states.FAILURE
    assert lease_all(broker) == {}  # the chord stays failed: no body
    assert broker.status("body").state == states.FAILURE


def test_a_died_outcome_that_dead_letters_applies_its_continuation(broker: Broker) -> None:
    broker.enqueue([job("a"), job("b")])
    d = lease_all(broker)
    then = Continuation(enqueue=(job("errback"),))
    broker.settle([Outcome("died", "b", d["b"], then=then)], 60)  # back to its queue: nothing yet
    broker.settle([Outcome("died", "a", d["a"], payload=b"{}", reason="died", then=then)], 60)
    assert list(lease_all(broker)) == ["b", "errback"]


def test_a_chord_completes_on_a_redis_cluster(cluster_topology: ClusterTopology) -> None:
    """Every key of a group shares the app's hash tag: the settle script that joins it and
    enqueues the body stays legal on a cluster (one slot)."""
    b = broker_from_url(cluster_topology.url(f"prefix=wf-{uuid.uuid4().hex[:6]}"))
    try:
        assert b.start_group("g", 2, job("body"), 60)
        b.enqueue([job("h0"), job("h1")])
        d = lease_all(b)
        b.settle([ack("h0", d["h0"], join("g", 0)), ack("h1", d["h1"], join("g", 1))], 60)
        assert list(lease_all(b)) == ["body"]
        state = b.group_state("g")
        assert state is not None and state.joined == 2 and [s[0] for s in state.slots if s] == ["SUCCESS"] * 2
    finally:
        b.close()

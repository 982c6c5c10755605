"""The broker contract: every broker (memory, SQLite, Redis) must pass every test here."""

from __future__ import annotations

import threading
import time

import pytest

from conveyor import states
from conveyor.brokers import Broker, JobSpec, Outcome, broker_from_url
from conveyor.message import decode_result


@pytest.fixture
def broker(broker_url: str) -> Broker:
    b = broker_from_url(broker_url)
    yield b
    b.close()


def job(job_id: str, queue: str = "q", priority: int = 5, eta: float | None = None) -> JobSpec:
    return JobSpec(job_id, queue, f'{{"id":"{job_id}","task":"t"}}'.encode(), priority, eta)


def fetch_ids(
    broker: Broker,
    queues: list[str] | None = None,
    owner: str = "w1",
    limit: int = 10,
    lease: float = 30.0,
    wait: float = 0.0,
) -> list[str]:
    return [d.id for d in broker.fetch(queues or ["q"], owner, limit, lease, wait)]


def test_enqueue_is_idempotent_by_id(broker: Broker) -> None:
    assert broker.enqueue([job("a"), job("b")]) == [True, True]
    assert broker.enqueue([job("a")]) == [False]
    assert sorted(fetch_ids(broker)) == ["a", "b"]


def test_enqueue_of_a_finished_id_is_ignored(broker: Broker) -> None:
    broker.enqueue([job("a")])
    d = broker.fetch(["q"], "w1", 1, 30, 0)[0]
    broker.settle([Outcome("ack", "a", d.delivery, states.SUCCESS, b'{"result":1}')], 60)
    assert broker.enqueue([job("a")]) == [False]
    assert fetch_ids(broker) == []


def test_fetch_orders_by_priority_then_fifo(broker: Broker) -> None:
    broker.enqueue(
        [job("low1", priority=1), job("mid1"), job("high", priority=9), job("mid2"), job("low2", priority=1)]
    )
    assert fetch_ids(broker, limit=10) == ["high", "mid1", "mid2", "low1", "low2"]


def test_high_priority_job_is_not_starved_by_an_earlier_low_priority_flood(broker: Broker) -> None:
    broker.enqueue([job(f"flood{i}", priority=0) for i in range(500)])
    broker.enqueue([job("urgent", priority=9)])
    assert fetch_ids(broker, limit=1) == ["urgent"]


def test_fetch_reads_only_the_given_queues(broker: Broker) -> None:
    broker.enqueue([job("a", queue="q1"), job("b", queue="q2"), job("c", queue="q3")])
    assert sorted(fetch_ids(broker, ["q1", "q2"])) == ["a", "b"]


def test_a_leased_job_is_not_handed_to_another_worker(broker: Broker) -> None:
    broker.enqueue([job("a")])
    assert fetch_ids(broker, owner="w1") == ["a"]
    assert fetch_ids(broker, owner="w2") == []


def test_concurrent_fetches_never_lease_a_job_twice(broker: Broker) -> None:
    broker.enqueue([job(f"j{i}") for i in range(200)])
    seen: list[str] = []
    lock = threading.Lock()

    def drain(owner: str) -> None:
        while True:
            ids = fetch_ids(broker, owner=owner, limit=7)
            if not ids:
                return
            with lock:
                seen.extend(ids)

    threads = [threading.Thread(target=drain, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seen) == sorted(f"j{i}" for i in range(200))


def test_delayed_job_is_not_fetched_before_its_eta(broker: Broker) -> None:
    broker.enqueue([job("later", eta=time.time() + 2.0)])  # 2 s: a busy machine's slow call stays inside it
    assert fetch_ids(broker) == []
    assert broker.status("later").state == states.PENDING
    assert fetch_ids(broker, wait=6.0) == ["later"]


def test_fetch_wait_returns_a_job_enqueued_while_waiting(broker: Broker) -> None:
    got: list[str] = []
    t = threading.Thread(target=lambda: got.extend(fetch_ids(broker, wait=5.0)))
    t.start()
    time.sleep(0.2)
    broker.enqueue([job("a")])
    t.join(timeout=10)
    assert got == ["a"]


def test_ack_stores_the_result_and_removes_the_job(broker: Broker) -> None:
    broker.enqueue([job("a")])
    d = broker.fetch(["q"], "w1", 1, 30, 0)[0]
    assert d.delivery >= 1 and d.deaths == 0 and not d.redelivered
    assert broker.status("a").state == states.STARTED
    broker.settle([Outcome("ack", "a", d.delivery, states.SUCCESS, b'{"result":42}')], 60)
    record = broker.status("a")
    assert record.state == states.SUCCESS and decode_result(record.payload).result == 42
    assert sum(s.ready + s.leased + s.delayed for s in broker.queue_stats().values()) == 0


def test_ack_without_state_stores_nothing(broker: Broker) -> None:
    broker.enqueue([job("a")])
    d = broker.fetch(["q"], "w1", 1, 30, 0)[0]
    broker.settle([Outcome("ack", "a", d.delivery)], 60)
    assert broker.status("a") is None


def test_a_stale_settle_is_ignored(broker: Broker) -> None:
    broker.enqueue([job("a")])
    first = broker.fetch(["q"], "w1", 1, 0.05, 0)[0]
    broker.heartbeat("w1", 0.05, b"{}", [("a", first.delivery)])  # it was running
    time.sleep(0.1)
    assert broker.reclaim(5, 60).requeued == ["a"]
    second = broker.fetch(["q"], "w2", 1, 30, 0)[0]
    assert second.delivery > first.delivery and second.deaths == 1 and second.redelivered
    broker.settle([Outcome("ack", "a", first.delivery, states.SUCCESS, b'{"result":"stale"}')], 60)
    assert broker.status("a").state == states.STARTED  # the live lease still owns it
    broker.settle([Outcome("ack", "a", second.delivery, states.SUCCESS, b'{"result":"live"}')], 60)
    assert decode_result(broker.status("a").payload).result == "live"


def test_retry_makes_the_job_wait_for_its_eta_then_run_again(broker: Broker) -> None:
    broker.enqueue([job("a")])
    d = broker.fetch(["q"], "w1", 1, 30, 0)[0]
    broker.settle(
        [
            Outcome(
                "retry",
                "a",
                d.delivery,
                states.RETRY,
                b'{"exc_type":"x.E"}',
                body=b"new",
                eta=time.time() + 2.0,
                retries=1,
            )
        ],
        60,
    )
    record = broker.status("a")
    assert record.state == states.RETRY and record.retries == 1
    assert fetch_ids(broker) == []
    again = broker.fetch(["q"], "w1", 1, 30, 6.0)
    assert [x.body for x in again] == [b"new"]


def test_release_puts_the_job_back_at_once(broker: Broker) -> None:
    broker.enqueue([job("a")])
    d = broker.fetch(["q"], "w1", 1, 30, 0)[0]
    broker.settle([Outcome("release", "a", d.delivery)], 60)
    assert fetch_ids(broker, owner="w2") == ["a"]


def test_dead_outcome_moves_the_job_to_dead_letters_with_a_failure(broker: Broker) -> None:
    broker.enqueue([job("a")])
    d = broker.fetch(["q"], "w1", 1, 30, 0)[0]
    broker.settle(
        [Outcome("dead", "a", d.delivery, states.FAILURE, b'{"exc_type":"x.E"}', reason="boom")], 60
    )
    assert broker.status("a").state == states.FAILURE
    letters = broker.dead_letters()
    assert [(x.id, x.queue, x.reason) for x in letters] == [("a", "q", "boom")]
    assert broker.requeue_dead(["a"]) == 1
    assert broker.dead_letters() == []
    assert broker.status("a").state == states.PENDING
    assert fetch_ids(broker) == ["a"]


def test_expired_lease_is_reclaimed_then_dead_lettered_after_max_deaths(broker: Broker) -> None:
    broker.enqueue([job("a")])
    for death in range(1, 4):
        d = broker.fetch(["q"], f"w{death}", 1, 0.01, 0)[0]
        assert d.deaths == death - 1
        broker.settle([Outcome("running", "a", d.delivery)], 60)
        time.sleep(0.05)
        report = broker.reclaim(3, 60)
        if death < 3:
            assert report.requeued == ["a"]
        else:
            assert report.dead == ["a"]
    assert broker.status("a").state == states.FAILURE
    assert "worker lost 3 times" in broker.dead_letters()[0].reason


def test_heartbeat_keeps_a_lease_alive(broker: Broker) -> None:
    broker.enqueue([job("a")])
    broker.fetch(["q"], "w1", 1, 2.0, 0)
    for _ in range(4):  # 2.4 s in all: past the 2 s lease unless the heartbeats renew it
        time.sleep(0.6)
        broker.heartbeat("w1", 2.0, b"{}")
        assert broker.reclaim(5, 60).requeued == []
    assert [w.name for w in broker.workers()] == ["w1"]
    broker.unregister_worker("w1")
    assert broker.workers() == []


def test_started_at_most_once_job_is_dead_lettered_not_rerun_when_its_worker_dies(broker: Broker) -> None:
    broker.enqueue([job("a")])
    d = broker.fetch(["q"], "w1", 1, 0.01, 0)[0]
    broker.settle([Outcome("start", "a", d.delivery)], 60)
    time.sleep(0.05)
    assert broker.reclaim(5, 60).dead == ["a"]
    assert "at-most-once" in broker.dead_letters()[0].reason
    assert fetch_ids(broker) == []


def test_revoke_removes_a_waiting_job_and_records_revoked(broker: Broker) -> None:
    broker.enqueue([job("a"), job("b", eta=time.time() + 60)])
    broker.revoke(["a", "b"], False, 60)
    assert broker.status("a").state == states.REVOKED
    assert broker.status("b").state == states.REVOKED
    assert fetch_ids(broker) == []


def test_revoke_of_a_leased_job_is_reported_to_its_worker(broker: Broker) -> None:
    broker.enqueue([job("a"), job("b")])
    fetch_ids(broker, owner="w1")
    broker.revoke(["a"], True, 60)
    assert broker.heartbeat("w1", 30, b"{}") == {"a": True}
    assert broker.heartbeat("w2", 30, b"{}") == {}


def test_revoke_before_enqueue_is_honoured_at_fetch(broker: Broker) -> None:
    """Handed out flagged, for its worker to settle as REVOKED (with its history), never run."""
    broker.revoke(["a"], False, 60)
    broker.enqueue([job("a"), job("b")])
    got = broker.fetch(["q"], "w1", 10, 30, 0)
    assert sorted((d.id, d.revoked) for d in got) == [("a", True), ("b", False)]
    [a] = [d for d in got if d.id == "a"]
    broker.settle([Outcome("ack", "a", a.delivery, states.REVOKED, b'{"exc_message":"revoked"}')], 60)
    assert broker.status("a").state == states.REVOKED


def test_a_job_revoked_while_held_then_requeued_comes_back_flagged_revoked(broker: Broker) -> None:
    """Its worker died (or gave it back) after the revoke: the next fetch flags it, so that a
    worker settles it as REVOKED with a history record, rather than the broker dropping it."""
    broker.enqueue([job("a")])
    first = broker.fetch(["q"], "w1", 1, 0.05, 0)[0]
    broker.heartbeat("w1", 0.05, b"{}", [("a", first.delivery)])  # it was running
    broker.revoke(["a"], False, 60)
    assert broker.status("a").state != states.REVOKED  # its worker holds it: its worker says
    time.sleep(0.1)
    assert broker.reclaim(5, 60).requeued == ["a"]
    [again] = broker.fetch(["q"], "w2", 1, 30, 0)
    assert (again.id, again.revoked, again.deaths) == ("a", True, 1)


def test_unknown_id_has_no_status(broker: Broker) -> None:
    assert broker.status("nobody-enqueued-this") is None


def test_wait_returns_when_the_result_arrives(broker: Broker) -> None:
    broker.enqueue([job("a")])
    d = broker.fetch(["q"], "w1", 1, 30, 0)[0]

    def finish() -> None:
        time.sleep(0.2)
        broker.settle([Outcome("ack", "a", d.delivery, states.SUCCESS, b'{"result":7}')], 60)

    settler = threading.Thread(target=finish)
    settler.start()
    record = broker.wait("a", 10)
    # Joined before the broker fixture closes: the settle's reply may still be on its way when
    # wait() already sees the result, and a thread outliving its test fails in the next one.
    settler.join(timeout=30)
    assert record is not None and record.state == states.SUCCESS


def test_wait_times_out_with_the_current_state(broker: Broker) -> None:
    broker.enqueue([job("a")])
    record = broker.wait("a", 0.2)
    assert record is not None and record.state == states.PENDING


def test_queue_stats_and_purge(broker: Broker) -> None:
    broker.enqueue([job("a"), job("b"), job("c", eta=time.time() + 60), job("d", queue="other")])
    fetch_ids(broker, limit=1)
    stats = broker.queue_stats()
    assert (stats["q"].ready, stats["q"].delayed, stats["q"].leased) == (1, 1, 1)
    assert broker.purge(["q"]) == 2  # the leased one stays
    stats = broker.queue_stats()
    assert (stats["q"].ready, stats["q"].delayed, stats["q"].leased) == (0, 0, 1)
    assert stats["other"].ready == 1


def test_forget_deletes_a_result(broker: Broker) -> None:
    broker.enqueue([job("a")])
    d = broker.fetch(["q"], "w1", 1, 30, 0)[0]
    broker.settle([Outcome("ack", "a", d.delivery, states.SUCCESS, b'{"result":1}')], 60)
    broker.forget("a")
    assert broker.status("a") is None


def test_results_expire(broker: Broker) -> None:
    broker.enqueue([job("a")])
    d = broker.fetch(["q"], "w1", 1, 30, 0)[0]
    broker.settle([Outcome("ack", "a", d.delivery, states.SUCCESS, b'{"result":1}')], 1.0)
    assert broker.status("a") is not None
    time.sleep(1.2)
    broker.cleanup(60)
    assert broker.status("a") is None


def test_bring_forward_makes_only_delayed_jobs_ready_now(broker: Broker) -> None:
    far = time.time() + 3600
    broker.enqueue(
        [job("later", eta=far), job("also", priority=7, eta=far), job("stays", eta=far), job("ready")]
    )
    held = broker.fetch(["q"], "w1", 1, 30, 0)  # "ready": leased, not delayed
    assert [d.id for d in held] == ["ready"]
    # Leased, unknown and already-ready ids are skipped; each delayed one moves once.
    assert broker.bring_forward(["later", "also", "ready", "nope", "later"]) == 2
    assert broker.bring_forward(["later"]) == 0
    got = broker.fetch(["q"], "w1", 10, 30, 0)
    assert [d.id for d in got] == ["also", "later"]  # by priority, as any ready jobs
    assert broker.queue_stats()["q"].delayed == 1  # "stays" still waits for its eta


def test_purge_dead(broker: Broker) -> None:
    broker.enqueue([job("a")])
    d = broker.fetch(["q"], "w1", 1, 30, 0)[0]
    broker.settle([Outcome("dead", "a", d.delivery, states.FAILURE, None, reason="x")], 60)
    assert broker.purge_dead() == 1
    assert broker.dead_letters() == []


# -- coordination primitives ------------------------------------------------------------------
def test_kv_put_only_if_absent_and_expiry(broker: Broker) -> None:
    assert broker.kv_put("lock:a", b"t1", 2.0, only_if_absent=True)
    assert not broker.kv_put("lock:a", b"t2", 2.0, only_if_absent=True)
    entry = broker.kv_get("lock:a")
    assert entry is not None and entry.value == b"t1" and entry.expires_at is not None
    time.sleep(2.1)
    assert broker.kv_get("lock:a") is None
    assert broker.kv_put("lock:a", b"t2", None, only_if_absent=True)
    assert broker.kv_get("lock:a").expires_at is None


def test_kv_compare_and_set(broker: Broker) -> None:
    assert broker.kv_compare_and_set("k", None, b"v1", 10)
    assert not broker.kv_compare_and_set("k", None, b"v2", 10)
    assert not broker.kv_compare_and_set("k", b"other", None)
    assert broker.kv_compare_and_set("k", b"v1", b"v2", 10)
    assert broker.kv_get("k").value == b"v2"
    assert broker.kv_compare_and_set("k", b"v2", None)
    assert broker.kv_get("k") is None


def test_kv_scan_and_incr(broker: Broker) -> None:
    broker.kv_put("lock:a", b"1")
    broker.kv_put("lock:b", b"2", 10)
    broker.kv_put("lockx", b"3")
    broker.kv_put("other:a", b"4")
    assert sorted(broker.kv_scan("lock:")) == ["lock:a", "lock:b"]
    assert broker.kv_scan("lock:")["lock:b"].value == b"2"
    assert [broker.kv_incr("fence:a") for _ in range(3)] == [1, 2, 3]
    assert broker.kv_incr("fence:a", 10) == 13


def test_kv_incr_restarts_after_expiry_and_keeps_an_existing_expiry(broker: Broker) -> None:
    broker.kv_put("fence:b", b"41", 2.0)
    assert broker.kv_incr("fence:b") == 42
    assert broker.kv_get("fence:b").expires_at is not None
    time.sleep(2.1)
    assert broker.kv_incr("fence:b") == 1
    assert broker.kv_get("fence:b").expires_at is None


def test_a_requeued_dead_letter_keeps_its_priority(broker: Broker) -> None:
    broker.enqueue([job("a", priority=8), job("b", priority=6)])
    d = broker.fetch(["q"], "w1", 1, 30, 0)[0]
    assert d.id == "a"
    broker.settle([Outcome("dead", "a", d.delivery, states.FAILURE, None, reason="x")], 60)
    assert broker.requeue_dead(["a"]) == 1
    assert fetch_ids(broker, limit=1) == ["a"]


def test_a_released_job_goes_ahead_of_newer_ones(broker: Broker) -> None:
    broker.enqueue([job("old")])
    d = broker.fetch(["q"], "w1", 1, 30, 0)[0]
    broker.enqueue([job("new")])
    broker.settle([Outcome("release", "old", d.delivery)], 60)
    assert fetch_ids(broker, limit=2) == ["old", "new"]


def test_enqueue_of_an_id_whose_result_expired_is_accepted(broker: Broker) -> None:
    broker.enqueue([job("a")])
    d = broker.fetch(["q"], "w1", 1, 30, 0)[0]
    broker.settle([Outcome("ack", "a", d.delivery, states.SUCCESS, b'{"result":1}')], 0.3)
    time.sleep(0.4)
    assert broker.enqueue([job("a")]) == [True]


def test_a_retry_without_payload_keeps_the_last_error(broker: Broker) -> None:
    broker.enqueue([job("a")])
    d = broker.fetch(["q"], "w1", 1, 30, 0)[0]
    broker.settle(
        [Outcome("retry", "a", d.delivery, states.RETRY, b'{"exc_type":"x.E"}', eta=time.time(), retries=1)],
        60,
    )
    d = broker.fetch(["q"], "w1", 1, 30, 1.0)[0]
    broker.settle([Outcome("retry", "a", d.delivery, None, None, eta=time.time() + 60, retries=1)], 60)
    record = broker.status("a")
    assert record.state == states.RETRY and record.payload == b'{"exc_type":"x.E"}'


def test_a_dead_workers_prefetched_jobs_go_back_without_a_death(broker: Broker) -> None:
    """Only the job its worker said was running counts a death; the ones it merely held do not."""
    broker.enqueue([job("poison"), job("innocent-1"), job("innocent-2")])
    for _ in range(6):
        held = {d.id: d for d in broker.fetch(["q"], "w1", 10, 0.01, 0)}
        assert set(held) == {"poison", "innocent-1", "innocent-2"}
        broker.heartbeat("w1", 0.01, b"{}", [("poison", held["poison"].delivery)])
        time.sleep(0.05)
        report = broker.reclaim(5, 60)
        if report.dead:
            break
    assert report.dead == ["poison"]
    assert sorted(report.requeued) == ["innocent-1", "innocent-2"]
    assert [x.id for x in broker.dead_letters()] == ["poison"]
    innocents = broker.fetch(["q"], "w2", 10, 30, 0)
    assert sorted((d.id, d.deaths, d.redelivered) for d in innocents) == [
        ("innocent-1", 0, True),
        ("innocent-2", 0, True),
    ]


def test_running_mark_needs_the_current_lease(broker: Broker) -> None:
    broker.enqueue([job("a")])
    first = broker.fetch(["q"], "w1", 1, 0.01, 0)[0]
    time.sleep(0.05)
    broker.reclaim(5, 60)
    second = broker.fetch(["q"], "w2", 1, 0.01, 0)[0]
    broker.heartbeat("w1", 0.01, b"{}", [("a", first.delivery)])  # stale: w1 lost it
    broker.settle([Outcome("running", "a", first.delivery)], 60)  # stale too
    time.sleep(0.05)
    broker.reclaim(5, 60)
    assert broker.fetch(["q"], "w3", 1, 30, 0)[0].deaths == second.deaths == 0


def test_a_retried_job_is_not_a_redelivery(broker: Broker) -> None:
    broker.enqueue([job("a")])
    d = broker.fetch(["q"], "w1", 1, 30, 0)[0]
    broker.settle([Outcome("retry", "a", d.delivery, None, None, eta=time.time(), retries=1)], 60)
    again = broker.fetch(["q"], "w1", 1, 30, 2.0)[0]
    assert again.delivery > d.delivery and not again.redelivered
    broker.settle([Outcome("release", "a", again.delivery)], 60)
    third = broker.fetch(["q"], "w1", 1, 30, 0)[0]
    assert third.delivery > again.delivery and third.redelivered


def test_reconcile_gives_back_leases_the_worker_does_not_hold(broker: Broker) -> None:
    """An ack lost in a broker crash leaves a job leased to a live worker that no longer holds
    it; reconcile returns it to the queue (without a death) and keeps what the worker holds."""
    broker.enqueue([job("held"), job("lost"), job("other")])
    mine = broker.fetch(["q"], "w1", 2, 30, 0)
    assert sorted(d.id for d in mine) == ["held", "lost"]
    fetch_ids(broker, owner="w2")
    assert broker.reconcile("w1", ["held"]) == ["lost"]
    assert broker.reconcile("w1", ["held"]) == []
    again = broker.fetch(["q"], "w3", 10, 30, 0)
    assert [(d.id, d.deaths, d.redelivered) for d in again] == [("lost", 0, True)]
    broker.heartbeat("w1", 0.01, b"{}")
    time.sleep(0.05)
    assert "held" in broker.reclaim(5, 60).requeued  # still w1's lease until then


def test_reconcile_dead_letters_a_started_at_most_once_job(broker: Broker) -> None:
    broker.enqueue([job("a")])
    d = broker.fetch(["q"], "w1", 1, 30, 0)[0]
    broker.settle([Outcome("start", "a", d.delivery)], 60)
    assert broker.reconcile("w1", []) == ["a"]
    assert fetch_ids(broker) == []  # parked, not given back to its queue
    assert broker.reclaim(5, 60).dead == ["a"]  # the next reclaim moves it (with its workflow's end)
    assert "at-most-once" in broker.dead_letters()[0].reason
    assert fetch_ids(broker) == []


# -- operator reads and actions ---------------------------------------------------------------
def test_queue_stats_count_ready_jobs_per_priority_and_name_the_oldest(broker: Broker) -> None:
    broker.enqueue([job("old", priority=1), job("mid", priority=9), job("new", priority=9)])
    broker.enqueue([job("later", eta=time.time() + 60), job("x", queue="other", priority=3)])
    stats = broker.queue_stats()
    assert stats["q"].ready == 3 and stats["q"].ready_by_priority == {1: 1, 9: 2}
    assert stats["q"].oldest_ready == job("old").body  # enqueue order, not fetch order
    assert fetch_ids(broker, limit=3) == ["mid", "new", "old"]
    stats = broker.queue_stats()
    assert stats["q"].ready_by_priority == {} and stats["q"].oldest_ready is None
    assert stats["other"].ready_by_priority == {3: 1} and stats["other"].oldest_ready == job("x").body


def _dead_letter(broker: Broker, *ids: str) -> None:
    broker.enqueue([job(i) for i in ids])
    for d in broker.fetch(["q"], "w1", len(ids), 30, 0):
        broker.settle([Outcome("dead", d.id, d.delivery, states.FAILURE, None, reason="x")], 60)


def test_dead_letters_are_counted_and_deleted_one_by_one(broker: Broker) -> None:
    _dead_letter(broker, "a", "b", "c")
    assert broker.dead_letter_count() == 3
    assert broker.delete_dead(["b", "unknown"]) == 1
    assert broker.dead_letter_count() == 2
    assert sorted(d.id for d in broker.dead_letters()) == ["a", "c"]
    assert broker.delete_dead([]) == 0


def test_died_outcome_requeues_with_one_death_more_then_dead_letters_with_its_reason(
    broker: Broker,
) -> None:
    """A -P processes child died running it: redelivered now with deaths + 1; the death that
    reaches the limit (the worker says so with a reason) moves it to the dead letters."""
    broker.enqueue([job("a")])
    d = broker.fetch(["q"], "w1", 1, 30, 0)[0]
    broker.settle([Outcome("died", "a", d.delivery)], 60)
    again = broker.fetch(["q"], "w2", 1, 30, 0)[0]
    assert (again.id, again.deaths, again.redelivered) == ("a", 1, True)
    broker.settle([Outcome("died", "a", d.delivery)], 60)  # stale delivery: ignored
    assert broker.dead_letters() == []
    payload = b'{"exc_type":"conveyor.exceptions.WorkerLostError"}'
    broker.settle([Outcome("died", "a", again.delivery, payload=payload, reason="child died 2 times")], 60)
    assert broker.status("a").state == states.FAILURE
    letters = broker.dead_letters()
    assert [(x.id, x.reason, x.deaths) for x in letters] == [("a", "child died 2 times", 2)]
    assert fetch_ids(broker, owner="w3") == []

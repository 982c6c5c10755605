"""What the Redis broker promises beyond the shared contract (tests/brokers/test_contract.py).

Every test talks to a real, throwaway redis-server (tests/redis_server.py; never port 6379).
Tests use their own key prefix, so they never see each other's keys.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest
import redis
from redis.crc import key_slot

from conveyor import states
from conveyor.brokers import JobSpec, Outcome, broker_from_url
from conveyor.brokers.redis import RedisBroker
from conveyor.exceptions import BrokerError, ConfigurationError

from ..apps import redis_tasks
from ..procs import ROOT
from ..redis_server import RedisServer, free_port

# Longer than any wake-up needs, shorter than one blocking slice (8 s): a blocked call that
# returns within this was woken, not timed out.
WOKEN_WITHIN = 4.0


def body(job_id: str) -> bytes:
    return f'{{"id":"{job_id}","task":"t"}}'.encode()


def job(job_id: str, queue: str = "q", priority: int = 5, eta: float | None = None) -> JobSpec:
    return JobSpec(job_id, queue, body(job_id), priority, eta)


def wait_for(predicate: Callable[[], object], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout}s")


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_server.url)
    yield c
    c.close()


@pytest.fixture
def broker(redis_server: RedisServer, prefix: str) -> Iterator[RedisBroker]:
    b = RedisBroker(f"{redis_server.url}?prefix={prefix}")
    yield b
    b.close()


def blocked_clients(client: redis.Redis, command: str) -> int:
    """How many connections are blocked in ``command`` (e.g. blpop) right now."""
    return sum(1 for c in client.client_list() if c.get("cmd") == command)


# -- keys ---------------------------------------------------------------------------------------
def test_two_prefixes_on_one_redis_do_not_see_each_others_jobs(redis_server: RedisServer) -> None:
    shop = RedisBroker(f"{redis_server.url}?prefix=shop-{uuid.uuid4().hex[:6]}")
    blog = RedisBroker(f"{redis_server.url}?prefix=blog-{uuid.uuid4().hex[:6]}")
    try:
        assert shop.enqueue([job("a")]) == [True]
        assert blog.enqueue([job("a")]) == [True]  # the same id is a different job in another app
        assert [d.id for d in shop.fetch(["q"], "w1", 10, 30, 0)] == ["a"]
        record = blog.status("a")
        assert record is not None and record.state == states.PENDING
        assert blog.queue_stats()["q"].ready == 1
        shop.enqueue([job("only-shop")])
        assert blog.status("only-shop") is None
        assert blog.purge(["q"]) == 1
        assert shop.queue_stats()["q"].ready == 1
    finally:
        shop.close()
        blog.close()


def test_every_key_of_a_workload_carries_the_prefix_as_its_hash_tag(
    redis_server: RedisServer, prefix: str
) -> None:
    db = redis.Redis.from_url(redis_server.url.rsplit("/", 1)[0] + "/7")  # a database of its own
    db.flushdb()
    broker = RedisBroker(f"{redis_server.url.rsplit('/', 1)[0]}/7?prefix={prefix}")
    broker.enqueue([job("a"), job("b", priority=9), job("c", eta=time.time() + 60), job("d", queue="q2")])
    by_id = {d.id: d for d in broker.fetch(["q", "q2"], "w1", 3, 30, 0)}
    broker.heartbeat("w1", 30, b"{}")
    broker.settle(
        [
            Outcome("ack", "b", by_id["b"].delivery, states.SUCCESS, b'{"result":1}'),
            Outcome("dead", "a", by_id["a"].delivery, states.FAILURE, b"{}", reason="x"),
            Outcome("retry", "d", by_id["d"].delivery, states.RETRY, b"{}", eta=time.time() + 60, retries=1),
        ],
        60,
    )
    broker.revoke(["c", "never-enqueued"], False, 60)
    broker.wait("b", 0.01)
    broker.wait("d", 0.01)
    broker.kv_put("lock:x", b"1", 60)
    broker.kv_incr("fence:x")
    broker.kv_compare_and_set("cas", None, b"1")
    broker.queue_stats()
    broker.cleanup(60)

    keys = list(db.scan_iter(match="*", count=1000))
    assert len(keys) >= 12, keys
    assert [k for k in keys if not k.startswith(f"{{{prefix}}}:".encode())] == []
    # The braces make the prefix the hash tag: in a Redis Cluster all of one app's keys share
    # one slot, so every multi-key script stays legal there.
    assert len({key_slot(k) for k in keys}) == 1
    broker.close()
    db.flushdb()
    db.close()


def test_results_expire_by_redis_ttl(broker: RedisBroker, client: redis.Redis, prefix: str) -> None:
    broker.enqueue([job("a")])
    d = broker.fetch(["q"], "w1", 1, 30, 0)[0]
    broker.settle([Outcome("ack", "a", d.delivery, states.SUCCESS, b'{"result":1}')], 120)
    ttl = client.pttl(f"{{{prefix}}}:result:a")
    assert 0 < ttl <= 120_000


# -- enqueue and fetch --------------------------------------------------------------------------
def test_bulk_enqueue_of_10000_jobs_in_one_call(broker: RedisBroker) -> None:
    jobs = [job(f"j{i:05d}", priority=i % 10) for i in range(10_000)]
    assert broker.enqueue(jobs) == [True] * 10_000
    assert broker.enqueue([*jobs[:5000], job("new")]) == [False] * 5000 + [True]
    assert broker.queue_stats()["q"].ready == 10_001
    fetched = []
    while batch := broker.fetch(["q"], "w1", 1000, 30, 0):
        fetched += [d.id for d in batch]
    # Highest priority first, FIFO within a priority ("new" came last, at priority 5).
    everything = [*jobs, job("new")]
    order = sorted(range(len(everything)), key=lambda i: (-everything[i].priority, i))
    assert fetched == [everything[i].id for i in order]


def test_fifo_within_a_priority_holds_across_queues(broker: RedisBroker) -> None:
    broker.enqueue([job("a", "q1"), job("b", "q2"), job("c", "q1"), job("d", "q2", priority=9)])
    broker.enqueue([job("e", "q2")])
    assert [d.id for d in broker.fetch(["q1", "q2"], "w1", 10, 30, 0)] == ["d", "a", "b", "c", "e"]


def test_released_and_reclaimed_jobs_go_back_to_the_front_in_their_order(broker: RedisBroker) -> None:
    broker.enqueue([job(f"j{i}") for i in range(6)])
    held = broker.fetch(["q"], "w1", 3, 30, 0)  # j0 j1 j2
    broker.settle([Outcome("release", d.id, d.delivery) for d in held], 60)
    assert [d.id for d in broker.fetch(["q"], "w2", 4, 0.01, 0)] == ["j0", "j1", "j2", "j3"]
    time.sleep(0.05)
    assert sorted(broker.reclaim(5, 60).requeued) == ["j0", "j1", "j2", "j3"]
    assert [d.id for d in broker.fetch(["q"], "w3", 10, 30, 0)] == ["j0", "j1", "j2", "j3", "j4", "j5"]


def test_blocking_fetch_wakes_on_enqueue(broker: RedisBroker, client: redis.Redis) -> None:
    got: list[str] = []
    fetcher = threading.Thread(
        target=lambda: got.extend(d.id for d in broker.fetch(["q"], "w1", 10, 30, 60.0)), daemon=True
    )
    fetcher.start()
    wait_for(lambda: blocked_clients(client, "blpop") == 1)
    broker.enqueue([job("a")])
    fetcher.join(timeout=WOKEN_WITHIN)
    assert not fetcher.is_alive(), "the blocked fetch was not woken by the enqueue"
    assert got == ["a"]


def test_one_enqueue_wakes_one_of_many_idle_fetchers(broker: RedisBroker, client: redis.Redis) -> None:
    results: dict[str, list[str]] = {}

    def idle(owner: str) -> None:
        results[owner] = [d.id for d in broker.fetch(["q"], owner, 10, 30, 60.0)]

    fetchers = [threading.Thread(target=idle, args=(f"w{i}",), daemon=True) for i in range(3)]
    for t in fetchers:
        t.start()
    wait_for(lambda: blocked_clients(client, "blpop") == 3)
    broker.enqueue([job("a")])
    wait_for(lambda: len(results) == 1, WOKEN_WITHIN)
    assert list(results.values()) == [["a"]]
    assert blocked_clients(client, "blpop") == 2  # the others sleep on
    broker.enqueue([job("b"), job("c")])
    wait_for(lambda: len(results) == 2, WOKEN_WITHIN)
    broker.enqueue([job("d")])
    wait_for(lambda: len(results) == 3, WOKEN_WITHIN)
    assert sorted(i for ids in results.values() for i in ids) == ["a", "b", "c", "d"]


def test_delayed_job_is_promoted_when_due(broker: RedisBroker) -> None:
    eta = time.time() + 0.5
    broker.enqueue([job("later", eta=eta)])
    assert broker.queue_stats()["q"].delayed == 1
    assert broker.fetch(["q"], "w1", 10, 30, 0) == []
    got = broker.fetch(["q"], "w1", 10, 30, 10.0)
    assert [d.id for d in got] == ["later"]
    assert time.time() >= eta


def test_an_earlier_delayed_job_wakes_a_fetch_blocked_for_a_later_one(
    broker: RedisBroker, client: redis.Redis
) -> None:
    broker.enqueue([job("much-later", eta=time.time() + 3600)])
    got: list[str] = []
    fetcher = threading.Thread(
        target=lambda: got.extend(d.id for d in broker.fetch(["q"], "w1", 10, 30, 60.0)), daemon=True
    )
    fetcher.start()
    wait_for(lambda: blocked_clients(client, "blpop") == 1)
    broker.enqueue([job("soon", eta=time.time() + 0.3)])
    fetcher.join(timeout=WOKEN_WITHIN)
    assert not fetcher.is_alive(), "the fetch kept blocking for the later job"
    assert got == ["soon"]


def test_retried_job_is_promoted_at_its_eta(broker: RedisBroker) -> None:
    broker.enqueue([job("a")])
    d = broker.fetch(["q"], "w1", 1, 30, 0)[0]
    eta = time.time() + 0.3
    broker.settle(
        [Outcome("retry", "a", d.delivery, states.RETRY, b"{}", body=b"v2", eta=eta, retries=1)], 60
    )
    assert broker.queue_stats()["q"].delayed == 1
    again = broker.fetch(["q"], "w1", 1, 30, 10.0)
    assert [(x.id, x.body, x.redelivered) for x in again] == [("a", b"v2", False)]
    assert again[0].delivery > d.delivery
    assert time.time() >= eta


def test_a_fetch_whose_reply_was_lost_is_handed_out_again(
    broker: RedisBroker, client: redis.Redis, prefix: str
) -> None:
    """If the connection drops after the fetch script ran, its jobs stay leased to a live worker
    that never saw them; the next fetch of that worker names the lost call and gets them."""
    broker.enqueue([job("a"), job("b"), job("c")])
    lost = broker.fetch(["q"], "w1", 2, 30, 0)  # pretend this reply never arrived
    raw = client.get(f"{{{prefix}}}:fetched:w1")
    assert isinstance(raw, bytes)
    record = msgspec.msgpack.decode(raw)
    broker._lost["w1"] = [record[0]]  # what fetch records when its call fails mid-way
    again = broker.fetch(["q"], "w1", 10, 30, 0)
    assert [(d.id, d.delivery) for d in again[:2]] == [(d.id, d.delivery) for d in lost]
    assert [d.id for d in again[2:]] == ["c"]
    assert broker.fetch(["q"], "w1", 10, 30, 0) == []  # recovered once, not again


def test_a_revoked_job_handed_out_again_after_a_lost_reply_is_still_flagged_revoked(
    broker: RedisBroker, client: redis.Redis, prefix: str
) -> None:
    """Revoked before it was fetched: the lost fetch flagged it; handed out again unflagged, the
    worker would run it."""
    broker.revoke(["a"], False, 60)
    broker.enqueue([job("a"), job("b")])
    lost = broker.fetch(["q"], "w1", 2, 30, 0)  # pretend this reply never arrived
    assert sorted((d.id, d.revoked) for d in lost) == [("a", True), ("b", False)]
    raw = client.get(f"{{{prefix}}}:fetched:w1")
    assert isinstance(raw, bytes)
    broker._lost["w1"] = [msgspec.msgpack.decode(raw)[0]]
    again = broker.fetch(["q"], "w1", 10, 30, 0)
    assert sorted((d.id, d.revoked) for d in again) == [("a", True), ("b", False)]


# -- waiting for results ------------------------------------------------------------------------
def test_result_wait_wakes_on_settle_from_another_thread(broker: RedisBroker, client: redis.Redis) -> None:
    broker.enqueue([job("a")])
    d = broker.fetch(["q"], "w1", 1, 30, 0)[0]
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(broker.wait("a", 60.0)), daemon=True)
    waiter.start()
    wait_for(lambda: blocked_clients(client, "blpop") == 1)
    broker.settle([Outcome("ack", "a", d.delivery, states.SUCCESS, b'{"result":5}')], 60)
    waiter.join(timeout=WOKEN_WITHIN)
    assert not waiter.is_alive(), "the waiter was not woken by the settle"
    assert got[0] is not None and got[0].state == states.SUCCESS  # type: ignore[attr-defined]


def test_many_concurrent_waiters_are_all_woken(broker: RedisBroker, client: redis.Redis) -> None:
    ids = [f"t{i}" for i in range(12)]
    broker.enqueue([job(i) for i in ids])
    deliveries = broker.fetch(["q"], "w1", 20, 30, 0)
    results: dict[str, str] = {}

    def wait(task_id: str) -> None:
        record = broker.wait(task_id, 60.0)
        results[task_id] = record.state if record else "none"

    # Two waiters on t0, one on each other id.
    waiters = [threading.Thread(target=wait, args=(i,), daemon=True) for i in [ids[0], *ids]]
    for t in waiters:
        t.start()
    wait_for(lambda: blocked_clients(client, "blpop") == len(waiters))
    broker.settle(
        [Outcome("ack", d.id, d.delivery, states.SUCCESS, b'{"result":1}') for d in deliveries[:6]]
        + [Outcome("dead", d.id, d.delivery, states.FAILURE, b"{}", reason="x") for d in deliveries[6:]],
        60,
    )
    deadline = time.monotonic() + WOKEN_WITHIN
    for t in waiters:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in waiters), "some waiters were not woken by the settle"
    assert results == {d.id: states.SUCCESS for d in deliveries[:6]} | {
        d.id: states.FAILURE for d in deliveries[6:]
    }


def test_revoke_wakes_a_waiter(broker: RedisBroker, client: redis.Redis) -> None:
    broker.enqueue([job("a")])
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(broker.wait("a", 60.0)), daemon=True)
    waiter.start()
    wait_for(lambda: blocked_clients(client, "blpop") == 1)
    broker.revoke(["a"], False, 60)
    waiter.join(timeout=WOKEN_WITHIN)
    assert not waiter.is_alive()
    assert got[0] is not None and got[0].state == states.REVOKED  # type: ignore[attr-defined]


# -- URLs and connection faults -----------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "redis://localhost:notaport/0",
        "redis://localhost:6390/zero",
        "redis://localhost:6390/0?prefix=",
        "redis://localhost:6390/0?prefix={x}",
        "redis://localhost:6390/0?prefx=typo",
        "redis://localhost:6390/0?socket_timeout=soon",
        "redis://localhost:6390/0?ssl_ca_certs=/ca.pem",
        "unix://",
    ],
)
def test_a_bad_url_is_a_configuration_error_with_one_line(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        broker_from_url(url)
    assert "\n" not in str(info.value)


def test_the_password_never_appears_in_errors() -> None:
    with pytest.raises(ConfigurationError) as info:
        broker_from_url("redis://:s3cret@localhost:6390/0?bogus=1")
    assert "s3cret" not in str(info.value)
    broker = broker_from_url(f"redis://:s3cret@127.0.0.1:{free_port()}/0")
    with pytest.raises(BrokerError) as down:
        broker.status("a")
    assert "s3cret" not in str(down.value)


def test_unix_socket_and_options_are_accepted(tmp_path: Path) -> None:
    broker = broker_from_url(f"unix://{tmp_path}/redis.sock?db=1&prefix=app&socket_timeout=3")
    assert isinstance(broker, RedisBroker)
    with pytest.raises(BrokerError, match=r"redis\.sock"):
        broker.status("a")


def test_every_method_raises_broker_error_when_redis_is_unreachable() -> None:
    port = free_port()
    broker = RedisBroker(f"redis://127.0.0.1:{port}/0")
    calls: list[Callable[[], object]] = [
        lambda: broker.enqueue([job("a")]),
        lambda: broker.status("a"),
        lambda: broker.wait("a", 0.1),
        lambda: broker.revoke(["a"], False, 60),
        lambda: broker.forget("a"),
        lambda: broker.fetch(["q"], "w1", 10, 30, 0.1),
        lambda: broker.settle([Outcome("ack", "a", 1)], 60),
        lambda: broker.heartbeat("w1", 30, b"{}"),
        lambda: broker.reclaim(5, 60),
        lambda: broker.unregister_worker("w1"),
        broker.queue_stats,
        lambda: broker.purge(["q"]),
        broker.workers,
        broker.dead_letters,
        lambda: broker.requeue_dead(["a"]),
        broker.purge_dead,
        lambda: broker.cleanup(60),
        lambda: broker.kv_get("k"),
        lambda: broker.kv_put("k", b"v"),
        lambda: broker.kv_compare_and_set("k", None, b"v"),
        lambda: broker.kv_scan("k"),
        lambda: broker.kv_incr("k"),
    ]
    for call in calls:
        with pytest.raises(BrokerError, match=f"127.0.0.1:{port}"):
            call()


def test_broker_errors_while_redis_is_down_then_works_again_with_the_data(tmp_path: Path) -> None:
    server = RedisServer(appendonly=True).start()
    try:
        broker = RedisBroker(server.url)
        broker.enqueue([job("a"), job("later", eta=time.time() + 3600)])
        server.stop()
        with pytest.raises(BrokerError):
            broker.fetch(["q"], "w1", 10, 30, 0.5)
        with pytest.raises(BrokerError):
            broker.enqueue([job("b")])
        server.start()  # a new process: its script cache is empty (NOSCRIPT), its connections new
        assert broker.enqueue([job("b")]) == [True]
        assert [d.id for d in broker.fetch(["q"], "w1", 10, 30, 0)] == ["a", "b"]
        assert broker.queue_stats()["q"].delayed == 1
        broker.close()
    finally:
        server.cleanup()


def test_a_fetch_blocked_when_redis_stops_raises_broker_error() -> None:
    server = RedisServer().start()
    try:
        broker = RedisBroker(server.url)
        errors: list[BaseException] = []

        def fetch() -> None:
            try:
                broker.fetch(["q"], "w1", 10, 30, 60.0)
            except BaseException as exc:
                errors.append(exc)

        fetcher = threading.Thread(target=fetch, daemon=True)
        fetcher.start()
        client = redis.Redis.from_url(server.url)
        wait_for(lambda: blocked_clients(client, "blpop") == 1)
        client.close()
        server.stop(kill=True)
        fetcher.join(timeout=WOKEN_WITHIN)
        assert not fetcher.is_alive(), "the fetch hung on a dead server"
        assert len(errors) == 1 and isinstance(errors[0], BrokerError)
    finally:
        server.cleanup()


# -- a real worker across a Redis restart -------------------------------------------------------
class Worker:
    def __init__(self, url: str, workdir: Path) -> None:
        self.log = workdir / "worker.log"
        env = {**os.environ, "CONVEYOR_TEST_DIR": str(workdir), "PYTHONUNBUFFERED": "1"}
        cmd = [sys.executable, "-m", "conveyor.cli.main", "-A", "tests.apps.redis_tasks", "-b", url]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [*cmd, "worker", "-l", "info", "--processes", "1"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def runs(workdir: Path) -> list[tuple[str, int]]:
    path = workdir / "runs"
    if not path.exists():
        return []
    return [(line.split()[0], int(line.split()[1])) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_a_worker_keeps_consuming_after_redis_restarts(tmp_path: Path) -> None:
    server = RedisServer(appendonly=True).start()
    worker: Worker | None = None
    try:
        redis_tasks.app.conf.broker_url = server.url
        before = {f"before-{i}": redis_tasks.record.delay(f"before-{i}", 0.3) for i in range(40)}
        worker = Worker(server.url, tmp_path)
        wait_for(lambda: len(runs(tmp_path)) >= 10, 30)

        server.restart(down_for=0.5)  # mid-stream: tasks running, acks and fetches in flight
        assert len(runs(tmp_path)) < len(before), "the restart came too late to test anything"

        after = {f"after-{i}": redis_tasks.record.delay(f"after-{i}") for i in range(40)}
        results = before | after
        for token, result in results.items():
            assert result.get(timeout=60) == token
        done = runs(tmp_path)
        tokens = [token for token, _ in done]
        assert sorted(set(tokens)) == sorted(results)
        # At-least-once without duplicates: the outage was far shorter than the lease, so no
        # task may have run twice, and certainly never twice under one delivery (lease).
        assert len(set(done)) == len(done)
        assert len(tokens) == len(set(tokens)), f"ran twice: {[t for t in tokens if tokens.count(t) > 1]}"
        assert worker.proc.poll() is None, worker.output()
    finally:
        if worker is not None:
            worker.stop()
        redis_tasks.app.close()
        server.cleanup()

"""The Redis broker on Sentinel and Cluster topologies (tests/redis_ha.py: real redis-server
processes, real sentinels, a real three-primary cluster; never port 6379).

The whole broker contract (test_contract.py) runs here again against each topology: its tests
are imported into this module, whose ``broker_url`` fixture names a topology instead of a
broker kind. Each test gets its own key prefix, so no flush is needed between tests.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from conveyor import states
from conveyor.brokers import JobSpec, Outcome, broker_from_url
from conveyor.exceptions import BrokerError

from ..apps import redis_tasks
from ..procs import WorkerProcess, wait_for
from ..redis_ha import ClusterTopology, SentinelTopology
from ..redis_server import RedisServer
from .test_contract import *  # noqa: F403  (collected again here, against Sentinel and Cluster)


@pytest.fixture(params=["sentinel", "cluster"])
def broker_url(request: pytest.FixtureRequest) -> str:
    prefix = f"prefix=t{uuid.uuid4().hex[:10]}"
    if request.param == "sentinel":
        return str(request.getfixturevalue("sentinel_topology").url(prefix))
    return str(request.getfixturevalue("cluster_topology").url(prefix))


# -- durability and configuration checks ---------------------------------------------------------
def _job(job_id: str) -> JobSpec:
    return JobSpec(job_id, "q", f'{{"id":"{job_id}","task":"t"}}'.encode())


def test_wait_replicas_without_enough_replicas_is_a_clear_error_and_the_write_stays(
    redis_server: RedisServer,
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    broker = broker_from_url(f"{redis_server.url}?prefix={prefix}&wait_replicas=1&wait_timeout_ms=50")
    try:
        with pytest.raises(BrokerError, match=r"only 0 of 1 replica\(s\) confirmed the write within 50 ms"):
            broker.enqueue([_job("a")])
        # Not confirmed, but not lost either: it is on the primary, and a retry is idempotent.
        delivery = broker.fetch(["q"], "w1", 10, 30, 0)[0]
        with pytest.raises(BrokerError, match="replica"):
            broker.settle([Outcome("ack", "a", delivery.delivery, states.SUCCESS, b"1")], 60)
    finally:
        broker.close()


def test_wait_replicas_confirms_only_once_the_replica_has_the_write(
    sentinel_topology: SentinelTopology,
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    broker = broker_from_url(sentinel_topology.url(f"prefix={prefix}&wait_replicas=1"))
    replica = sentinel_topology.client(sentinel_topology.replicas[0].port)
    try:
        for i in range(20):
            assert broker.enqueue([_job(f"j{i}")]) == [True]
            # WAIT returned: the replica has the job the moment the enqueue is confirmed.
            assert replica.hexists(f"{{{prefix}}}:job:meta", f"j{i}")
    finally:
        replica.close()
        broker.close()


def test_celery_sentinel_url_with_master_name_and_passwords_in_transport_options(
    sentinel_topology: SentinelTopology,
) -> None:
    options = {
        "master_name": "mymaster",
        "sentinel_kwargs": {"password": sentinel_topology.sentinel_password},
    }
    broker = broker_from_url(sentinel_topology.celery_url, options)
    try:
        job_id = f"celery-{uuid.uuid4().hex}"
        assert broker.enqueue([_job(job_id)]) == [True]
        assert broker.status(job_id) is not None
        broker.purge(["q"])
    finally:
        broker.close()


def test_a_wrong_sentinel_password_is_a_broker_error_naming_the_master(
    sentinel_topology: SentinelTopology,
) -> None:
    url = sentinel_topology.url().replace("sentinel_password=sentinel-pw", "sentinel_password=wrong")
    broker = broker_from_url(url)
    try:
        with pytest.raises(BrokerError, match="mymaster via sentinels") as info:
            broker.status("a")
        assert "wrong" not in str(info.value) and "redis-pw" not in str(info.value)
    finally:
        broker.close()


def test_an_evicting_maxmemory_policy_is_reported_once_when_a_worker_starts(tmp_path: Path) -> None:
    server = RedisServer(extra=["--maxmemory-policy", "allkeys-lru"]).start()
    worker = WorkerProcess(server.url, tmp_path, app="tests.apps.redis_tasks")
    try:
        worker.wait_ready(60)
        wait_for(lambda: "maxmemory-policy allkeys-lru" in worker.log(), 30)
        line = next(x for x in worker.log().splitlines() if "maxmemory-policy" in x)
        assert "WARNING" in line and "set maxmemory-policy noeviction" in line
    finally:
        worker.stop()
        server.cleanup()
    assert worker.log().count("maxmemory-policy allkeys-lru") == 1  # once, not per call


def test_an_evicting_policy_on_a_cluster_shard_is_reported(
    cluster_topology: ClusterTopology, caplog: pytest.LogCaptureFixture
) -> None:
    clients = [redis.Redis(port=node.port) for node in cluster_topology.nodes]
    try:
        for client in clients:
            client.config_set("maxmemory-policy", "volatile-lru")
        broker = broker_from_url(cluster_topology.url(f"prefix=t{uuid.uuid4().hex[:10]}"))
        with caplog.at_level(logging.WARNING, logger="conveyor.brokers.redis"):
            broker.status("a")
        broker.close()
    finally:
        for client in clients:
            client.config_set("maxmemory-policy", "noeviction")
            client.close()
    assert "maxmemory-policy volatile-lru" in caplog.text


def test_noeviction_is_not_reported(redis_server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    broker = broker_from_url(redis_server.url)
    try:
        with caplog.at_level(logging.WARNING, logger="conveyor.brokers.redis"):
            broker.status("a")
    finally:
        broker.close()
    assert "maxmemory-policy" not in caplog.text


# -- failover under load: a real worker process, a producer thread, SIGKILL of the primary ------
class Producer:
    """Enqueues ``record`` tasks one by one until stopped, noting which enqueues were confirmed
    (``delay`` returned) and which raised (the producer saw an error: not confirmed)."""

    def __init__(self) -> None:
        self.confirmed: dict[str, float] = {}  # token -> when its enqueue was confirmed
        self.refused: list[str] = []
        self.crashed: BaseException | None = None
        self.last_error = ""
        self.lost: list[str] = []  # filled in at the end (lost_tasks)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Producer:
        self._thread.start()
        return self

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            token = f"t{i}"
            i += 1
            try:
                redis_tasks.record.apply_async(args=(token, 0.02), task_id=token)
                self.confirmed[token] = time.monotonic()
            except BrokerError as exc:
                self.refused.append(token)
                self.last_error = str(exc)
            except BaseException as exc:  # a failure of the test itself: shown, not swallowed
                self.crashed = exc
                raise
            self._stop.wait(0.01)

    def confirmed_after(self, moment: float) -> int:
        return sum(1 for when in list(self.confirmed.values()) if when > moment)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def runs(workdir: Path) -> list[tuple[str, int]]:
    path = workdir / "runs"
    if not path.exists():
        return []
    return [(line.split()[0], int(line.split()[1])) for line in path.read_text().splitlines()]


def lost_tasks(producer: Producer) -> list[str]:
    """Confirmed tasks the broker no longer knows (UNKNOWN: neither waiting nor a result), once
    every confirmed task has either finished (SUCCESS) or is known to be gone. A task that ran
    on the old primary but whose enqueue and result the new primary never got is lost too:
    its caller can never learn that it ran."""
    deadline = time.monotonic() + 60
    while True:
        states_now = {t: redis_tasks.app.AsyncResult(t).state for t in producer.confirmed}
        unfinished = [t for t, state in states_now.items() if state not in ("SUCCESS", "UNKNOWN")]
        if not unfinished or time.monotonic() > deadline:
            assert not unfinished, f"confirmed tasks neither finished nor gone: {unfinished[:10]}"
            return sorted(t for t, state in states_now.items() if state == "UNKNOWN")
        time.sleep(0.1)


def _sentinel_failover(tmp_path: Path, query: str) -> tuple[Producer, list[tuple[str, int]], float]:
    """The worst case of asynchronous replication: the replicas fall behind (cut off), the
    primary keeps confirming writes for a moment, then it dies and a replica that never saw
    those writes is promoted. Two replicas, so that after the failover one is left to confirm
    writes (wait_replicas=1)."""
    topology = SentinelTopology(replicas=2)
    waits = "wait_replicas" in query

    def fail_over(producer: Producer) -> None:
        cut_at, offset = time.monotonic(), topology.cut_replication()
        # Writes past the cut exist on the primary only; without WAIT some are confirmed
        # enqueues (with WAIT no enqueue can be confirmed now, so do not wait for one).
        wait_for(
            lambda: topology.primary_offset() > offset and (waits or producer.confirmed_after(cut_at) >= 5),
            30,
        )
        topology.wait_for_failover(topology.kill_primary().port)

    try:
        return _failover_under_load(tmp_path, topology.url(query), fail_over)
    finally:
        topology.cleanup()


def _failover_under_load(
    tmp_path: Path, url: str, fail_over: Callable[[Producer], None]
) -> tuple[Producer, list[tuple[str, int]], float]:
    """Run a worker and a producer on ``url``, let ``fail_over`` SIGKILL the primary mid-stream
    and wait for the promotion, then wait until both resume; returns what was produced and run,
    and the seconds from the promotion to the resumption of both."""
    redis_tasks.app.conf.broker_url = url
    worker = WorkerProcess(url, tmp_path, app="tests.apps.redis_tasks")
    try:
        worker.wait_ready(60)
        with Producer() as producer:
            wait_for(lambda: len(runs(tmp_path)) >= 30, 60)
            killed_at = time.monotonic()
            fail_over(producer)
            promoted_at = time.monotonic()
            ran_before = len(runs(tmp_path))
            # Resumed: the producer has enqueues confirmed again and the worker runs tasks.
            wait_for(lambda: producer.confirmed_after(promoted_at) >= 20 or producer.crashed, 30)
            assert producer.crashed is None, repr(producer.crashed)
            wait_for(lambda: len(runs(tmp_path)) >= ran_before + 20, 30)
            resumed_in = time.monotonic() - promoted_at
        producer.lost = lost_tasks(producer)
        print(f"\n{url}: promoted {promoted_at - killed_at:.1f}s after SIGKILL")
        assert worker.proc.poll() is None, worker.log()
        return producer, runs(tmp_path), resumed_in
    finally:
        worker.stop()
        redis_tasks.app.close()


def test_sentinel_failover_with_wait_replicas_loses_no_confirmed_task_and_resumes_within_10s(
    tmp_path: Path,
) -> None:
    producer, done, resumed_in = _sentinel_failover(tmp_path, "wait_replicas=1&wait_timeout_ms=2000")
    tokens = [token for token, _ in done]
    lost = producer.lost
    assert lost == [], f"confirmed but lost in the failover: {lost}"
    # At-least-once: a task may run again after a failover (its lease was on the old primary),
    # but never twice under the same delivery (lease).
    assert len(set(done)) == len(done), "a task ran twice under one lease"
    assert resumed_in < 10, f"resumed {resumed_in:.1f}s after the promotion"
    print(
        f"confirmed {len(producer.confirmed)}, refused {len(producer.refused)}, "
        f"ran twice {len(tokens) - len(set(tokens))}, resumed in {resumed_in:.1f}s"
    )


def test_sentinel_failover_without_wait_replicas_loses_what_the_replicas_had_not_got(
    tmp_path: Path,
) -> None:
    producer, done, resumed_in = _sentinel_failover(tmp_path, "")
    tokens = [token for token, _ in done]
    lost = producer.lost
    # Asynchronous replication: the enqueues confirmed after the replicas fell behind are gone.
    # This is what wait_replicas prevents (the test above), and shows this test can see a loss.
    assert lost, "expected the enqueues confirmed after the cut to be lost"
    print(
        f"confirmed {len(producer.confirmed)}, lost {len(lost)} {lost[:10]}, "
        f"ran twice {len(tokens) - len(set(tokens))}, resumed in {resumed_in:.1f}s"
    )
    assert len(set(done)) == len(done), "a task ran twice under one lease"
    assert resumed_in < 10, f"resumed {resumed_in:.1f}s after the promotion"


def test_cluster_failover_of_the_apps_shard_resumes_within_10s(tmp_path: Path) -> None:
    topology = ClusterTopology(replicas=1)
    key = "{conveyor}:x"  # the app's shard: every key of the default prefix hashes here

    def fail_over(_producer: Producer) -> None:
        topology.wait_for_failover(key, topology.kill_primary_of(key).port)

    try:
        producer, done, resumed_in = _failover_under_load(tmp_path, topology.url(), fail_over)
    finally:
        topology.cleanup()
    tokens = [token for token, _ in done]
    lost = producer.lost
    print(
        f"confirmed {len(producer.confirmed)}, lost {len(lost)} {lost[:10]}, "
        f"ran twice {len(tokens) - len(set(tokens))}, resumed in {resumed_in:.1f}s"
    )
    assert len(set(done)) == len(done), "a task ran twice under one lease"
    assert resumed_in < 10, f"resumed {resumed_in:.1f}s after the promotion"


def test_a_resharded_apps_slot_is_followed_and_no_job_is_lost(cluster_topology: ClusterTopology) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    broker = broker_from_url(cluster_topology.url(f"prefix={prefix}"))
    try:
        broker.enqueue([_job(f"before{i}") for i in range(50)])
        old = cluster_topology.primary_for(f"{{{prefix}}}:x").port
        new = cluster_topology.move_slot_of(f"{{{prefix}}}:x")
        assert new != old
        # The broker's slot map is stale: its next calls get MOVED and follow it.
        broker.enqueue([_job(f"after{i}") for i in range(50)])
        fetched = [d.id for d in broker.fetch(["q"], "w1", 200, 30, 0)]
        assert sorted(fetched) == sorted([f"before{i}" for i in range(50)] + [f"after{i}" for i in range(50)])
    finally:
        broker.close()


def test_several_apps_spread_over_the_shards_of_a_cluster(cluster_topology: ClusterTopology) -> None:
    prefixes = [f"app{i}" for i in range(12)]
    shards = {cluster_topology.primary_for(f"{{{p}}}:x").port for p in prefixes}
    assert len(shards) == 3, "twelve prefixes should land on all three primaries"
    for p in prefixes:
        broker = broker_from_url(cluster_topology.url(f"prefix={p}-{uuid.uuid4().hex[:6]}"))
        try:
            assert broker.enqueue([_job(p)]) == [True]
            assert [d.id for d in broker.fetch(["q"], "w1", 10, 30, 0)] == [p]
        finally:
            broker.close()

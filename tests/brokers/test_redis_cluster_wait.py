"""``wait_replicas`` on a Redis Cluster: each confirmed write (enqueue, settle) waits, on the
connection that made it, until the app shard's own replicas have it; a shard without enough
replicas is a clear error that loses nothing; a slot being migrated (ASK) or moved (MOVED) is
followed; a primary's failover under load loses no confirmed task. Real processes: clusters of
three primaries with one or two replicas each (tests/redis_ha.py), a worker process."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from conveyor import states
from conveyor.brokers import JobSpec, Outcome, broker_from_url
from conveyor.exceptions import BrokerError

from ..redis_ha import ClusterTopology
from .test_redis_ha import Producer, _failover_under_load


@pytest.fixture(scope="module")
def replicated_cluster() -> Iterator[ClusterTopology]:
    topology = ClusterTopology(replicas=1)
    try:
        yield topology
    finally:
        topology.cleanup()


def _job(job_id: str) -> JobSpec:
    return JobSpec(job_id, "q", f'{{"id":"{job_id}","task":"t"}}'.encode())


def _replica_of(topology: ClusterTopology, key: str) -> redis.Redis:
    """A client reading the replica of ``key``'s primary (READONLY: a cluster replica serves
    reads of its primary's slots instead of answering MOVED)."""
    primary = redis.Redis(port=topology.primary_for(key).port, decode_responses=True)
    try:
        port = int(primary.info("replication")["slave0"]["port"])
    finally:
        primary.close()
    client = redis.Redis(port=port, single_connection_client=True)
    client.execute_command("READONLY")
    return client


def test_cluster_wait_replicas_confirms_only_once_the_shards_replica_has_the_write(
    replicated_cluster: ClusterTopology,
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    broker = broker_from_url(replicated_cluster.url(f"prefix={prefix}&wait_replicas=1&wait_timeout_ms=5000"))
    replica = _replica_of(replicated_cluster, f"{{{prefix}}}:x")
    try:
        for i in range(20):
            assert broker.enqueue([_job(f"j{i}")]) == [True]
            # WAIT returned: the shard's replica has the job the moment the enqueue is confirmed.
            assert replica.hexists(f"{{{prefix}}}:job:meta", f"j{i}")
        deliveries = broker.fetch(["q"], "w1", 20, 30, 0)
        broker.settle([Outcome("ack", d.id, d.delivery, states.SUCCESS, b"42") for d in deliveries], 60)
        # The settle was confirmed: the replica has every result.
        assert all(replica.exists(f"{{{prefix}}}:result:j{i}") for i in range(20))
    finally:
        replica.close()
        broker.close()


def test_cluster_wait_replicas_on_a_shard_without_replicas_is_a_clear_error_and_the_write_stays(
    cluster_topology: ClusterTopology,
) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    broker = broker_from_url(cluster_topology.url(f"prefix={prefix}&wait_replicas=1&wait_timeout_ms=50"))
    try:
        with pytest.raises(BrokerError, match=r"only 0 of 1 replica\(s\) confirmed the write within 50 ms"):
            broker.enqueue([_job("a")])
        assert [d.id for d in broker.fetch(["q"], "w1", 10, 30, 0)] == ["a"]  # on the primary
    finally:
        broker.close()


def test_cluster_wait_replicas_follows_moved_and_loses_nothing(replicated_cluster: ClusterTopology) -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    broker = broker_from_url(replicated_cluster.url(f"prefix={prefix}&wait_replicas=1&wait_timeout_ms=5000"))
    key = f"{{{prefix}}}:x"
    try:
        broker.enqueue([_job(f"before{i}") for i in range(30)])
        old = replicated_cluster.primary_for(key).port
        new = replicated_cluster.move_slot_of(key)
        assert new != old
        # The broker's slot map is stale: the pinned write gets MOVED, re-reads the map, and
        # waits for the new shard's replica.
        broker.enqueue([_job(f"after{i}") for i in range(30)])
        replica = _replica_of(replicated_cluster, key)
        try:
            assert replica.hexists(f"{{{prefix}}}:job:meta", "after29")
        finally:
            replica.close()
        fetched = [d.id for d in broker.fetch(["q"], "w1", 100, 30, 0)]
        assert sorted(fetched) == sorted([f"before{i}" for i in range(30)] + [f"after{i}" for i in range(30)])
    finally:
        broker.close()


def test_cluster_failover_with_wait_replicas_loses_no_confirmed_task_and_resumes_within_10s(
    tmp_path: Path,
) -> None:
    # Two replicas per shard: after the failover one is left to confirm writes.
    topology = ClusterTopology(replicas=2)
    key = "{conveyor}:x"  # the app's shard: every key of the default prefix hashes here

    def fail_over(_producer: Producer) -> None:
        topology.wait_for_failover(key, topology.kill_primary_of(key).port)

    try:
        url = topology.url("wait_replicas=1&wait_timeout_ms=2000")
        producer, done, resumed_in = _failover_under_load(tmp_path, url, fail_over)
    finally:
        topology.cleanup()
    tokens = [token for token, _ in done]
    print(
        f"confirmed {len(producer.confirmed)}, refused {len(producer.refused)}, lost {producer.lost}, "
        f"ran twice {len(tokens) - len(set(tokens))}, resumed in {resumed_in:.1f}s"
    )
    assert producer.lost == [], f"confirmed but lost in the failover: {producer.lost}"
    assert len(set(done)) == len(done), "a task ran twice under one lease"
    assert resumed_in < 10, f"resumed {resumed_in:.1f}s after the promotion"

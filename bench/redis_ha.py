"""Measure what docs/redis.md quotes for Redis high availability, on this machine.

    .venv/bin/python -m bench.redis_ha [--jobs 5000] [--cluster]

Starts its own throwaway servers (tests/redis_ha.py, free ports, never 6379):
1. One shard's capacity: job steps (enqueue, fetch, settle: one script each, batched as a worker
   batches them) per second of the Redis server's own CPU time (INFO cpu), i.e. how far one app
   prefix, which lives on one shard, scales per core of that shard.
2. The cost of ``wait_replicas=1``: one-by-one enqueue and batched drain (fetch 100 + settle
   100) against a primary with one replica, with and without WAIT.
3. With ``--cluster`` instead: the same cost on a Redis Cluster (three primaries, one replica
   each), where WAIT is sent per shard on a connection pinned to the app's primary.
Short on purpose (a few seconds each): the machine is shared.
"""

from __future__ import annotations

import argparse
import time
import uuid

import redis
from tests.redis_ha import ClusterTopology, SentinelTopology

from conveyor import states
from conveyor.brokers import Broker, JobSpec, Outcome, broker_from_url

BATCH = 100


def server_cpu(port: int) -> float:
    client = redis.Redis(port=port)
    try:
        info = client.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
    finally:
        client.close()


def enqueue_one_by_one(broker: Broker, n: int) -> float:
    body = b'{"id":"x","task":"t"}'
    start = time.perf_counter()
    for i in range(n):
        broker.enqueue([JobSpec(f"j{i}", "q", body)])
    return n / (time.perf_counter() - start)


def drain(broker: Broker, n: int) -> float:
    start = time.perf_counter()
    done = 0
    while done < n:
        deliveries = broker.fetch(["q"], "w1", BATCH, 60, 0)
        outcomes = [Outcome("ack", d.id, d.delivery, states.SUCCESS, b"null") for d in deliveries]
        broker.settle(outcomes, 60)
        done += len(deliveries)
    return n / (time.perf_counter() - start)


def enqueue_bulk(broker: Broker, n: int) -> None:
    body = b'{"id":"x","task":"t"}'
    for start in range(0, n, BATCH):
        broker.enqueue([JobSpec(f"j{i}", "q", body) for i in range(start, min(n, start + BATCH))])


def wait_cost(base: str, n: int) -> None:
    """One-by-one enqueue and batched drain, without and with ``wait_replicas=1``."""
    for query in ("", "&wait_replicas=1"):
        broker = broker_from_url(f"{base}?prefix=w{uuid.uuid4().hex[:6]}{query}")
        one_by_one = enqueue_one_by_one(broker, n)
        drained = drain(broker, n)
        label = "wait_replicas=1" if query else "no WAIT        "
        print(
            f"{label}: enqueue one by one {one_by_one:,.0f}/s, "
            f"drain (fetch+settle {BATCH}) {drained:,.0f} jobs/s"
        )
        broker.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--cluster", action="store_true", help="measure wait_replicas on a cluster")
    options = parser.parse_args()
    n = options.jobs
    if options.cluster:
        cluster = ClusterTopology(replicas=1)
        try:
            print("Redis Cluster, 3 primaries with a replica each:")
            wait_cost(cluster.url(), n)
        finally:
            cluster.cleanup()
        return
    topology = SentinelTopology()
    try:
        port = topology.primary.port
        plain = f"redis://127.0.0.1:{port}/0"
        # 1. one shard: batched enqueue, fetch and settle; Redis CPU seconds per job step
        broker = broker_from_url(f"{plain}?prefix=cap{uuid.uuid4().hex[:6]}")
        cpu = server_cpu(port)
        wall = time.perf_counter()
        enqueue_bulk(broker, n * 4)
        drain(broker, n * 4)
        wall = time.perf_counter() - wall
        cpu = server_cpu(port) - cpu
        steps = n * 4 * 3  # every job: enqueued, fetched, settled
        print(
            f"one shard, batches of {BATCH}: {steps / cpu:,.0f} job steps per Redis CPU-second "
            f"({steps / wall:,.0f}/s wall, Redis CPU {cpu / wall:.0%} of one core)"
        )
        broker.close()
        # 2. wait_replicas cost
        wait_cost(plain, n)
    finally:
        topology.cleanup()


if __name__ == "__main__":
    main()

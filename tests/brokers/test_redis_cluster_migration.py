"""A slot migration in progress (ASK and TRYAGAIN replies) while a worker drains and a producer
enqueues: the app's slot is moved to another primary one key at a time, as ``redis-cli
--cluster reshard`` does, slowly enough that the worker's and the producer's scripts meet the
half-moved slot. Every task runs exactly once; none is lost. Real processes: the session's
three-primary cluster (tests/redis_ha.py) and a worker process."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import redis

from conveyor.exceptions import BrokerError

from ..apps import redis_tasks
from ..procs import WorkerProcess, wait_for
from ..redis_ha import ClusterTopology
from .test_redis_ha import runs


def migrate_slowly(topology: ClusterTopology, key: str, pause: float) -> int:
    """Move ``key``'s slot to another primary one key at a time, ``pause`` seconds apart
    (IMPORTING/MIGRATING, MIGRATE per key, then SETSLOT NODE); returns the new owner's port."""
    source = topology.primary_for(key)
    target = next(n for n in topology.nodes if n.proc is not None and n is not source)
    src = redis.Redis(port=source.port, decode_responses=True)
    dst = redis.Redis(port=target.port, decode_responses=True)
    try:
        slot = int(src.cluster("keyslot", key))
        src_id, dst_id = src.cluster("myid"), dst.cluster("myid")
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
        while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 1):
            src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
            time.sleep(pause)
        for node in topology.nodes:
            if node.proc is not None:
                client = redis.Redis(port=node.port)
                client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
                client.close()
    finally:
        src.close()
        dst.close()
    return target.port


def test_a_slot_migrating_while_a_worker_drains_loses_and_doubles_no_task(
    cluster_topology: ClusterTopology, tmp_path: Path
) -> None:
    prefix = f"m{uuid.uuid4().hex[:10]}"
    url = cluster_topology.url(f"prefix={prefix}")
    redis_tasks.app.conf.broker_url = url
    sent: list[str] = []
    refused: list[str] = []
    stop = threading.Event()

    def produce() -> None:
        i = 0
        while not stop.is_set():
            token = f"t{i}"
            try:
                redis_tasks.record.apply_async(args=(token, 0.01), task_id=token)
                sent.append(token)
                i += 1  # a refused enqueue (mid-migration) is sent again under the same id
            except BrokerError:
                refused.append(token)
            stop.wait(0.005)

    worker = WorkerProcess(url, tmp_path, "-c", "4", app="tests.apps.redis_tasks")
    producer = threading.Thread(target=produce, daemon=True)
    try:
        worker.wait_ready(60)
        producer.start()
        wait_for(lambda: len(runs(tmp_path)) >= 50, 60)
        key = f"{{{prefix}}}:x"
        old = cluster_topology.primary_for(key).port
        moved_at = time.monotonic()
        new = migrate_slowly(cluster_topology, key, 0.1)
        migration_took = time.monotonic() - moved_at
        assert new != old
        ran_at_move = len(runs(tmp_path))
        wait_for(lambda: len(runs(tmp_path)) >= ran_at_move + 50, 30)  # drains on the new owner
        stop.set()
        producer.join(30)
        wait_for(lambda: {t for t, _ in runs(tmp_path)} >= set(sent), 60)
        assert worker.proc.poll() is None, worker.log()
    finally:
        stop.set()
        worker.stop()
        redis_tasks.app.close()
    tokens = [t for t, _ in runs(tmp_path)]
    doubled = sorted({t for t in tokens if tokens.count(t) > 1})
    assert not doubled, f"ran twice: {doubled[:10]}"
    assert set(tokens) == set(sent), f"lost: {sorted(set(sent) - set(tokens))[:10]}"
    print(
        f"\n{len(sent)} tasks, {len(refused)} enqueues refused mid-migration and sent again, "
        f"migration took {migration_took:.1f}s"
    )

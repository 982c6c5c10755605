"""Turning what brokers store (heartbeat info JSON, dead-letter bodies, queue stats) into the
admin records. Tolerant on purpose: a worker of an older version, or a malformed message, must
never break a listing."""

from __future__ import annotations

import json
from typing import Any

from ..brokers import DeadLetter, QueueStats, WorkerRecord
from ..message import decode_envelope, describe_message_args
from .records import DeadLetterInfo, QueueInfo, RunningTask, WorkerInfo


def queue_info(
    name: str, stats: QueueStats | None, running: int, paused_at: float | None, now: float
) -> QueueInfo:
    stats = stats or QueueStats()
    return QueueInfo(
        name,
        stats.ready,
        stats.delayed,
        stats.leased,
        running,
        dict(stats.ready_by_priority),
        _latency(stats.oldest_ready, now),
        paused_at is not None,
        paused_at,
    )


def _latency(body: bytes | None, now: float) -> float:
    """Seconds the oldest ready task has waited: since it was enqueued, or since its eta passed."""
    if body is None:
        return 0.0
    try:
        env = decode_envelope(body)
    except Exception:
        return 0.0
    since = max(env.created, env.eta or 0.0)
    return max(0.0, now - since) if since else 0.0


def worker_info(record: WorkerRecord, lease_timeout: float, now: float) -> WorkerInfo:
    try:
        info: dict[str, Any] = json.loads(record.info)
    except ValueError:
        info = {}
    if not isinstance(info, dict):
        info = {}
    hostname = str(info.get("hostname") or record.name.partition("/")[0])
    running = tuple(_running(a, hostname, now) for a in info.get("active", ()) if isinstance(a, dict))
    rss = info.get("memory_rss")
    fetched_at = info.get("fetched_at")
    return WorkerInfo(
        name=record.name,
        hostname=hostname,
        host=str(info.get("host", "")),
        pid=int(info.get("pid", 0)),
        queues=tuple(info.get("queues", ())),
        pool=str(info.get("pool", "")),
        concurrency=int(info.get("concurrency", 0)),
        started=float(info.get("started", 0.0)),
        heartbeat=record.heartbeat,
        processed=int(info.get("processed", 0)),
        succeeded=int(info.get("succeeded", 0)),
        failed=int(info.get("failed", 0)),
        retried=int(info.get("retried", 0)),
        dead_lettered=int(info.get("dead_lettered", 0)),
        revoked=int(info.get("revoked", 0)),
        abandoned_threads=int(info.get("abandoned_threads", 0)),
        memory_rss=None if rss is None else int(rss),
        running=running,
        registered=tuple(info.get("registered", ())),
        fetch_state=str(info.get("fetch_state", "fetching")),
        fetched_at=None if fetched_at is None else float(fetched_at),
        gone=now - record.heartbeat > lease_timeout,
        pool_processes=tuple(p for p in info.get("pool_processes", ()) if isinstance(p, int)),
        group=group if isinstance(group := info.get("group"), str) else "",
    )


def _running(active: dict[str, Any], worker: str, now: float) -> RunningTask:
    started = float(active.get("started", now))
    return RunningTask(
        id=str(active.get("id", "")),
        name=str(active.get("task", "")),
        args=str(active.get("args", "")),
        worker=worker,
        queue=str(active.get("queue") or ""),
        started=started,
        runtime=max(0.0, now - started),
        attempt=int(active.get("attempt", 1)),
        delivery=int(active.get("delivery", 0)),
        enqueued=float(enqueued) if isinstance(enqueued := active.get("enqueued"), int | float) else None,
        pid=pid if isinstance(pid := active.get("pid"), int) else None,
    )


def dead_letter_info(letter: DeadLetter) -> DeadLetterInfo:
    try:
        env = decode_envelope(letter.body)
        task, args = env.task, describe_message_args(env)
    except Exception:
        task, args = "<malformed>", ""
    return DeadLetterInfo(
        letter.id, letter.queue, task, args, letter.reason, letter.failed_at, letter.deaths, letter.priority
    )

"""Is a worker healthy? The rules behind ``conveyor health`` (an exec liveness probe).

A worker is healthy when it is alive *and fetching*. Alive: its heartbeat is younger than a
lease. Fetching: its fetch loop got an answer from the broker recently, or it deliberately is
not fetching (every slot busy, or every queue of it paused). The second half is what Celery's
ping-based probes miss: a worker whose broker connection died keeps its process (and, in
Celery, its remote-control thread) alive while it consumes nothing.

>>> problem(admin.worker("w1@web-1"), time.time())      # doctest: +SKIP
'w1@web-1: its fetches fail (broker unreachable from the worker?)'
"""

from __future__ import annotations

from .records import WorkerInfo

MAX_FETCH_AGE = 10.0  # seconds without a fetch answer before a fetching worker is stalled


def problem(worker: WorkerInfo, now: float, max_fetch_age: float = MAX_FETCH_AGE) -> str | None:
    """Why ``worker`` is unhealthy, in one line; None when it is healthy."""
    name = worker.hostname
    if worker.gone:
        return f"{name}: no heartbeat for {now - worker.heartbeat:.1f}s (gone)"
    if worker.fetch_state == "failing":
        return f"{name}: its fetches fail (broker unreachable from the worker?)"
    if worker.fetch_state in ("full", "paused"):
        return None  # not fetching on purpose
    if worker.fetch_state == "stopping":
        return f"{name}: shutting down"
    if worker.fetched_at is None:
        started = now - worker.started
        return None if started < max_fetch_age else f"{name}: no fetch since it started {started:.0f}s ago"
    age = now - worker.fetched_at
    if age > max_fetch_age:
        return f"{name}: fetch loop stalled (last fetch answer {age:.1f}s ago)"
    return None

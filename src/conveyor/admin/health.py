"""Is a worker healthy? The rules behind ``conveyor health`` (an exec liveness probe).

A worker is healthy when it is alive *and fetching*. Alive: its heartbeat is younger than a
lease. Fetching: its fetch loop got an answer from the broker recently, or it deliberately is
not fetching (every slot busy, or every queue of it paused). The second half is what Celery's
ping-based probes miss: a worker whose broker connection died keeps its process (and, in
Celery, its remote-control thread) alive while it consumes nothing.

>>> problem(admin.worker("w1@web-1"), time.time())      # doctest: +SKIP
'w1@web-1: its fetches fail (broker unreachable from the worker?)'

A queue *needs* a worker when it has ready tasks and is not paused, or when it is named as
required (``check``): ``GET /health``, ``conveyor status`` and ``conveyor health --queue`` say
so when no live, fetching worker consumes it — tasks routed to a queue that no worker was
started with (``-Q``) wait there for ever, Celery's classic "stuck in PENDING".
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .records import WorkerInfo

if TYPE_CHECKING:
    from .api import Admin

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


def check(admin: Admin, required: list[str], max_fetch_age: float = MAX_FETCH_AGE) -> dict[str, Any]:
    """The health report: ``status`` ok or unhealthy, ``problems`` (one line each), and per
    queue its ready count, paused flag and the live fetching workers consuming it;
    ``unhealthy_workers`` lists workers alive but not fetching (they fail the report only when
    a queue is left without a worker)."""
    now = time.time()
    workers = admin.workers()
    queues = {q.name: q for q in admin.queues()}
    serving: dict[str, list[str]] = {name: [] for name in [*queues, *required]}
    problems: list[str] = []
    for worker in workers:
        why = problem(worker, now, max_fetch_age)
        if why is not None:
            problems.append(why)
            continue
        for name in worker.queues:
            serving.setdefault(name, []).append(worker.hostname)
    failing: list[str] = []
    for name, hosts in sorted(serving.items()):
        if hosts:
            continue
        info = queues.get(name)
        if name in required:
            failing.append(f"queue {name!r}: no live worker consumes it")
        elif info is not None and info.ready and not info.paused:
            failing.append(f"queue {name!r}: {info.ready} task(s) ready and no live worker consumes it")
    report_queues = {
        name: {
            "ready": queues[name].ready if name in queues else 0,
            "paused": queues[name].paused if name in queues else False,
            "workers": sorted(hosts),
        }
        for name, hosts in sorted(serving.items())
    }
    return {
        "status": "unhealthy" if failing else "ok",
        "broker": "ok",
        "problems": failing,
        "unhealthy_workers": problems,
        "queues": report_queues,
    }

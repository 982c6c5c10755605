"""Broker outages under load: a producer enqueues ``work`` tasks steadily, two workers run them,
and the broker fails in the middle. Every task is then counted end to end.

- redis-restart-2s / redis-restart-10s: a clean restart (SIGTERM; the AOF is complete) with the
  server down for 2 s (shorter than the 3 s lease) or 10 s (longer). No worker dies and nothing
  is lost, so every rerun is extra.
- redis-pause-10s: SIGSTOP the server for 10 s, then SIGCONT (a stalled server: connections stay
  open, replies stop). Two live workers, a 3 s lease: a task finished on one worker must not run
  again on the other just because both missed their heartbeats during the stall.
- sqlite-stall-10s: the SQLite analogue — another connection holds the write lock for 10 s.
- redis-aof-cut: SIGKILL the server, cut its append-only file back to 1-2 s before the kill
  (``redis-check-aof --truncate-to-timestamp``: the writes ``appendfsync everysec`` may lose in a
  crash), restart it on the same port. Lost acknowledgements may cause reruns (allowed: the
  earlier run finished after the cut); lost enqueues inside the window are allowed (documented);
  a task left "leased" to a live worker that no longer holds it is *stuck forever* (not allowed).
"""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import time
from collections.abc import Callable

from ..context import Ctx, Producer
from ..ledger import FINAL, Allowances, Figures, count_innocents

Fault = Callable[[Ctx, Figures], tuple[Allowances, float | None]]


def _under_load(
    ctx: Ctx,
    fig: Figures,
    fault: Fault,
    fault_at: float,
    rate: float,
    task_seconds: float,
    backlog: int = 0,
) -> None:
    """Two workers (-c 4), a producer at ``rate`` for 9 s (14 s in full mode) after an initial
    ``backlog``; ``fault`` runs ``fault_at`` seconds in and returns the scenario's allowances."""
    workers = [ctx.worker(f"w{i}", "-c", "4") for i in (1, 2)]
    seconds = 9.0 if ctx.quick else 14.0
    first = ctx.enqueue_many(backlog, task_seconds) if backlog else {}
    producer = Producer(rate, int(rate * seconds), task_seconds)
    producer.start()
    time.sleep(fault_at)
    allow, loss_after = fault(ctx, fig)
    producer.join(timeout=seconds + 60)
    producer.stop()
    enqueued = {**first, **producer.acked}
    states = ctx.wait_final(list(enqueued), 15.0 if ctx.quick else 20.0)
    count_innocents(fig, enqueued, states, ctx.runs(), ctx.dead_ids(), allow, loss_after)
    stuck = sorted({s for s in states.values() if s not in FINAL and s != "UNKNOWN"})
    if stuck:
        # Still not final this long after the fault, with a 3 s lease: live workers keep the
        # leases of these tasks renewed, so nobody will ever run them.
        fig.notes.append("stuck tasks' state: " + ",".join(stuck))
    for w in workers:
        fig.check(w.alive(), f"{w.name} exited with code {w.proc.poll()}")
    fig.notes.append(f"producer: {producer.failures} failed enqueue attempt(s) retried with the same id")


# Restarts, pauses and stalls all run under the same load: tasks of 1 s keep every worker's
# slots busy and its prefetch full when the fault begins, so a worker that loses its leases
# has finished-but-unacknowledged and prefetched tasks for another worker to take.


def _restart(down: float) -> Fault:
    def fault(ctx: Ctx, fig: Figures) -> tuple[Allowances, float | None]:
        assert ctx.redis is not None
        ctx.redis.stop()
        time.sleep(down)
        ctx.redis.start()
        return Allowances(), None

    return fault


def redis_restart_2s(ctx: Ctx, fig: Figures) -> None:
    _under_load(ctx, fig, _restart(2.0), fault_at=3.0, rate=8.0, task_seconds=1.0)


def redis_restart_10s(ctx: Ctx, fig: Figures) -> None:
    _under_load(ctx, fig, _restart(10.0), fault_at=3.0, rate=8.0, task_seconds=1.0)


def _pause(ctx: Ctx, fig: Figures) -> tuple[Allowances, float | None]:
    assert ctx.redis is not None
    ctx.redis.signal(signal.SIGSTOP)
    try:
        time.sleep(10.0)
    finally:
        ctx.redis.signal(signal.SIGCONT)
    return Allowances(), None


def redis_pause_10s(ctx: Ctx, fig: Figures) -> None:
    _under_load(ctx, fig, _pause, fault_at=3.0, rate=8.0, task_seconds=1.0)


def _stall(ctx: Ctx, fig: Figures) -> tuple[Allowances, float | None]:
    with contextlib.closing(sqlite3.connect(ctx.db_path, timeout=30, isolation_level=None)) as db:
        db.execute("BEGIN IMMEDIATE")  # WAL: readers go on, every writer waits behind us
        try:
            time.sleep(10.0)
        finally:
            db.execute("ROLLBACK")
    return Allowances(), None


def sqlite_stall_10s(ctx: Ctx, fig: Figures) -> None:
    _under_load(ctx, fig, _stall, fault_at=3.0, rate=8.0, task_seconds=1.0)


def _aof_cut(ctx: Ctx, fig: Figures) -> tuple[Allowances, float | None]:
    assert ctx.redis is not None
    killed = time.time()
    ctx.redis.kill()
    # The AOF has a "#TS:<second>" annotation at each second it logged writes; truncating to
    # second T keeps everything written before T + 1. T = kill - 2 loses the last 1-2 s.
    stamp = int(killed) - 2
    output = ctx.redis.truncate_aof(stamp)
    if "Successfully truncated" not in output:
        fig.failed_checks.append(f"AOF not truncated: {output[-200:]}")
    cut = float(stamp + 1)
    fig.notes.append(f"AOF cut {killed - cut:.1f} s before the SIGKILL")
    time.sleep(0.5)
    ctx.redis.start()
    # Writes after `cut` are gone: a run that finished after it may have lost its ack, and an
    # enqueue acknowledged after it may be gone.
    return Allowances(ack_loss_after=cut), cut


def redis_aof_cut(ctx: Ctx, fig: Figures) -> None:
    # Tasks of 0.3 s and a backlog: jobs are waiting in the queue when the server dies, so the
    # cut window holds fetches of jobs enqueued long before it, not only fresh enqueues.
    _under_load(ctx, fig, _aof_cut, fault_at=5.0, rate=20.0, task_seconds=0.3, backlog=120)

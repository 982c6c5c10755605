"""What one refresh of ``conveyor monitor`` shows: a snapshot read through the admin API, the
rates computed from two successive snapshots, and the thread that takes them.

The monitor keeps no history of its own: every figure comes from ``app.admin``, and a rate is
the difference between the last two snapshots (Sidekiq's dashboard does the same with its
processed counter).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ...admin import Admin, QueueInfo, RunningTask, WorkerInfo

FAILURES_SHOWN = 10  # the newest failures a snapshot reads; the view shows as many as fit
STOP_WAIT = 2.0  # seconds a read under way may take to end when the monitor quits


@dataclass(frozen=True, slots=True)
class Failure:
    """A task that failed for good, as the "last failures" panel shows it."""

    id: str
    task: str
    queue: str
    reason: str
    failed_at: float


def recent_failures(admin: Admin, limit: int) -> tuple[list[Failure], int | None]:
    """The newest ``limit`` failures, newest first, and how many there are (None: unknown).

    These are the task history's failed tasks (``admin.tasks(state="failed")``): every task that
    failed for good, whether it was kept as a dead letter or not. With history turned off
    (``task_history = False``) the history is empty, so the dead letters are shown instead.

    >>> failures, total = recent_failures(app.admin, 5)   # doctest: +SKIP
    >>> [(f.task, f.reason) for f in failures]  # doctest: +SKIP
    [('proj.tasks.send', 'ValueError: bad address')]
    """
    history = admin.tasks(state="failed", limit=limit)
    if history.items:
        return [
            Failure(t.id, t.name, t.queue, t.error or "", t.finished or 0.0) for t in history.items
        ], history.total
    page = admin.dead_letters(limit=limit)
    found = [Failure(d.id, d.task, d.queue, d.reason, d.failed_at) for d in page.items]
    return found, page.total


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one refresh shows, read at ``taken`` (epoch seconds); ``clock`` is the same
    instant on the monotonic clock, which rates are computed with (a wall-clock step must not
    make a rate jump)."""

    taken: float
    clock: float
    workers: tuple[WorkerInfo, ...]
    queues: tuple[QueueInfo, ...]
    running: tuple[RunningTask, ...]
    failures: tuple[Failure, ...]
    failures_total: int | None = None


def take_snapshot(admin: Admin, failures: int = FAILURES_SHOWN) -> Snapshot:
    """Read workers, queues and the newest failures (three or four broker round trips)."""
    workers = admin.workers()
    queues = admin.queues(workers)  # the heartbeats just read, not a second read
    # admin.running() is this same list, read again: one heartbeat read is enough per refresh.
    running = sorted((t for w in workers for t in w.running), key=lambda t: t.started)
    found, total = recent_failures(admin, failures)
    return Snapshot(
        time.time(), time.monotonic(), tuple(workers), tuple(queues), tuple(running), tuple(found), total
    )


@dataclass(frozen=True, slots=True)
class Rates:
    """Per-second rates between two snapshots (empty after the first one).

    ``workers``: tasks each worker processed per second, by its unique name. ``queues``: the
    net change of each queue's unfinished tasks (ready + delayed + leased) per second —
    negative while it drains, positive while it grows faster than it is worked off.
    ``processed``: every live worker's tasks per second together (None: not known yet).
    """

    workers: dict[str, float] = field(default_factory=dict)
    queues: dict[str, float] = field(default_factory=dict)
    processed: float | None = None


def unfinished(queue: QueueInfo) -> int:
    return queue.ready + queue.delayed + queue.leased


def rates(before: Snapshot | None, after: Snapshot) -> Rates:
    """The rates between ``before`` and ``after``; a worker or queue seen in only one of them
    has none (a new worker's whole count is not one second's work)."""
    if before is None or after.clock <= before.clock:
        return Rates()
    elapsed = after.clock - before.clock
    done_before = {w.name: w.processed for w in before.workers}
    per_worker = {
        w.name: (w.processed - done_before[w.name]) / elapsed
        for w in after.workers
        if w.name in done_before and w.processed >= done_before[w.name]
    }
    waiting_before = {q.name: unfinished(q) for q in before.queues}
    per_queue = {
        q.name: (unfinished(q) - waiting_before[q.name]) / elapsed
        for q in after.queues
        if q.name in waiting_before
    }
    return Rates(per_worker, per_queue, sum(per_worker.values()))


@dataclass(frozen=True, slots=True)
class Reading:
    """What the sampler has: the newest snapshot, the rates up to it, and the error of the
    latest attempt (None when it succeeded). ``failing_since`` is when errors started."""

    snapshot: Snapshot
    rates: Rates
    error: str | None = None
    failing_since: float | None = None


class Sampler:
    """Takes a snapshot every ``interval`` seconds on a daemon thread.

    The broker is read off the main thread so that a broker that hangs or went away never
    freezes the keyboard: ``q`` and Ctrl-C keep working, and the view shows the error with the
    last good figures while the sampler keeps trying.

    >>> sampler = Sampler(lambda: take_snapshot(admin), first, 1.0).start()   # doctest: +SKIP
    >>> sampler.changed.wait(2); sampler.reading().snapshot.workers            # doctest: +SKIP
    """

    def __init__(self, take: Callable[[], Snapshot], first: Snapshot, interval: float) -> None:
        self._take = take
        self._interval = interval
        self._lock = threading.Lock()
        self._reading = Reading(first, Rates())
        self._stopped = threading.Event()
        self.changed = threading.Event()  # set whenever there is a new reading to show
        self._thread = threading.Thread(target=self._run, name="conveyor-monitor", daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self, wait: float = STOP_WAIT) -> None:
        """Stop sampling, and give a read under way up to ``wait`` seconds to end: the command
        closes the broker's connections next, and must not close one under a query that is
        still running on it in this thread (a read that hangs on a dead broker is left behind:
        the thread is a daemon)."""
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(wait)

    def reading(self) -> Reading:
        with self._lock:
            return self._reading

    def _run(self) -> None:
        due = time.monotonic() + self._interval
        while not self._stopped.wait(max(0.0, due - time.monotonic())):
            due = time.monotonic() + self._interval
            self._sample()

    def _sample(self) -> None:
        try:
            snapshot = self._take()
        except Exception as exc:  # any broker failure: show it, keep the last view, try again
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            with self._lock:
                old = self._reading
                since = old.failing_since or time.time()
                self._reading = Reading(old.snapshot, old.rates, message, since)
        else:
            with self._lock:
                self._reading = Reading(snapshot, rates(self._reading.snapshot, snapshot))
        self.changed.set()

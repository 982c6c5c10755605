"""The admin API: the one place the CLI (and later the dashboard, HTTP API and metrics) reads
the cluster's state and acts on it — queues, workers, running tasks and dead letters.

It stands on the broker contract only (``BrokerAdmin`` reads and the key/value store), so it
works the same on memory, SQLite and Redis, and needs no task module imported: a health probe
can build one from a broker URL alone.

>>> admin = app.admin                                   # doctest: +SKIP
>>> [(q.name, q.ready, q.paused) for q in admin.queues()]  # doctest: +SKIP
[('default', 12, False), ('emails', 3, True)]
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence

from .. import states
from ..brokers import Broker, LostContinuation, MinuteCounts
from ..coordination import pauses
from ..progress import forget_progress
from . import actions, deadletters, history, schedules
from .control import Control
from .deadletters import DeadFilter
from .errors import UnknownQueue, UnknownWorker
from .parse import queue_info, worker_info
from .records import (
    ActionInfo,
    DeadLetterInfo,
    Page,
    QueueInfo,
    RunningTask,
    TaskCounts,
    TaskInfo,
    WorkerInfo,
)
from .schedules import ScheduleInfo

DEFAULT_LEASE_TIMEOUT = 3.0  # worker_lease_timeout's default


class Admin:
    """Read and control a Conveyor cluster through its broker.

    ``lease_timeout`` is the workers' ``worker_lease_timeout``: a worker silent for longer is
    shown as gone (its tasks are being handed to others). Brokers stop listing a worker 30 s
    after its last heartbeat, so gone workers never clutter the list for long.

    >>> admin = Admin(broker_from_url("redis://localhost:6380/0"))   # doctest: +SKIP
    """

    def __init__(
        self,
        broker: Broker,
        lease_timeout: float = DEFAULT_LEASE_TIMEOUT,
        task_history: bool = True,
        lost: LostContinuation | None = None,
    ) -> None:
        self.broker = broker
        self.lease_timeout = lease_timeout
        self.task_history = task_history  # the app's task_history: revokes record what they drop
        #: Ends the workflow of a job a revoke drops while queued (the app's; docs/workflows.md).
        self.lost = lost

    @property
    def control(self) -> Control:
        """Commands to workers through the broker (shutdown, revoke, add/cancel consumer, rate
        limits, ping), each answered by the workers: see control.py.

        >>> [r.hostname for r in admin.control.ping() if r.replied]     # doctest: +SKIP
        ['w1@web-1']
        """
        return Control(self)

    def schedules(self) -> list[ScheduleInfo]:
        """Every periodic entry stored in the broker (next and last run, run count, last
        error), by name; edit them through ``app.schedules``. See schedules.py.

        >>> [(s.name, s.enabled, s.total_runs) for s in admin.schedules()]   # doctest: +SKIP
        [('poll-aircraft', True, 1520)]
        """
        return schedules.schedules(self.broker)

    # -- queues ------------------------------------------------------------------------------
    def queues(self, workers: Sequence[WorkerInfo] | None = None) -> list[QueueInfo]:
        """Every known queue, by name: a queue is known while it holds jobs, is paused, or a
        live worker consumes it. ``running`` counts the tasks live workers run from it now.
        ``workers``: the live workers, if the caller just read them (``workers()``), so the
        heartbeats are read once per refresh.

        >>> [(q.name, q.ready, q.latency) for q in admin.queues()]      # doctest: +SKIP
        [('default', 3, 1.52)]
        """
        stats = self.broker.queue_stats()
        paused = pauses.paused_queues(self.broker)
        names = set(stats) | set(paused)
        running: Counter[str] = Counter()
        for worker in self.workers() if workers is None else workers:
            names.update(worker.queues)
            running.update(t.queue for t in worker.running)
        now = time.time()
        return [queue_info(n, stats.get(n), running[n], paused.get(n), now) for n in sorted(names)]

    def queue(self, name: str) -> QueueInfo:
        """One queue; ``UnknownQueue`` if no job, pause or live worker mentions it.

        >>> admin.queue("default").ready                                # doctest: +SKIP
        3
        """
        found = self.queues()
        for info in found:
            if info.name == name:
                return info
        raise UnknownQueue(self._unknown_queue(name, {q.name for q in found}))

    def pause(self, name: str, allow_unknown: bool = False) -> bool:
        """Pause a queue cluster-wide: workers stop fetching from it within about a heartbeat
        (a fetch already waiting may still take one batch), restarted workers too; enqueues are
        still accepted. Returns False if it was paused already. An unknown queue raises
        ``UnknownQueue`` unless ``allow_unknown`` (to pause a queue before it is used).

        >>> admin.pause("emails")                                       # doctest: +SKIP
        True
        """
        if not allow_unknown:
            self.queue(name)
        return pauses.pause(self.broker, name)

    def resume(self, name: str) -> bool:
        """Resume a paused queue; returns False if it was not paused.

        >>> admin.resume("emails")                                      # doctest: +SKIP
        True
        """
        if not pauses.resume(self.broker, name):
            self.queue(name)  # raises for an unknown queue; a known one just was not paused
            return False
        return True

    def purge(self, names: Sequence[str]) -> int:
        """Delete the waiting (ready and delayed) tasks of these queues; leased ones are left
        alone. Every name must be a known queue. Returns how many were deleted.

        >>> admin.purge(["default"])                                    # doctest: +SKIP
        12
        """
        known = {q.name for q in self.queues()}
        for name in names:
            if name not in known:
                raise UnknownQueue(self._unknown_queue(name, known))
        return self.broker.purge(list(names))

    def _unknown_queue(self, name: str, known: set[str] | None = None) -> str:
        names = sorted(known if known is not None else {q.name for q in self.queues()})
        return f"unknown queue {name!r} (known: {', '.join(names) or 'none'})"

    # -- workers -----------------------------------------------------------------------------
    def workers(self, include_gone: bool = False) -> list[WorkerInfo]:
        """Workers by name, from their last heartbeat; gone ones (silent for longer than a
        lease) only with ``include_gone``.

        >>> [(w.hostname, w.processed, len(w.running)) for w in admin.workers()]  # doctest: +SKIP
        [('w1@web-1', 1042, 2)]
        """
        now = time.time()
        found = [worker_info(r, self.lease_timeout, now) for r in self.broker.workers()]
        return [w for w in found if include_gone or not w.gone]

    def worker(self, name: str, include_gone: bool = True) -> WorkerInfo:
        """One worker by its unique name or its ``-n`` name (``w1@host``: the most recent one
        of that name); ``UnknownWorker`` if none heartbeated recently.

        >>> admin.worker("w1@web-1").pid                                # doctest: +SKIP
        4242
        """
        found = [w for w in self.workers(include_gone) if name in (w.name, w.hostname)]
        if not found:
            live = ", ".join(sorted({w.hostname for w in self.workers()})) or "none"
            raise UnknownWorker(f"unknown worker {name!r} (live: {live})")
        return max(found, key=lambda w: w.heartbeat)

    def running(self) -> list[RunningTask]:
        """Every task the live workers run now, longest-running first.

        >>> [(t.name, t.worker, round(t.runtime)) for t in admin.running()]  # doctest: +SKIP
        [('proj.tasks.report', 'w1@web-1', 42)]
        """
        tasks = [t for w in self.workers() for t in w.running]
        return sorted(tasks, key=lambda t: t.started)

    # -- dead letters ------------------------------------------------------------------------
    def dead_letters(
        self,
        offset: int = 0,
        limit: int = 50,
        queue: str | None = None,
        task: str | None = None,
        search: str | None = None,
    ) -> Page[DeadLetterInfo]:
        """A page of dead letters, newest first, optionally filtered by queue, task name (or a
        glob) and a search string. Page on with ``offset=page.next_offset``.

        >>> page = admin.dead_letters(limit=20, task="proj.tasks.*")    # doctest: +SKIP
        >>> [d.id for d in page.items], page.next_offset  # doctest: +SKIP
        (['5b1e...', ...], 1500)
        """
        if offset < 0 or limit < 1:
            raise ValueError("offset must be >= 0 and limit >= 1")
        return deadletters.page(self.broker, offset, limit, DeadFilter(queue, task, search))

    def retry_dead(self, ids: Sequence[str]) -> int:
        """Put these dead letters back on their queue (deaths reset). Returns how many went back.

        >>> admin.retry_dead(["5b1e..."])                               # doctest: +SKIP
        1
        """
        ids = list(ids)
        # First, so that the new run's first report is never the one dropped; and only for
        # tasks that ended FAILURE (a dead letter): a running task's id given by mistake, or a
        # letter retried twice and already running, keeps what it reported.
        ended = [i for i in ids if (rec := self.broker.status(i)) is not None and rec.state == states.FAILURE]
        forget_progress(self.broker, ended)  # waiting again: not the old run's PROGRESS
        return self.broker.requeue_dead(ids)

    def delete_dead(self, ids: Sequence[str]) -> int:
        """Delete these dead letters. Returns how many were deleted.

        >>> admin.delete_dead(["5b1e..."])                              # doctest: +SKIP
        1
        """
        return self.broker.delete_dead(list(ids))

    def retry_dead_matching(
        self, queue: str | None = None, task: str | None = None, search: str | None = None
    ) -> int:
        """Retry every dead letter matching the filter (all of them without one), a broker page
        at a time. Returns how many went back to their queue.

        >>> admin.retry_dead_matching(queue="emails")                   # doctest: +SKIP
        120
        """
        return deadletters.act_on_matching(self.broker, DeadFilter(queue, task, search), self.retry_dead)

    def delete_dead_matching(
        self, queue: str | None = None, task: str | None = None, search: str | None = None
    ) -> int:
        """Delete every dead letter matching the filter (all of them without one), a broker
        page at a time. Returns how many were deleted.

        >>> admin.delete_dead_matching(task="proj.tasks.legacy_*")      # doctest: +SKIP
        7
        """
        return deadletters.act_on_matching(self.broker, DeadFilter(queue, task, search), self.delete_dead)

    # -- task history (admin/history.py) -------------------------------------------------------
    def tasks(
        self,
        state: str | None = None,
        name: str | None = None,
        queue: str | None = None,
        since: float | None = None,
        until: float | None = None,
        search: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page[TaskInfo]:
        """A page of tasks, newest first: ``state`` is waiting, scheduled (soonest due first),
        running, succeeded, failed, retrying, revoked or dead (None: every state in the
        history); ``name`` and ``queue`` are exact; ``since``/``until`` bound the time of the
        latest state (for waiting and scheduled tasks: of the enqueue), epoch seconds;
        ``search`` is a case-insensitive text of the arguments or id. Page on with
        ``offset=page.next_offset``.

        >>> page = admin.tasks(state="failed", search="order-17", since=time.time() - 3600)  # doctest: +SKIP
        >>> [(t.name, t.error) for t in page.items]  # doctest: +SKIP
        [('shop.tasks.charge', 'CardDeclined: card 4242 declined')]
        """
        if offset < 0 or limit < 1:
            raise ValueError("offset must be >= 0 and limit >= 1")
        f = history.TaskFilter(state, name, queue, since, until, search)
        return history.page(self.broker, self.running, f, offset, limit)

    def task(self, task_id: str) -> TaskInfo:
        """One task's full record by id (``UnknownTask`` if the broker knows nothing of it).

        >>> info = admin.task("5b1e...")                                # doctest: +SKIP
        >>> info.state, info.attempts_made, [a.error for a in info.attempts]  # doctest: +SKIP
        ('failed', 3, ['IOError: timeout', 'IOError: timeout', 'IOError: refused'])
        """
        return history.one(self.broker, self.running, task_id)

    def counters(
        self, since: float | None = None, until: float | None = None, name: str | None = None
    ) -> list[MinuteCounts]:
        """Per task name and minute: runs ended, failures, retries and total runtime, oldest
        first; by default the last hour. Kept three days.

        >>> [(c.minute, c.processed) for c in admin.counters(name="shop.tasks.charge")]  # doctest: +SKIP
        [(1796100000, 120), ...]
        """
        until = time.time() + 60 if until is None else until
        since = until - 3660 if since is None else since
        return history.counters(self.broker, since, until, name)

    def task_counts(
        self, since: float | None = None, until: float | None = None, name: str | None = None
    ) -> list[TaskCounts]:
        """``counters()`` summed per task name over the window (by default the last hour):
        processed, failed, retried, total and mean runtime, and the per-minute series. A
        minute is counted whole when it starts inside the window.

        >>> [(c.name, c.processed, c.mean_runtime) for c in admin.task_counts()]  # doctest: +SKIP
        [('shop.tasks.charge', 7200, 0.031)]
        """
        if since is not None:
            since = float(int(since // 60) * 60)  # the minute it falls in counts
        return history.totals(self.counters(since, until, name))

    # -- the action log (admin/actions.py) ------------------------------------------------------
    def record_action(self, actor: str, action: str, target: str, detail: str = "") -> None:
        """Write one operator action to the log kept in the broker (the last 10,000, 30 days).
        The dashboard and the HTTP API call it for every action they take.

        >>> admin.record_action("alice", "queue.pause", "emails")       # doctest: +SKIP
        """
        actions.record(self.broker, actor, action, target, detail)

    def actions(self, limit: int = 50, offset: int = 0) -> Page[ActionInfo]:
        """A page of the action log, newest first; page on with ``offset=page.next_offset``.

        >>> [(a.actor, a.action, a.target) for a in admin.actions(limit=1).items]  # doctest: +SKIP
        [('alice', 'queue.pause', 'emails')]
        """
        return actions.page(self.broker, limit, offset)

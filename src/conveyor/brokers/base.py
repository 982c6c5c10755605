"""The broker contract: three interfaces every broker (memory, SQLite, Redis) implements.

- ``JobLifecycle``: what producers, workers and result readers need — a job from enqueue to
  its result (enqueue, fetch, settle, heartbeat, reclaim, status, wait, revoke, forget).
- ``BrokerAdmin``: the operator's reads and actions (queue stats, purge, workers, dead letters,
  cleanup), which the CLI's operator commands stand on.
- ``KeyValueStore``: small atomic keys with expiry, the building blocks of the scheduler and of
  coordination (locks, unique tasks, limits).
- ``TaskHistory``: the persistent record of finished, failed, retrying and revoked tasks and
  the per-minute counters, written by ``settle`` (from ``Outcome.history``) and read here.

- ``WorkflowStore``: groups (chords) whose completion is counted in the settle of each
  member's outcome, so the body is enqueued exactly once (docs/workflows.md).

``Broker`` is all five, plus ``url`` and ``close``; ``broker_from_url`` returns one. Each broker
makes every method atomic in its own way (one SQL transaction, one Lua script, one lock).

All methods are synchronous and thread-safe; the worker calls them from its I/O threads so
its event loop never blocks on the broker. Times are epoch seconds (``time.time()``) because
they are compared across processes and hosts.

Why ``typing.Protocol`` and not plain ``abc.ABC``: a layer below the app (beat, coordination)
can then ask for just the interface it uses — ``def claim(store: KeyValueStore)`` — and a test
can hand it any object with those methods, without inheriting from the broker classes. The
brokers still subclass the interfaces explicitly, and every method is an
``abc.abstractmethod``, so a broker missing one fails when it is created (and under mypy), as
before the split.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Collection, Sequence
from typing import Protocol

from .records import (
    Continuation,
    DeadLetter,
    Delivery,
    GroupState,
    HeldJob,
    HistoryEntry,
    HistoryQuery,
    HistoryRow,
    JobSpec,
    KVEntry,
    MinuteCounts,
    Outcome,
    PendingJob,
    QueueStats,
    ReclaimReport,
    SearchReach,
    SettleKind,
    StatusRecord,
    WorkerRecord,
)

#: Builds the workflow continuation of a job the broker ends itself, with no worker to settle
#: it: ``(task id, body, state, payload) -> Continuation | None`` (REVOKED for a job revoked
#: while queued, FAILURE for one dead-lettered after its worker died). The broker applies what
#: it returns in the same atomic step as the drop, as a settle applies ``Outcome.then``; the app
#: provides it (``conveyor.canvas.lost``), since only the app can read a body.
LostContinuation = Callable[[str, bytes, str, bytes], Continuation | None]

#: ``reconcile`` parks a started at-most-once job under the lease owner ``<owner>:lost``, already
#: expired: no heartbeat renews it, and the next ``reclaim`` dead-letters it with its ``lost``
#: continuation (the worker that reconciles has no hook, nor needs one).
LOST_SUFFIX = ":lost"

__all__ = [
    "LOST_SUFFIX",
    "AsyncProducer",
    "Broker",
    "BrokerAdmin",
    "DeadLetter",
    "Delivery",
    "GroupState",
    "JobLifecycle",
    "JobSpec",
    "KVEntry",
    "KeyValueStore",
    "LostContinuation",
    "Outcome",
    "QueueStats",
    "ReclaimReport",
    "SettleKind",
    "StatusRecord",
    "TaskHistory",
    "WorkerRecord",
    "WorkflowStore",
]


class JobLifecycle(Protocol):
    """A job's life, from enqueue to its stored result, with each step atomic::

        enqueue ──> ready ──fetch──> leased ──settle(ack)──> result stored, job gone
           │          ▲                │  └──settle(retry)──> delayed (eta) ──promote──> ready
           └─(eta)─> delayed           │  └──settle(dead)───> dead letters
                                       └──lease expires (worker died)──reclaim──> ready, or dead
                                          letters after ``max_deaths`` deaths

    A *lease* is a worker's claim on a job, renewed by its heartbeat. The *delivery* number
    grows with each hand-out of the job and fences stale workers: a settle whose delivery is not
    the job's current one is ignored, so a worker that lost its lease cannot ack or retry a job
    another worker now runs. It never repeats for a job, not even after a broker crash that lost
    its last writes (Redis takes the server clock into it).

    A *death* is counted only for a job its worker had said was running (the heartbeat lists the
    running tasks; a redelivered job is confirmed with a ``running`` outcome before it starts), so
    the jobs a dying worker only held in its prefetch go back without one.
    """

    # -- producers and result readers --------------------------------------------------------
    @abc.abstractmethod
    def enqueue(self, jobs: Sequence[JobSpec]) -> list[bool]:
        """Add jobs; idempotent by id: an id the broker already knows (queued, running or with a
        stored result) is not added again. Returns, per job, whether it was added."""

    @abc.abstractmethod
    def status(self, task_id: str) -> StatusRecord | None:
        """The task's state and stored payload; None if the id is unknown (never enqueued or expired)."""

    @abc.abstractmethod
    def wait(self, task_id: str, timeout: float | None) -> StatusRecord | None:
        """Block until the task reaches a ready state (SUCCESS, FAILURE, REVOKED) or ``timeout``
        passes; return its latest status (None if unknown)."""

    @abc.abstractmethod
    def revoke(
        self, task_ids: Sequence[str], terminate: bool, ttl: float, lost: LostContinuation | None = None
    ) -> None:
        """Remember the revoke for ``ttl`` seconds (durably). A job that is not leased is removed
        now and gets a REVOKED result (with ``lost``'s continuation for it, in the same step);
        a leased one is reported by ``heartbeat`` to its worker. Without a continuation for it, a
        workflow step (``WORKFLOW_MARK``) stays queued: ``fetch`` hands it out flagged
        ``revoked``, so that its worker ends its workflow."""

    @abc.abstractmethod
    def forget(self, task_id: str) -> None:
        """Delete a stored result."""

    # -- workers -----------------------------------------------------------------------------
    @abc.abstractmethod
    def fetch(
        self, queues: Sequence[str], owner: str, limit: int, lease_timeout: float, wait: float
    ) -> list[Delivery]:
        """Lease up to ``limit`` ready jobs from ``queues`` (highest priority first, then oldest),
        promoting due delayed jobs first; a revoked one is handed out flagged ``revoked`` (its
        worker settles it as REVOKED, never running it). Blocks up to ``wait`` seconds
        when there is nothing to lease. ``owner`` is the worker's unique name."""

    @abc.abstractmethod
    def settle(self, outcomes: Sequence[Outcome], result_ttl: float) -> None:
        """Apply a batch of outcomes atomically per job; outcomes whose ``delivery`` is stale
        (the job was reclaimed and handed out again) are ignored."""

    @abc.abstractmethod
    def heartbeat(
        self, owner: str, lease_timeout: float, info: bytes, running: Sequence[tuple[str, int]] = ()
    ) -> dict[str, bool]:
        """Renew every lease ``owner`` holds, record the worker as alive, and mark the jobs in
        ``running`` (``(task_id, delivery)`` pairs whose lease ``owner`` holds) as running.
        Returns the revoked jobs among its leases: ``{task_id: terminate}``."""

    @abc.abstractmethod
    def reconcile(self, owner: str, held: Collection[str]) -> list[str]:
        """Give back the jobs leased to ``owner`` whose ids are not in ``held`` (front of their
        queue, no death; an at-most-once job that started must not run again: it is parked
        under ``LOST_SUFFIX`` for the next ``reclaim`` to dead-letter, with its workflow
        continuation), and return their ids. A worker calls this after the broker was
        unreachable, with every job it holds, while none of its fetches is under way: a crash
        that lost writes can leave a job leased to a live worker that already settled it, and
        its heartbeat would renew that for ever."""

    @abc.abstractmethod
    def reclaim(
        self, max_deaths: int, result_ttl: float, lost: LostContinuation | None = None
    ) -> ReclaimReport:
        """Return jobs whose lease expired (their worker died) to their queue. A job marked
        running counts a death and is dead-lettered once its worker died on it ``max_deaths``
        times, or at once if it was started at-most-once (settled with ``start``), with
        ``lost``'s continuation for it in the same step; a job that was only held goes back
        without a death."""

    @abc.abstractmethod
    def unregister_worker(self, owner: str) -> None:
        """Forget a worker that shut down cleanly."""


class BrokerAdmin(Protocol):
    """The operator's reads and actions: what the CLI's operator commands are built on. None of
    them is on a job's path; a worker's keeper only runs ``cleanup`` now and then."""

    @abc.abstractmethod
    def queue_stats(self) -> dict[str, QueueStats]:
        """Per queue: ready (also per priority), delayed and leased job counts, and the body of
        its oldest ready job. Queues that hold no job are left out."""

    @abc.abstractmethod
    def purge(self, queues: Sequence[str]) -> int:
        """Delete ready and delayed jobs of ``queues`` (leased ones are left alone). Returns the count."""

    @abc.abstractmethod
    def bring_forward(self, task_ids: Sequence[str]) -> int:
        """Make these delayed jobs ready now (ids that are not delayed are skipped): the start
        times a changed rate limit gave them are void. Returns how many moved."""

    @abc.abstractmethod
    def workers(self) -> list[WorkerRecord]:
        """Workers that sent a heartbeat recently."""

    @abc.abstractmethod
    def dead_letters(self, limit: int = 100, offset: int = 0) -> list[DeadLetter]:
        """Dead letters, newest first."""

    @abc.abstractmethod
    def dead_letter_count(self) -> int:
        """How many dead letters there are."""

    @abc.abstractmethod
    def delete_dead(self, task_ids: Sequence[str]) -> int:
        """Delete these dead letters (unknown ids are skipped). Returns how many were deleted."""

    @abc.abstractmethod
    def requeue_dead(self, task_ids: Sequence[str]) -> int:
        """Move dead letters back to their queue (their death count reset). Returns the count."""

    @abc.abstractmethod
    def purge_dead(self) -> int:
        """Delete every dead letter. Returns the count."""

    @abc.abstractmethod
    def cleanup(self, dead_letter_ttl: float) -> None:
        """Drop expired results, revokes and dead letters (a no-op where the store expires keys)."""


class KeyValueStore(Protocol):
    """Small atomic key/value operations that the scheduler (schedules, slot claims, leader
    lease) and coordination (locks with fencing, unique tasks, rate limits, per-key limits) are
    built from, so they hold across processes and hosts on every broker. An expired key is
    absent. Keys are namespaced by the caller ("lock:scrape", "beat:slot:poll:1700000000")."""

    @abc.abstractmethod
    def kv_get(self, key: str) -> KVEntry | None:
        """The key's value and expiry, or None if absent or expired."""

    @abc.abstractmethod
    def kv_put(self, key: str, value: bytes, ttl: float | None = None, only_if_absent: bool = False) -> bool:
        """Set the key (expiring after ``ttl`` seconds, or never). With ``only_if_absent`` it is
        set only if absent (or expired); returns whether it was set."""

    @abc.abstractmethod
    def kv_compare_and_set(
        self, key: str, expected: bytes | None, value: bytes | None, ttl: float | None = None
    ) -> bool:
        """Atomically: if the key's current value equals ``expected`` (None: the key is absent),
        set it to ``value`` with ``ttl`` (``value`` None: delete it). Returns whether it matched."""

    @abc.abstractmethod
    def kv_scan(self, prefix: str) -> dict[str, KVEntry]:
        """Every live key starting with ``prefix``."""

    @abc.abstractmethod
    def kv_incr(self, key: str, amount: int = 1) -> int:
        """Atomically add ``amount`` to an integer counter and return the new value. An absent (or
        expired) key starts from 0 and never expires; an existing key keeps its expiry (Redis
        INCRBY semantics). Used for fencing numbers."""


class TaskHistory(Protocol):
    """The task history: one record per task id (its latest state, the latest run's payload and
    every failed attempt), kept after the result expires, and counters per task name and minute.

    Writing is not here: ``JobLifecycle.settle`` stores an outcome's ``history`` entry and
    counts it in the same atomic step as the outcome itself, and only if the outcome is
    current, so recording history costs no round trip and a stale settle records nothing.
    Records are kept until ``trim_history`` drops them (too old, or beyond the cap).
    """

    @abc.abstractmethod
    def record_history(self, entries: Sequence[tuple[str, HistoryEntry, bytes | None]]) -> None:
        """Store and count ``(task id, entry, payload)`` for endings no settle carries: a task
        revoked before any worker fetched it, a job dead-lettered because its workers died.
        Like a settled entry, each replaces the task's record and appends its attempt."""

    @abc.abstractmethod
    def history(self, query: HistoryQuery, limit: int = 50, offset: int = 0) -> list[HistoryRow]:
        """Records matching ``query``, newest (latest state change) first, paged."""

    def search_history(
        self, query: HistoryQuery, limit: int = 50, offset: int = 0
    ) -> tuple[list[HistoryRow], SearchReach | None]:
        """``history`` for a query with a ``search`` text, which a broker may bound: one with no
        text index reads at most a fixed number of the newest records and says how far back it
        got (the ``SearchReach``; None: it searched the whole history). The default searches
        everything (an indexed or an in-memory history)."""
        return self.history(query, limit, offset), None

    @abc.abstractmethod
    def pending(self, delayed: bool, limit: int = 50, offset: int = 0) -> list[PendingJob]:
        """Jobs no worker holds: ready ones newest first (``delayed`` False), or delayed ones
        soonest due first (``delayed`` True), over every queue, paged."""

    @abc.abstractmethod
    def pending_job(self, task_id: str) -> PendingJob | None:
        """The job if it is ready or delayed (not leased, not finished), else None."""

    @abc.abstractmethod
    def held_job(self, task_id: str) -> HeldJob | None:
        """The job if a worker holds its lease (running it, or prefetched), else None."""

    @abc.abstractmethod
    def history_row(self, task_id: str) -> HistoryRow | None:
        """One task's record, or None if it has none (never ran, or trimmed)."""

    @abc.abstractmethod
    def counters(self, since: float, until: float, name: str | None = None) -> list[MinuteCounts]:
        """Per task name and minute, the minutes that start in ``[since, until)``, oldest
        first (then by name); only ``name``'s with one. Counters are kept ``COUNTERS_KEPT``
        (brokers/history.py)."""

    @abc.abstractmethod
    def trim_history(self, max_records: int, older_than: float) -> int:
        """Drop records whose latest state is older than ``older_than`` (epoch seconds), then the
        oldest ones beyond ``max_records``, and counters past their keeping time. Returns how
        many records were dropped."""


class WorkflowStore(Protocol):
    """Groups whose completion the broker tracks: a chord's header tasks join their group in
    the settle of their own outcome (``Outcome.then``, a ``GroupJoin``), and the join that
    completes the group enqueues the body in that same atomic step. Nothing polls.

    A group is kept ``ttl`` seconds from ``start_group`` (its slots hold the members' results
    for the body, which reads them with ``group_state`` when it starts)."""

    @abc.abstractmethod
    def start_group(self, group_id: str, size: int, body: JobSpec | None, ttl: float) -> bool:
        """Register a group of ``size`` members (> 0) whose completion enqueues ``body``.
        Idempotent by id: returns False (and changes nothing) if the group exists."""

    @abc.abstractmethod
    def group_state(self, group_id: str) -> GroupState | None:
        """The group's size, count, failure flag and slots; None if unknown or expired."""


class AsyncProducer(Protocol):
    """What an async producer needs of a broker, as coroutines: ``enqueue``, ``status``, ``wait``
    and ``kv_get`` mean what ``JobLifecycle``'s and ``KeyValueStore``'s methods of the same name
    mean (same keys, scripts and SQL). One is made per event loop (``Broker.async_producer``),
    because asyncio connections belong to the loop that opened them (conveyor/aio.py)."""

    @abc.abstractmethod
    async def enqueue(self, jobs: Sequence[JobSpec]) -> list[bool]: ...

    @abc.abstractmethod
    async def status(self, task_id: str) -> StatusRecord | None: ...

    @abc.abstractmethod
    async def wait(self, task_id: str, timeout: float | None) -> StatusRecord | None: ...

    @abc.abstractmethod
    async def kv_get(self, key: str) -> KVEntry | None: ...

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release this loop's connections."""


class Broker(JobLifecycle, BrokerAdmin, KeyValueStore, TaskHistory, WorkflowStore):
    """A whole broker: the job lifecycle, the admin surface, the key/value store, the task
    history and the workflow groups.

    Not itself a protocol: a broker is a class that says so by inheriting from this one.
    """

    #: The URL this broker was created from (as given to ``broker_from_url``).
    url: str = ""

    def close(self) -> None:  # not abstract: a broker with nothing to release keeps this
        """Release connections."""

    def async_producer(self) -> AsyncProducer | None:
        """A native asyncio client for the running event loop, or None: then async producers
        call the synchronous methods (inline on the memory broker, else in a thread)."""
        return None

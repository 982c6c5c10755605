"""The broker contract: what every broker (memory, SQLite, Redis) must do.

The contract is at the level of a job's lifecycle, so each broker can make every step atomic
in its own way (one SQL transaction, one Lua script):

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

All methods are synchronous and thread-safe; the worker calls them from its I/O threads so
its event loop never blocks on the broker. Times are epoch seconds (``time.time()``) because
they are compared across processes and hosts.
"""

from __future__ import annotations

import abc
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A job to enqueue. ``body`` is the encoded envelope; the broker never decodes it."""

    id: str
    queue: str
    body: bytes
    priority: int = 5  # 0..9, higher first
    eta: float | None = None  # run no earlier than this; None = now
    retries: int = 0


@dataclass(frozen=True, slots=True)
class Delivery:
    """A job handed to a worker under a lease."""

    id: str
    queue: str
    body: bytes
    delivery: int  # grows with every hand-out, never repeats; fences stale settles
    deaths: int  # how many times a worker died running this job (-1: at-most-once, started)
    redelivered: bool = False  # handed out before and not settled since (a crash, a release)


SettleKind = Literal["ack", "retry", "dead", "release", "start", "running"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a delivery. Settled in batches by ``Broker.settle``.

    - ``ack``: remove the job; store ``state``/``payload`` as its result unless ``state`` is None.
    - ``retry``: replace the body, keep the job delayed until ``eta``; ``payload`` is the error
      (None keeps the previous one: a deferral by a lock or rate limit is not a new failure).
    - ``dead``: move the job to the dead-letter set with ``reason``; store a FAILURE result.
    - ``release``: give the job back to its queue now (graceful shutdown, Reject(requeue=True)).
    - ``start``: an at-most-once task (``acks_late=False``) is about to run: if its lease ever
      expires it goes to the dead-letter set instead of running again.
    - ``running``: an at-least-once task is about to run: if its lease expires, that counts a
      death (the heartbeat marks running tasks the same way; this is for redelivered jobs,
      whose worker must not start them before the broker knows).
    """

    kind: SettleKind
    id: str
    delivery: int
    state: str | None = None
    payload: bytes | None = None
    body: bytes | None = None
    eta: float | None = None
    retries: int = 0
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class StatusRecord:
    """What the broker knows about one task id."""

    state: str  # a conveyor.states value
    payload: bytes | None = None  # an encoded ResultPayload, when there is one
    retries: int = 0


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: str
    queue: str
    body: bytes
    reason: str
    failed_at: float
    deaths: int = 0
    priority: int = 5


@dataclass(frozen=True, slots=True)
class QueueStats:
    ready: int = 0
    delayed: int = 0
    leased: int = 0


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    name: str
    heartbeat: float
    info: bytes = b"{}"  # JSON: pid, host, queues, concurrency, pool, started, counters


@dataclass(frozen=True, slots=True)
class KVEntry:
    value: bytes
    expires_at: float | None  # epoch seconds; None = never


@dataclass(slots=True)
class ReclaimReport:
    requeued: list[str] = field(default_factory=list)
    dead: list[str] = field(default_factory=list)


class Broker(abc.ABC):
    """Abstract broker. Subclasses implement every abstract method atomically."""

    #: URL scheme(s) this broker answers to, for ``broker_from_url``.
    url: str = ""

    # -- producers ---------------------------------------------------------------------------
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
    def revoke(self, task_ids: Sequence[str], terminate: bool, ttl: float) -> None:
        """Remember the revoke for ``ttl`` seconds (durably). A job that is not leased is removed
        now and gets a REVOKED result; a leased one is reported by ``heartbeat`` to its worker."""

    @abc.abstractmethod
    def forget(self, task_id: str) -> None:
        """Delete a stored result."""

    # -- workers -----------------------------------------------------------------------------
    @abc.abstractmethod
    def fetch(
        self, queues: Sequence[str], owner: str, limit: int, lease_timeout: float, wait: float
    ) -> list[Delivery]:
        """Lease up to ``limit`` ready jobs from ``queues`` (highest priority first, then oldest),
        promoting due delayed jobs first and dropping revoked ones. Blocks up to ``wait`` seconds
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
        queue, no death; an at-most-once job that started is dead-lettered instead), and return
        their ids. A worker calls this after the broker was unreachable, with every job it holds,
        while none of its fetches is under way: a crash that lost writes can leave a job leased
        to a live worker that already settled it, and its heartbeat would renew that for ever."""

    @abc.abstractmethod
    def reclaim(self, max_deaths: int, result_ttl: float) -> ReclaimReport:
        """Return jobs whose lease expired (their worker died) to their queue. A job marked
        running counts a death and is dead-lettered once its worker died on it ``max_deaths``
        times, or at once if it was started at-most-once (settled with ``start``); a job that
        was only held goes back without a death."""

    @abc.abstractmethod
    def unregister_worker(self, owner: str) -> None:
        """Forget a worker that shut down cleanly."""

    # -- operators ---------------------------------------------------------------------------
    @abc.abstractmethod
    def queue_stats(self) -> dict[str, QueueStats]:
        """Per queue: ready, delayed and leased job counts."""

    @abc.abstractmethod
    def purge(self, queues: Sequence[str]) -> int:
        """Delete ready and delayed jobs of ``queues`` (leased ones are left alone). Returns the count."""

    @abc.abstractmethod
    def workers(self) -> list[WorkerRecord]:
        """Workers that sent a heartbeat recently."""

    @abc.abstractmethod
    def dead_letters(self, limit: int = 100, offset: int = 0) -> list[DeadLetter]:
        """Dead letters, newest first."""

    @abc.abstractmethod
    def requeue_dead(self, task_ids: Sequence[str]) -> int:
        """Move dead letters back to their queue (their death count reset). Returns the count."""

    @abc.abstractmethod
    def purge_dead(self) -> int:
        """Delete every dead letter. Returns the count."""

    @abc.abstractmethod
    def cleanup(self, dead_letter_ttl: float) -> None:
        """Drop expired results, revokes and dead letters (a no-op where the store expires keys)."""

    # -- coordination primitives -------------------------------------------------------------
    # Small atomic key/value operations that the scheduler (schedules, slot claims, leader
    # lease) and coordination (locks with fencing, unique tasks, rate limits, per-key limits)
    # are built from, so they hold across processes and hosts on every broker. An expired key
    # is absent. Keys are namespaced by the caller ("lock:scrape", "beat:slot:poll:1700000000").
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

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

"""The records that cross the broker contract (see base.py): plain frozen values, no behaviour.

Every broker builds and returns these; producers, workers and operators never see a broker's
own row or key shapes. Times are epoch seconds (``time.time()``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple


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
    #: Revoked, and not run yet: handed out only so that its worker settles it as REVOKED (never
    #: running it) with its history record, and a workflow step with its workflow's
    #: continuation. Not dropped by the fetch: a job revoked while a worker held it, then
    #: requeued (its worker died, or gave it back at shutdown), would end with no record.
    revoked: bool = False


#: A workflow step's encoded envelope contains this (``Envelope.workflow``); a broker that never
#: decodes bodies tells a workflow step from a plain job by it (a plain job whose arguments
#: hold the text too is merely treated as a possible step).
WORKFLOW_MARK = b'"workflow"'

SettleKind = Literal["ack", "retry", "dead", "release", "start", "running", "died"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a delivery. Settled in batches by ``JobLifecycle.settle``.

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
    - ``died``: the process running it died (a ``-P processes`` child: a segfault, the OOM
      killer) while its worker lives: one death more, as when a lease expires. Without
      ``reason`` the job goes back to the front of its queue now; with ``reason`` (its worker
      saw that this death reaches ``task_max_worker_deaths``) it goes to the dead letters with
      ``payload`` as its FAILURE result.
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
    history: HistoryEntry | None = None  # recorded with the outcome when history is on
    then: Continuation | None = None  # workflow steps applied with it (ack and dead only)


#: A result the broker stores as is: (task id, state, encoded ResultPayload).
StoredResult = tuple[str, str, bytes]


class GroupJoin(NamedTuple):
    """A chord header task's ending, joined to its group in the same atomic step as its
    outcome (see ``WorkflowStore``).

    The broker stores ``(state, payload)`` in the group's ``slot`` (the member's index) and counts the member,
    both only if that slot is still empty: a member whose outcome is settled twice (it cannot
    be, thanks to delivery fencing, but a slot makes it certain) is counted once. The first
    member that joins with a state other than SUCCESS marks the group failed, enqueues
    ``on_failure`` and stores ``failure_results`` (the body's FAILURE, naming the member; an
    empty task id there stands for the group's body, whose id the broker has). When
    the count reaches the group's size and it has not failed, the broker enqueues the body
    registered with ``start_group``: exactly once, since only one join can make the count reach
    the size.

    A ``NamedTuple`` like ``HistoryEntry``: one is built per chord header task, and a frozen
    dataclass costs several times as much to build."""

    group: str
    slot: int  # the member's index in the group
    state: str
    payload: bytes | None
    on_failure: tuple[JobSpec, ...] = ()
    failure_results: tuple[StoredResult, ...] = ()


class Continuation(NamedTuple):
    """What a workflow does next when a task ends, settled with the task's outcome (same Lua
    script, SQL transaction or lock) and only if that outcome is current: the next chain step
    and ``link``/``link_error`` callbacks (``enqueue``, idempotent by id like ``enqueue``),
    results stored for tasks that will never run (the rest of a chain that stopped), and a
    chord header's ``join``. So a worker killed between the ack and the next step cannot lose
    the step, and a redelivered task cannot start it twice."""

    enqueue: tuple[JobSpec, ...] = ()
    results: tuple[StoredResult, ...] = ()
    join: GroupJoin | None = None


@dataclass(frozen=True, slots=True)
class GroupState:
    """A group registered with ``start_group``: its size, how many members joined, whether one
    failed, the body's id, and per member (in order) its ``(state, payload)`` once it joined."""

    size: int
    joined: int
    failed: bool
    body_id: str | None
    slots: tuple[tuple[str, bytes | None] | None, ...]


class HistoryEntry(NamedTuple):
    """A run's ending for the task history, settled with its outcome (same script or
    transaction), and only if that outcome is current. ``record`` is an encoded
    ``taskrecord.TaskRecord``; the broker stores it with the outcome's payload (the result or
    error) and appends ``attempt`` (encoded ``taskrecord.Attempt``s, newline-separated: a run
    that follows runs its worker died on brings those too) to the task's attempts.
    The other fields are what the broker indexes and counts, so it never decodes ``record``.

    A ``NamedTuple``, not a frozen dataclass like the other records: one is built per task
    run, and a frozen dataclass takes four times as long to build (bench/history.py).
    """

    name: str
    queue: str
    state: str  # SUCCESS, FAILURE, RETRY, REVOKED
    at: float  # when the run ended
    runtime: float  # seconds; 0 for a run that never started (revoked before it ran)
    args: str  # the arguments' repr, what --search looks in
    record: bytes
    attempt: bytes | None = None
    retries: int = 0  # attempts before this run (>0: it may be listed as retrying until now)


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """A task's stored history: its latest record, the latest run's payload (None for an
    ``ignore_result`` success), and its failed attempts in order."""

    id: str
    record: bytes
    payload: bytes | None = None
    attempts: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """Which history records to list, newest first. ``name`` is exact; ``search`` a
    case-insensitive substring of the arguments (or the id); ``since``/``until`` bound the time
    of the record's latest state."""

    state: str | None = None
    name: str | None = None
    queue: str | None = None
    since: float | None = None
    until: float | None = None
    search: str | None = None


@dataclass(frozen=True, slots=True)
class SearchReach:
    """How far back a bounded history search read, when it stopped before the oldest record:
    the newest ``records`` records, the oldest of which ended at ``back_to`` (epoch seconds;
    None if that record was unreadable). What it found there is exact; older records were not
    looked at."""

    records: int
    back_to: float | None = None


@dataclass(frozen=True, slots=True)
class PendingJob:
    """A job not leased to a worker: ready (``eta`` None) or delayed until ``eta`` (a countdown,
    an eta, a retry's backoff), with the deaths counted so far (a worker died running it and
    another requeued it)."""

    id: str
    queue: str
    body: bytes
    priority: int = 5
    eta: float | None = None
    retries: int = 0
    deaths: int = 0


@dataclass(frozen=True, slots=True)
class HeldJob:
    """A job leased to a worker (``owner``: its lease-owner id), with the deaths counted so far."""

    id: str
    queue: str
    body: bytes
    owner: str
    deaths: int = 0
    priority: int = 5
    retries: int = 0


@dataclass(frozen=True, slots=True)
class MinuteCounts:
    """What one task name did in one minute (``minute``: its start, epoch seconds): runs ended
    (successes, failures and retries), failures, retries, and the runs' total seconds."""

    minute: int
    name: str
    processed: int = 0
    failed: int = 0
    retried: int = 0
    runtime: float = 0.0


@dataclass(frozen=True, slots=True)
class StatusRecord:
    """What the broker knows about one task id."""

    state: str  # a conveyor.states value
    payload: bytes | None = None  # an encoded ResultPayload, when there is one
    retries: int = 0


@dataclass(slots=True)
class ReclaimReport:
    """What one ``JobLifecycle.reclaim`` call did with the jobs whose lease expired."""

    requeued: list[str] = field(default_factory=list)
    dead: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A job that will not run again unless an operator requeues it, and why."""

    id: str
    queue: str
    body: bytes
    reason: str
    failed_at: float
    deaths: int = 0
    priority: int = 5


@dataclass(frozen=True, slots=True)
class QueueStats:
    """One queue's job counts: ready now, delayed (countdown, eta, retry), and leased; the
    ready count per priority (only priorities that have ready jobs); and the body of the ready
    job that has waited longest (enqueue order), from which the admin API reads the queue's
    latency (the broker never decodes bodies)."""

    ready: int = 0
    delayed: int = 0
    leased: int = 0
    ready_by_priority: dict[int, int] = field(default_factory=dict)
    oldest_ready: bytes | None = None


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    """A worker as its last heartbeat described it."""

    name: str
    heartbeat: float
    info: bytes = b"{}"  # JSON: pid, host, queues, concurrency, pool, started, counters


@dataclass(frozen=True, slots=True)
class KVEntry:
    """A coordination key's value and expiry."""

    value: bytes
    expires_at: float | None  # epoch seconds; None = never

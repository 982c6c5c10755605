"""The admin API's records: typed, frozen snapshots of queues, workers, running tasks and dead
letters, built from broker reads. Times are epoch seconds; durations are seconds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """One queue as an operator sees it.

    ``leased`` counts the jobs workers hold under a lease: running now or prefetched;
    ``running`` those the live workers reported running in their last heartbeat.
    ``latency`` is how long the oldest ready task has waited (since it was enqueued or its
    countdown/eta passed): 0 for a queue with no ready task.
    """

    name: str
    ready: int
    delayed: int
    leased: int
    running: int = 0
    ready_by_priority: dict[int, int] = field(default_factory=dict)
    latency: float = 0.0
    paused: bool = False
    paused_at: float | None = None


@dataclass(frozen=True, slots=True)
class RunningTask:
    """A task a worker reported running in its last heartbeat. ``attempt`` is 1 on the first
    run (retries + 1); ``delivery`` grows each time the broker handed the job out."""

    id: str
    name: str
    args: str  # repr of the arguments, shortened
    worker: str  # the worker's name (``w1@host``)
    queue: str
    started: float
    runtime: float
    attempt: int = 1
    delivery: int = 0
    enqueued: float | None = None  # when it was sent (None: a worker too old to say)
    pid: int | None = None  # the process running it: a -P processes child, else the worker


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A worker as its last heartbeat described it.

    ``name`` is the unique lease-owner id (``w1@host/pid-xxxxxx``); ``hostname`` the ``-n``
    name (``w1@host``) that ``-d/--destination`` matches. ``gone`` means it stopped
    heartbeating for longer than a lease: its leased tasks are being handed to other workers.
    ``fetch_state`` is ``fetching``, ``full`` (every slot busy or prefetched), ``paused``
    (every queue of it is paused), ``failing`` (its fetches fail) or ``stopping``;
    ``fetched_at`` is when its fetch loop last got an answer from the broker.
    """

    name: str
    hostname: str
    host: str
    pid: int
    queues: tuple[str, ...]
    pool: str
    concurrency: int
    started: float
    heartbeat: float
    processed: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    dead_lettered: int = 0
    revoked: int = 0
    abandoned_threads: int = 0  # since it started: bodies it stopped waiting for at a hard stop
    memory_rss: int | None = None  # bytes
    running: tuple[RunningTask, ...] = ()
    registered: tuple[str, ...] = ()
    fetch_state: str = "fetching"
    fetched_at: float | None = None
    gone: bool = False
    pool_processes: tuple[int, ...] = ()  # -P processes: the pids of its pool children
    group: str = ""  # the -n name of the ``--processes N`` command it is one process of

    def answers_to(self, name: str) -> bool:
        """Does ``-d/--destination NAME`` address this worker? Its unique name, its ``-n``
        name, or the ``-n`` name of the command that started it with ``--processes N``
        (``w1@host`` addresses ``w1.1@host``, ``w1.2@host``, …: the node the operator named;
        not a worker started alone as ``-n w1.3@host``)."""
        return name in (self.name, self.hostname) or (bool(self.group) and name == self.group)


@dataclass(frozen=True, slots=True)
class DeadLetterInfo:
    """A dead letter: a task that will not run again unless an operator retries it."""

    id: str
    queue: str
    task: str  # "<malformed>" when the message could not be decoded
    args: str  # repr of the arguments, shortened
    reason: str
    failed_at: float
    deaths: int = 0
    priority: int = 5


@dataclass(frozen=True, slots=True)
class AttemptInfo:
    """One run of a task that did not succeed: attempt 1 is the first run."""

    attempt: int
    state: str  # retrying, failed, revoked, or lost (its worker died while it ran)
    at: float  # when it ended
    worker: str | None = None
    runtime: float | None = None
    error: str | None = None  # "ValueError: boom"


@dataclass(frozen=True, slots=True)
class ProgressInfo:
    """What a task last reported with ``update_state``/``progress()`` (progress.py): its state
    (``PROGRESS`` or a custom one), meta (for ``progress()``: done, total, percent, message)
    and when."""

    state: str
    meta: Any
    at: float


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """One task as the history (or, for a running or waiting one, the broker) knows it.

    ``state`` is the operator's name (admin/history.py): waiting, running, succeeded, failed,
    retrying or revoked; ``dead`` says a failed task is kept in the dead letters.
    ``attempts_made`` counts runs (1 on the first); ``attempts`` lists the failed ones with
    their errors. ``result`` is left out (None) for an ``ignore_result`` task; ``error`` and
    ``traceback`` are the latest failure's. ``next_attempt`` is when a retrying task runs again.
    ``progress`` is what it last reported while running (``task(id)`` only; kept as long as
    its result, not shown once it succeeded, dropped when its dead letter is retried).
    """

    id: str
    name: str
    queue: str
    state: str
    args: str = ""
    priority: int = 5
    enqueued: float | None = None
    started: float | None = None
    finished: float | None = None
    runtime: float | None = None
    attempts_made: int = 1
    worker: str | None = None
    result: Any = None
    error: str | None = None
    traceback: str | None = None
    dead: bool = False
    next_attempt: float | None = None
    attempts: tuple[AttemptInfo, ...] = ()
    progress: ProgressInfo | None = None
    # Its place in a workflow (docs/workflows.md): the group it is a member (or the chord body)
    # of, the task that enqueued it, the workflow's first task, and for a chord's header task or
    # body the chord (its group's id).
    group: str | None = None
    parent: str | None = None
    root: str | None = None
    chord: str | None = None


@dataclass(frozen=True, slots=True)
class MinuteInfo:
    """One task name's runs in one minute (``minute``: its start, epoch seconds)."""

    minute: int
    processed: int
    failed: int
    retried: int
    runtime: float  # seconds, summed over the runs


@dataclass(frozen=True, slots=True)
class TaskCounts:
    """One task name's runs over a window: runs ended (successes, failures and retries),
    failures, retries, their total and mean seconds, and the per-minute series (oldest first;
    minutes with no run are left out)."""

    name: str
    processed: int
    failed: int
    retried: int
    runtime: float
    mean_runtime: float | None  # None when nothing ran
    minutes: tuple[MinuteInfo, ...] = ()


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing. ``next_offset`` is the offset of the next page (None: this is the
    last). ``total`` is the number of matching items, when it is known without reading them all
    (an unfiltered listing); a filtered listing leaves it None.

    ``searched_records`` is set when a text search of the task history was bounded (Redis: no
    text index) and stopped before the oldest record: it read only the newest that many
    records, the oldest of them from ``searched_until`` (epoch seconds, when known). Older
    matches may exist: narrow the search with a state, a task name or a time range."""

    items: tuple[T, ...]
    offset: int
    limit: int
    next_offset: int | None = None
    total: int | None = None
    searched_records: int | None = None
    searched_until: float | None = None


@dataclass(frozen=True, slots=True)
class ActionInfo:
    """One action an operator took through the dashboard or the HTTP API: ``actor`` is the
    user's name ("anonymous" behind a host application's own auth), ``action`` a dotted verb
    (``queue.pause``, ``task.revoke``, ``dead.retry``...), ``target`` what it acted on (a
    queue, a task id, a filter) and ``detail`` anything else worth keeping (``terminate=True``)."""

    at: float
    actor: str
    action: str
    target: str
    detail: str = ""

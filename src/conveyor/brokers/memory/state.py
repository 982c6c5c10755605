"""The memory broker's state, shared by its parts: jobs in a dict, ready and delayed heaps,
results, revokes, dead letters, workers and coordination keys, all behind one lock.

One ``threading.Condition`` guards everything, so every broker call is atomic; a blocked
``fetch`` or ``wait`` sleeps on it and is woken by the calls that make work ready or finish a
task. Heap entries
are never removed in place: an entry whose ``seq`` no longer matches its job's is stale and
skipped when it reaches the top.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from dataclasses import dataclass

from ..records import DeadLetter, JobSpec, KVEntry, StatusRecord, WorkerRecord


@dataclass(slots=True)
class Job:
    id: str
    queue: str
    priority: int
    seq: int
    body: bytes
    eta: float | None
    retries: int
    owner: str | None = None
    lease_expires: float = 0.0
    delivery: int = 0  # negative: not handed out since its last retry (see Delivery.redelivered)
    deaths: int = 0
    info: bytes | None = None
    running: bool = False  # its worker said it started it: losing it counts a death


@dataclass(slots=True)
class Group:
    """A workflow group (workflows.py): its members' slots fill as they join."""

    size: int
    body: JobSpec | None
    expires_at: float
    slots: list[tuple[str, bytes | None] | None]
    joined: int = 0
    failed: bool = False


class MemoryParts:
    """What the broker's mixins share: the state (set up by ``MemoryBroker``) and the two ways
    a job enters a queue. Call every method with ``_cond`` held."""

    _cond: threading.Condition
    _seq: itertools.count[int]
    _jobs: dict[str, Job]
    _ready: dict[str, list[tuple[int, int, str]]]  # queue -> heap of (-priority, seq, id)
    _delayed: list[tuple[float, int, str]]  # heap of (eta, seq, id)
    _results: dict[str, tuple[StatusRecord, float]]  # id -> (record, expires_at)
    _revoked: dict[str, tuple[bool, float]]  # id -> (terminate, expires_at)
    _dead: dict[str, DeadLetter]
    _workers: dict[str, WorkerRecord]
    _kv: dict[str, KVEntry]
    _groups: dict[str, Group]

    def _add_job(self, spec: JobSpec, now: float) -> bool:
        """Enqueue one job unless its id is known (queued, leased or with a live result)."""
        stored = self._results.get(spec.id)
        if spec.id in self._jobs or (stored is not None and stored[1] > now):
            return False
        job = Job(spec.id, spec.queue, spec.priority, 0, spec.body, None, spec.retries)
        self._jobs[spec.id] = job
        if spec.eta is not None and spec.eta > now:
            self._push_delayed(job, spec.eta)
        else:
            self._push_ready(job)
        return True

    def _history_requeued(self, task_id: str) -> None:
        """A dead letter is back in its queue (history.py records it)."""

    def _push_ready(self, job: Job, keep_place: bool = False) -> None:
        """Make the job ready; ``keep_place`` (a release or a reclaim) keeps its original enqueue
        order, so a job given back goes ahead of newer ones, as on the other brokers."""
        job.eta = None
        job.owner = None
        if not keep_place:
            job.seq = next(self._seq)
        heapq.heappush(self._ready.setdefault(job.queue, []), (-job.priority, job.seq, job.id))

    def _push_delayed(self, job: Job, eta: float) -> None:
        job.eta = eta
        job.owner = None
        job.seq = next(self._seq)
        heapq.heappush(self._delayed, (eta, job.seq, job.id))

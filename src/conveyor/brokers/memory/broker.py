"""In-process broker for tests and for trying things out: ``memory://``.

Keeps everything in dicts and heaps behind one lock; a worker and producers in the same
process share it (it is per ``MemoryBroker`` instance, and ``broker_from_url`` returns the same
instance for the same URL within a process). Nothing survives the process.

This module is the job lifecycle; admin.py the operator's calls, coordination.py the key/value
store, state.py the state they share.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Collection, Sequence

from ... import states
from ..base import LOST_SUFFIX, Broker, LostContinuation
from ..payloads import revoked_payload, worker_lost_payload, worker_lost_reason
from ..records import (
    WORKFLOW_MARK,
    DeadLetter,
    Delivery,
    JobSpec,
    Outcome,
    ReclaimReport,
    StatusRecord,
    WorkerRecord,
)
from .admin import MemoryAdmin
from .coordination import MemoryCoordination
from .history import MemoryHistory
from .state import Job
from .workflows import MemoryWorkflows


class MemoryBroker(MemoryAdmin, MemoryCoordination, MemoryHistory, MemoryWorkflows, Broker):
    """The in-process broker. Thread-safe.

    >>> broker = MemoryBroker()
    >>> broker.enqueue([JobSpec("id-1", "default", b"{}")])
    [True]
    """

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._cond = threading.Condition()
        self._seq = itertools.count()
        # (The attributes' types and meanings are in state.py.)
        self._jobs = {}
        self._ready = {}
        self._delayed = []
        self._results = {}
        self._revoked = {}
        self._dead = {}
        self._workers = {}
        self._kv = {}
        self._history = {}
        self._counters = {}
        self._groups = {}

    # -- helpers (call with the lock held) -------------------------------------------------
    def _live_result(self, task_id: str) -> bool:
        stored = self._results.get(task_id)
        return stored is not None and stored[1] > time.time()

    def _store(self, task_id: str, state: str, payload: bytes | None, ttl: float, retries: int = 0) -> None:
        self._results[task_id] = (StatusRecord(state, payload, retries), time.time() + ttl)

    def _promote(self, now: float) -> None:
        while self._delayed and self._delayed[0][0] <= now:
            _, seq, job_id = heapq.heappop(self._delayed)
            job = self._jobs.get(job_id)
            if job is not None and job.owner is None and job.eta is not None and job.seq == seq:
                self._push_ready(job)

    def _revoked_result(self, task_id: str, ttl: float) -> None:
        self._store(task_id, states.REVOKED, revoked_payload(), ttl)

    # -- producers -------------------------------------------------------------------------
    def enqueue(self, jobs: Sequence[JobSpec]) -> list[bool]:
        added: list[bool] = []
        now = time.time()
        with self._cond:
            for spec in jobs:
                added.append(self._add_job(spec, now))
            self._cond.notify_all()
        return added

    def status(self, task_id: str) -> StatusRecord | None:
        with self._cond:
            return self._status(task_id)

    def _status(self, task_id: str) -> StatusRecord | None:
        stored = self._results.get(task_id)
        if stored is not None and stored[1] > time.time():
            return stored[0]
        job = self._jobs.get(task_id)
        if job is None:
            return None
        if job.owner is not None:
            return StatusRecord(states.STARTED, None, job.retries)
        if job.retries > 0:
            return StatusRecord(states.RETRY, job.info, job.retries)
        return StatusRecord(states.PENDING, None, 0)

    def wait(self, task_id: str, timeout: float | None) -> StatusRecord | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                record = self._status(task_id)
                if record is not None and record.state in states.READY_STATES:
                    return record
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return record
                self._cond.wait(remaining if remaining is not None else 1.0)

    def revoke(
        self, task_ids: Sequence[str], terminate: bool, ttl: float, lost: LostContinuation | None = None
    ) -> None:
        with self._cond:
            for task_id in task_ids:
                self._revoked[task_id] = (terminate, time.time() + ttl)
                job = self._jobs.get(task_id)
                # (Without ``lost`` a workflow step stays queued: the fetch hands it out flagged
                # revoked, and its worker ends its workflow.)
                if job is not None and job.owner is None and (lost or WORKFLOW_MARK not in job.body):
                    del self._jobs[task_id]
                    self._revoked_result(task_id, ttl)
                    then = lost(task_id, job.body, states.REVOKED, revoked_payload()) if lost else None
                    if then is not None:
                        self._continue(then, ttl)
            self._cond.notify_all()

    def forget(self, task_id: str) -> None:
        with self._cond:
            self._results.pop(task_id, None)

    # -- workers ---------------------------------------------------------------------------
    def fetch(
        self, queues: Sequence[str], owner: str, limit: int, lease_timeout: float, wait: float
    ) -> list[Delivery]:
        deadline = time.monotonic() + wait
        with self._cond:
            while True:
                now = time.time()
                self._promote(now)
                out = self._take(queues, owner, limit, now + lease_timeout)
                remaining = deadline - time.monotonic()
                if out or remaining <= 0:
                    return out
                if self._delayed:
                    remaining = min(remaining, max(0.0, self._delayed[0][0] - now))
                self._cond.wait(remaining)

    def _take(self, queues: Sequence[str], owner: str, limit: int, lease_until: float) -> list[Delivery]:
        out: list[Delivery] = []
        while len(out) < limit:
            best: tuple[int, int, str] | None = None
            best_queue = ""
            for queue in queues:
                heap = self._ready.get(queue)
                while heap:
                    _, seq, job_id = heap[0]
                    job = self._jobs.get(job_id)
                    if job is None or job.owner is not None or job.eta is not None or job.seq != seq:
                        heapq.heappop(heap)  # stale entry
                        continue
                    if best is None or heap[0] < best:
                        best, best_queue = heap[0], queue
                    break
            if best is None:
                break
            heapq.heappop(self._ready[best_queue])
            job = self._jobs[best[2]]
            # A live revoke: handed out flagged (records.py Delivery.revoked).
            revoke = self._revoked.get(job.id)
            revoked = revoke is not None and revoke[1] > time.time()
            job.owner, job.lease_expires, job.running = owner, lease_until, False
            redelivered = job.delivery > 0
            job.delivery = abs(job.delivery) + 1
            out.append(Delivery(job.id, job.queue, job.body, job.delivery, job.deaths, redelivered, revoked))
        return out

    def settle(self, outcomes: Sequence[Outcome], result_ttl: float) -> None:
        with self._cond:
            current: list[Outcome] = []
            for o in outcomes:
                job = self._jobs.get(o.id)
                if job is None or job.delivery != o.delivery or job.owner is None:
                    continue  # stale: the job was reclaimed and handed out again, or is gone
                current.append(o)
                if o.kind == "ack":
                    del self._jobs[o.id]
                    if o.state is not None:
                        self._store(o.id, o.state, o.payload, result_ttl, o.retries)
                    if o.then is not None:
                        self._continue(o.then, result_ttl)
                elif o.kind == "retry":
                    job.body, job.retries = o.body or job.body, o.retries
                    job.delivery, job.running = -job.delivery, False
                    job.info = o.payload if o.payload is not None else job.info
                    self._push_delayed(job, o.eta or time.time())
                elif o.kind == "dead":
                    del self._jobs[o.id]
                    self._dead[o.id] = DeadLetter(
                        o.id,
                        job.queue,
                        o.body or job.body,
                        o.reason or "",
                        time.time(),
                        job.deaths,
                        job.priority,
                    )
                    self._store(o.id, states.FAILURE, o.payload, result_ttl, o.retries)
                    if o.then is not None:
                        self._continue(o.then, result_ttl)
                elif o.kind == "died":
                    job.deaths, job.running = max(job.deaths, 0) + 1, False
                    if o.reason:
                        del self._jobs[o.id]
                        self._dead[o.id] = DeadLetter(
                            o.id, job.queue, job.body, o.reason, time.time(), job.deaths, job.priority
                        )
                        self._store(o.id, states.FAILURE, o.payload, result_ttl, o.retries)
                        if o.then is not None:
                            self._continue(o.then, result_ttl)
                    else:
                        self._push_ready(job, keep_place=True)
                elif o.kind == "start":
                    job.deaths = -1
                elif o.kind == "running":
                    job.running = True
                else:  # release
                    job.deaths, job.running = max(job.deaths, 0), False
                    self._push_ready(job, keep_place=True)
            self._record(current)
            self._cond.notify_all()

    def heartbeat(
        self, owner: str, lease_timeout: float, info: bytes, running: Sequence[tuple[str, int]] = ()
    ) -> dict[str, bool]:
        now = time.time()
        revoked: dict[str, bool] = {}
        with self._cond:
            self._workers[owner] = WorkerRecord(owner, now, info)
            for task_id, delivery in running:
                marked = self._jobs.get(task_id)
                if marked is not None and marked.owner == owner and marked.delivery == delivery:
                    marked.running = True
            for job in self._jobs.values():
                if job.owner == owner:
                    job.lease_expires = now + lease_timeout
                    if job.id in self._revoked:
                        revoked[job.id] = self._revoked[job.id][0]
        return revoked

    def reclaim(
        self, max_deaths: int, result_ttl: float, lost: LostContinuation | None = None
    ) -> ReclaimReport:
        report = ReclaimReport()
        now = time.time()
        with self._cond:
            for job in list(self._jobs.values()):
                if job.owner is None or job.lease_expires > now:
                    continue
                if job.deaths >= 0 and job.running:
                    job.deaths += 1
                job.running = False
                if job.deaths < 0 or job.deaths >= max_deaths:
                    self._dead_letter_lost(job, now, result_ttl, lost)
                    report.dead.append(job.id)
                else:
                    self._push_ready(job, keep_place=True)
                    report.requeued.append(job.id)
            if report.requeued or report.dead:
                self._cond.notify_all()
        return report

    def _dead_letter_lost(
        self, job: Job, now: float, result_ttl: float, lost: LostContinuation | None
    ) -> None:
        reason = worker_lost_reason(job.deaths)
        del self._jobs[job.id]
        self._dead[job.id] = DeadLetter(job.id, job.queue, job.body, reason, now, job.deaths, job.priority)
        payload = worker_lost_payload(reason, job.retries)
        self._store(job.id, states.FAILURE, payload, result_ttl, job.retries)
        then = lost(job.id, job.body, states.FAILURE, payload) if lost else None
        if then is not None:
            self._continue(then, result_ttl)

    def reconcile(self, owner: str, held: Collection[str]) -> list[str]:
        given_back: list[str] = []
        keep = set(held)
        with self._cond:
            for job in list(self._jobs.values()):
                if job.owner != owner or job.id in keep:
                    continue
                if job.deaths < 0:
                    # An at-most-once task that started: never run it again. Parked for the
                    # next reclaim, which dead-letters it with its workflow's continuation.
                    job.owner, job.lease_expires = owner + LOST_SUFFIX, 0.0
                else:
                    job.running = False
                    self._push_ready(job, keep_place=True)
                given_back.append(job.id)
            if given_back:
                self._cond.notify_all()
        return given_back

    def unregister_worker(self, owner: str) -> None:
        with self._cond:
            self._workers.pop(owner, None)

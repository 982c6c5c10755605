"""In-process broker for tests and for trying things out: ``memory://``.

Keeps everything in dicts and heaps behind one lock; a worker and producers in the same
process share it (it is per ``MemoryBroker`` instance, and ``broker_from_url`` returns the same
instance for the same URL within a process). Nothing survives the process.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from .. import states
from .base import (
    Broker,
    DeadLetter,
    Delivery,
    JobSpec,
    KVEntry,
    Outcome,
    QueueStats,
    ReclaimReport,
    StatusRecord,
    WorkerRecord,
)
from .payloads import revoked_payload, worker_lost_payload, worker_lost_reason

WORKER_EXPIRY = 30.0  # a worker with no heartbeat for this long is not listed


@dataclass(slots=True)
class _Job:
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


class MemoryBroker(Broker):
    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._jobs: dict[str, _Job] = {}
        self._ready: dict[str, list[tuple[int, int, str]]] = {}
        self._delayed: list[tuple[float, int, str]] = []
        self._results: dict[str, tuple[StatusRecord, float]] = {}
        self._revoked: dict[str, tuple[bool, float]] = {}
        self._dead: dict[str, DeadLetter] = {}
        self._workers: dict[str, WorkerRecord] = {}
        self._kv: dict[str, KVEntry] = {}

    # -- helpers (call with the lock held) -------------------------------------------------
    def _live_result(self, task_id: str) -> bool:
        stored = self._results.get(task_id)
        return stored is not None and stored[1] > time.time()

    def _push_ready(self, job: _Job, keep_place: bool = False) -> None:
        """Make the job ready; ``keep_place`` (a release or a reclaim) keeps its original enqueue
        order, so a job given back goes ahead of newer ones, as on the other brokers."""
        job.eta = None
        job.owner = None
        if not keep_place:
            job.seq = next(self._seq)
        heapq.heappush(self._ready.setdefault(job.queue, []), (-job.priority, job.seq, job.id))

    def _push_delayed(self, job: _Job, eta: float) -> None:
        job.eta = eta
        job.owner = None
        job.seq = next(self._seq)
        heapq.heappush(self._delayed, (eta, job.seq, job.id))

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
                if spec.id in self._jobs or self._live_result(spec.id):
                    added.append(False)
                    continue
                job = _Job(spec.id, spec.queue, spec.priority, 0, spec.body, None, spec.retries)
                self._jobs[spec.id] = job
                if spec.eta is not None and spec.eta > now:
                    self._push_delayed(job, spec.eta)
                else:
                    self._push_ready(job)
                added.append(True)
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

    def revoke(self, task_ids: Sequence[str], terminate: bool, ttl: float) -> None:
        with self._cond:
            for task_id in task_ids:
                self._revoked[task_id] = (terminate, time.time() + ttl)
                job = self._jobs.get(task_id)
                if job is not None and job.owner is None:
                    del self._jobs[task_id]
                    self._revoked_result(task_id, ttl)
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
            if job.id in self._revoked:
                del self._jobs[job.id]
                self._revoked_result(job.id, 86400.0)
                continue
            job.owner, job.lease_expires, job.running = owner, lease_until, False
            redelivered = job.delivery > 0
            job.delivery = abs(job.delivery) + 1
            out.append(Delivery(job.id, job.queue, job.body, job.delivery, job.deaths, redelivered))
        return out

    def settle(self, outcomes: Sequence[Outcome], result_ttl: float) -> None:
        with self._cond:
            for o in outcomes:
                job = self._jobs.get(o.id)
                if job is None or job.delivery != o.delivery or job.owner is None:
                    continue  # stale: the job was reclaimed and handed out again, or is gone
                if o.kind == "ack":
                    del self._jobs[o.id]
                    if o.state is not None:
                        self._store(o.id, o.state, o.payload, result_ttl, o.retries)
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
                elif o.kind == "start":
                    job.deaths = -1
                elif o.kind == "running":
                    job.running = True
                else:  # release
                    job.deaths, job.running = max(job.deaths, 0), False
                    self._push_ready(job, keep_place=True)
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

    def reclaim(self, max_deaths: int, result_ttl: float) -> ReclaimReport:
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
                    self._dead_letter_lost(job, now, result_ttl)
                    report.dead.append(job.id)
                else:
                    self._push_ready(job, keep_place=True)
                    report.requeued.append(job.id)
            if report.requeued or report.dead:
                self._cond.notify_all()
        return report

    def _dead_letter_lost(self, job: _Job, now: float, result_ttl: float) -> None:
        reason = worker_lost_reason(job.deaths)
        del self._jobs[job.id]
        self._dead[job.id] = DeadLetter(job.id, job.queue, job.body, reason, now, job.deaths, job.priority)
        payload = worker_lost_payload(reason, job.retries)
        self._store(job.id, states.FAILURE, payload, result_ttl, job.retries)

    def reconcile(self, owner: str, held: Collection[str]) -> list[str]:
        given_back: list[str] = []
        keep = set(held)
        with self._cond:
            for job in list(self._jobs.values()):
                if job.owner != owner or job.id in keep:
                    continue
                if job.deaths < 0:  # an at-most-once task that started: never run it again
                    self._dead_letter_lost(job, time.time(), 86400.0)
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

    # -- operators -------------------------------------------------------------------------
    def queue_stats(self) -> dict[str, QueueStats]:
        counts: dict[str, list[int]] = {}
        with self._cond:
            for job in self._jobs.values():
                c = counts.setdefault(job.queue, [0, 0, 0])
                c[2 if job.owner is not None else 1 if job.eta is not None else 0] += 1
        return {q: QueueStats(*c) for q, c in sorted(counts.items())}

    def purge(self, queues: Sequence[str]) -> int:
        with self._cond:
            doomed = [j.id for j in self._jobs.values() if j.queue in queues and j.owner is None]
            for job_id in doomed:
                del self._jobs[job_id]
            return len(doomed)

    def workers(self) -> list[WorkerRecord]:
        cutoff = time.time() - WORKER_EXPIRY
        with self._cond:
            return sorted((w for w in self._workers.values() if w.heartbeat >= cutoff), key=lambda w: w.name)

    def dead_letters(self, limit: int = 100, offset: int = 0) -> list[DeadLetter]:
        with self._cond:
            ordered = sorted(self._dead.values(), key=lambda d: d.failed_at, reverse=True)
        return ordered[offset : offset + limit]

    def requeue_dead(self, task_ids: Sequence[str]) -> int:
        moved = 0
        with self._cond:
            for task_id in task_ids:
                dead = self._dead.pop(task_id, None)
                if dead is None or task_id in self._jobs:
                    continue
                self._results.pop(task_id, None)
                self._revoked.pop(task_id, None)
                job = _Job(task_id, dead.queue, dead.priority, 0, dead.body, None, 0)
                self._jobs[task_id] = job
                self._push_ready(job)
                moved += 1
            self._cond.notify_all()
        return moved

    def purge_dead(self) -> int:
        with self._cond:
            count = len(self._dead)
            self._dead.clear()
            return count

    def cleanup(self, dead_letter_ttl: float) -> None:
        now = time.time()
        with self._cond:
            for key in [k for k, (_, exp) in self._results.items() if exp <= now]:
                del self._results[key]
            for key in [k for k, (_, exp) in self._revoked.items() if exp <= now]:
                del self._revoked[key]
            for key in [k for k, d in self._dead.items() if d.failed_at + dead_letter_ttl <= now]:
                del self._dead[key]

    # -- coordination primitives -------------------------------------------------------------
    def _live(self, key: str) -> KVEntry | None:
        entry = self._kv.get(key)
        if entry is not None and entry.expires_at is not None and entry.expires_at <= time.time():
            del self._kv[key]
            return None
        return entry

    def kv_get(self, key: str) -> KVEntry | None:
        with self._cond:
            return self._live(key)

    def kv_put(self, key: str, value: bytes, ttl: float | None = None, only_if_absent: bool = False) -> bool:
        with self._cond:
            if only_if_absent and self._live(key) is not None:
                return False
            self._kv[key] = KVEntry(value, None if ttl is None else time.time() + ttl)
            return True

    def kv_compare_and_set(
        self, key: str, expected: bytes | None, value: bytes | None, ttl: float | None = None
    ) -> bool:
        with self._cond:
            current = self._live(key)
            if (current.value if current else None) != expected:
                return False
            if value is None:
                self._kv.pop(key, None)
            else:
                self._kv[key] = KVEntry(value, None if ttl is None else time.time() + ttl)
            return True

    def kv_scan(self, prefix: str) -> dict[str, KVEntry]:
        with self._cond:
            keys = [k for k in self._kv if k.startswith(prefix)]
            return {k: e for k in keys if (e := self._live(k)) is not None}

    def kv_incr(self, key: str, amount: int = 1) -> int:
        with self._cond:
            current = self._live(key)
            value = int(current.value) + amount if current else amount
            self._kv[key] = KVEntry(str(value).encode(), current.expires_at if current else None)
            return value

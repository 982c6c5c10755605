"""The operator half of the memory broker: queue stats, purge, workers, dead letters, cleanup."""

from __future__ import annotations

import time
from collections.abc import Sequence

from ..base import BrokerAdmin
from ..records import DeadLetter, QueueStats, WorkerRecord
from .state import Job, MemoryParts

WORKER_EXPIRY = 30.0  # a worker with no heartbeat for this long is not listed


class MemoryAdmin(MemoryParts, BrokerAdmin):
    def queue_stats(self) -> dict[str, QueueStats]:
        counts: dict[str, list[int]] = {}
        by_priority: dict[str, dict[int, int]] = {}
        oldest: dict[str, Job] = {}
        with self._cond:
            for job in self._jobs.values():
                c = counts.setdefault(job.queue, [0, 0, 0])
                kind = 2 if job.owner is not None else 1 if job.eta is not None else 0
                c[kind] += 1
                if kind == 0:
                    per = by_priority.setdefault(job.queue, {})
                    per[job.priority] = per.get(job.priority, 0) + 1
                    first = oldest.get(job.queue)
                    if first is None or job.seq < first.seq:
                        oldest[job.queue] = job
        return {
            q: QueueStats(c[0], c[1], c[2], dict(sorted(by_priority.get(q, {}).items())), _body(oldest, q))
            for q, c in sorted(counts.items())
        }

    def bring_forward(self, task_ids: Sequence[str]) -> int:
        moved = 0
        with self._cond:
            for task_id in dict.fromkeys(task_ids):
                job = self._jobs.get(task_id)
                if job is not None and job.owner is None and job.eta is not None:
                    self._push_ready(job)  # its heap entry goes stale (_promote checks seq)
                    moved += 1
            if moved:
                self._cond.notify_all()
        return moved

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

    def dead_letter_count(self) -> int:
        with self._cond:
            return len(self._dead)

    def delete_dead(self, task_ids: Sequence[str]) -> int:
        with self._cond:
            return sum(self._dead.pop(task_id, None) is not None for task_id in task_ids)

    def requeue_dead(self, task_ids: Sequence[str]) -> int:
        moved = 0
        with self._cond:
            for task_id in task_ids:
                dead = self._dead.pop(task_id, None)
                if dead is None or task_id in self._jobs:
                    continue
                self._results.pop(task_id, None)
                self._revoked.pop(task_id, None)
                job = Job(task_id, dead.queue, dead.priority, 0, dead.body, None, 0)
                self._jobs[task_id] = job
                self._push_ready(job)
                self._history_requeued(task_id)
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
            for key in [k for k, g in self._groups.items() if g.expires_at <= now]:
                del self._groups[key]


def _body(oldest: dict[str, Job], queue: str) -> bytes | None:
    job = oldest.get(queue)
    return None if job is None else job.body

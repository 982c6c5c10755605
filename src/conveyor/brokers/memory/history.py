"""The memory broker's task history: a dict of records by id and a dict of minute counters.

``settle`` calls ``_record`` (with the lock held) for each current outcome that carries an entry;
reads sort by time, which is fine for a broker that lives as long as one test.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from ..base import TaskHistory
from ..history import COUNTERS_KEPT, matches, requeued_record, tally
from ..records import HeldJob, HistoryEntry, HistoryQuery, HistoryRow, MinuteCounts, Outcome, PendingJob
from .state import MemoryParts


@dataclass(slots=True)
class _Stored:
    at: float
    record: bytes
    payload: bytes | None
    attempts: tuple[bytes, ...]


class MemoryHistory(MemoryParts, TaskHistory):
    _history: dict[str, _Stored]
    _counters: dict[tuple[int, str], list[float]]

    def _record(self, outcomes: list[Outcome]) -> None:
        """Store the entries of these settled outcomes and count them (lock held)."""
        entries: list[HistoryEntry] = []
        for o in outcomes:
            entry = o.history
            if entry is None:
                continue
            old = self._history.pop(o.id, None)  # re-inserted: the dict stays in time order
            attempts = old.attempts if old is not None else ()
            if entry.attempt is not None:
                attempts = (*attempts, *entry.attempt.split(b"\n"))  # one or more, as stored elsewhere
            self._history[o.id] = _Stored(entry.at, entry.record, o.payload, attempts)
            entries.append(entry)
        for key, (processed, failed, retried, runtime) in tally(entries).items():
            row = self._counters.setdefault(key, [0, 0, 0, 0.0])
            row[0] += processed
            row[1] += failed
            row[2] += retried
            row[3] += runtime

    def record_history(self, entries: Sequence[tuple[str, HistoryEntry, bytes | None]]) -> None:
        with self._cond:
            self._record([Outcome("ack", i, 0, payload=p, history=e) for i, e, p in entries])

    def _history_requeued(self, task_id: str) -> None:
        """A dead letter back in its queue: its record says it is waiting again (lock held)."""
        s = self._history.get(task_id)
        if s is not None:
            s.record = requeued_record(s.record)

    def history(self, query: HistoryQuery, limit: int = 50, offset: int = 0) -> list[HistoryRow]:
        with self._cond:
            items = list(self._history.items())
        found = [
            HistoryRow(task_id, s.record, s.payload, s.attempts)
            for task_id, s in sorted(items, key=lambda item: item[1].at, reverse=True)
            if matches(query, task_id, s.record, s.at)
        ]
        return found[offset : offset + limit]

    def pending(self, delayed: bool, limit: int = 50, offset: int = 0) -> list[PendingJob]:
        with self._cond:
            jobs = [j for j in self._jobs.values() if j.owner is None and (j.eta is not None) == delayed]
            if delayed:
                jobs.sort(key=lambda j: (j.eta or 0.0, j.seq))
            else:
                jobs.sort(key=lambda j: j.seq, reverse=True)
            return [PendingJob(j.id, j.queue, j.body, j.priority, j.eta, j.retries, j.deaths) for j in jobs][
                offset : offset + limit
            ]

    def pending_job(self, task_id: str) -> PendingJob | None:
        with self._cond:
            j = self._jobs.get(task_id)
            if j is None or j.owner is not None:
                return None
            return PendingJob(j.id, j.queue, j.body, j.priority, j.eta, j.retries, j.deaths)

    def held_job(self, task_id: str) -> HeldJob | None:
        with self._cond:
            j = self._jobs.get(task_id)
            if j is None or j.owner is None:
                return None
            return HeldJob(j.id, j.queue, j.body, j.owner, j.deaths, j.priority, j.retries)

    def history_row(self, task_id: str) -> HistoryRow | None:
        with self._cond:
            s = self._history.get(task_id)
        return None if s is None else HistoryRow(task_id, s.record, s.payload, s.attempts)

    def counters(self, since: float, until: float, name: str | None = None) -> list[MinuteCounts]:
        with self._cond:
            rows = [(k, list(v)) for k, v in self._counters.items()]
        return [
            MinuteCounts(m, n, int(v[0]), int(v[1]), int(v[2]), v[3])
            for (m, n), v in sorted(rows)
            if since <= m < until and (name is None or n == name)
        ]

    def trim_history(self, max_records: int, older_than: float) -> int:
        with self._cond:
            doomed = [task_id for task_id, s in self._history.items() if s.at < older_than]
            for task_id in doomed:
                del self._history[task_id]
            by_age = sorted(self._history, key=lambda task_id: self._history[task_id].at)
            excess = by_age[: max(0, len(by_age) - max_records)]
            for task_id in excess:
                del self._history[task_id]
            cutoff = time.time() - COUNTERS_KEPT
            for key in [k for k in self._counters if k[0] < cutoff]:
                del self._counters[key]
        return len(doomed) + len(excess)

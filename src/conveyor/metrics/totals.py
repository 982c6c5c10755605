"""Monotonic task counters from the broker's per-minute counters.

The broker keeps, per task name and minute, the runs ended, failures, retries and total
runtime, for three days (brokers/history.py). Summing the kept minutes would not make a
Prometheus counter: the sum *drops* when the oldest minute expires, and ``rate()`` would read
each drop as a reset and report a burst that never happened. So this exporter keeps the totals
itself: it starts from the sum of the hour before it started (``BACKFILL``: a bounded first
scrape, however long the broker keeps counters), then adds each minute once, when the minute
is closed — ``CLOSE_AFTER`` seconds after it ended, so that settles still in flight
(workers settle in batches) have landed. The counters therefore lag by one to two minutes, and
restart from that hour's sum when the exporter restarts (Prometheus treats that as a counter
reset, which ``rate()`` handles). Queue lengths, latency and workers are read live at every
scrape; only these counters lag.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from ..admin import Admin
from ..brokers.history import minute

CLOSE_AFTER = 30.0  # seconds after a minute ends before it is counted
BACKFILL = 3600.0  # seconds of kept counters the totals start from


@dataclass(slots=True)
class TaskTotals:
    """One task name's totals since the exporter started (plus the kept history before)."""

    processed: int = 0
    failed: int = 0
    retried: int = 0
    runtime: float = 0.0

    @property
    def succeeded(self) -> int:
        # runs ended = successes + failures + retries (a revoke is not a run)
        return self.processed - self.failed - self.retried


class Totals:
    """The running totals per task name; ``update`` adds the minutes closed since the last one."""

    def __init__(self) -> None:
        self.by_task: dict[str, TaskTotals] = {}
        self.counted_until: float | None = None  # minutes starting before this are counted
        self._lock = threading.Lock()  # two scrapes at once must not count a minute twice

    def update(self, admin: Admin, now: float) -> dict[str, TaskTotals]:
        with self._lock:
            until = float(minute(now - CLOSE_AFTER - 60) + 60)  # the end of the last closed minute
            since = self.counted_until if self.counted_until is not None else until - BACKFILL
            if until > since:
                for row in admin.counters(since=since, until=until):
                    totals = self.by_task.setdefault(row.name, TaskTotals())
                    totals.processed += row.processed
                    totals.failed += row.failed
                    totals.retried += row.retried
                    totals.runtime += row.runtime
                self.counted_until = until
            return {
                name: TaskTotals(t.processed, t.failed, t.retried, t.runtime)
                for name, t in self.by_task.items()
            }

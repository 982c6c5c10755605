"""The worker's heartbeat thread: renews leases, learns of revokes, reclaims dead workers' jobs.

It is a thread, not a coroutine, on purpose: a sync task on the solo pool (or a CPU-bound one
holding the event loop) must not stop the heartbeat, or a long task on a live worker would
look dead and run twice — the failure Celery's fixed visibility timeout is known for.

Each heartbeat also tells the broker which tasks are running now, so that a worker's death
counts against those tasks only, never against the jobs it merely held in its prefetch. And it
reads which queues are paused (one key/value scan), so a pause reaches every worker within a
heartbeat and a worker started later honours it before its first fetch.

After the broker was unreachable (or a heartbeat took longer than a lease), every worker's
leases may have expired meanwhile, live or not. Reclaiming at once would take the leases of
live peers that have not had their turn to heartbeat yet and run their tasks again (tasks
already finished, their acks only waiting to be sent). So a keeper that has just got through
again waits one lease timeout before it reclaims anything: every live peer renews in that
time, and only the dead stay expired.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from ..brokers import Broker, LostContinuation
from ..coordination.pauses import paused_queues

logger = logging.getLogger("conveyor.worker")

CLEANUP_EVERY = 60.0


class Keeper:
    def __init__(
        self,
        broker: Broker,
        owner: str,
        interval: float,
        lease_timeout: float,
        max_deaths: int,
        result_ttl: float,
        dead_letter_ttl: float,
        info: Callable[[], bytes],
        running: Callable[[], Sequence[tuple[str, int]]],
        on_revoked: Callable[[dict[str, bool]], None],
        on_trouble: Callable[[], None],
        on_paused: Callable[[frozenset[str]], None] = lambda _paused: None,
        trim_history: Callable[[], object] = lambda: None,
        on_lost: Callable[[list[str]], None] = lambda _dead: None,
        lost: LostContinuation | None = None,
    ) -> None:
        self._lost = lost  # the workflow continuation of a job it dead-letters (canvas/lost.py)
        self._broker = broker
        self._owner = owner
        self._name = owner.rpartition("/")[0] or owner  # the worker's -n name, for log lines
        self._interval = interval
        self._lease_timeout = lease_timeout
        self._max_deaths = max_deaths
        self._result_ttl = result_ttl
        self._dead_letter_ttl = dead_letter_ttl
        self._info = info
        self._running = running
        self._on_revoked = on_revoked
        self._on_trouble = on_trouble
        self._on_paused = on_paused
        self._trim_history = trim_history
        self._on_lost = on_lost  # jobs dead-lettered because their workers died (history)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="conveyor-keeper", daemon=True)
        self._last_cleanup = 0.0
        self._last_beat = 0.0  # monotonic time of the last heartbeat the broker took
        self._reclaim_after = 0.0  # no reclaiming before this (monotonic): see the module doc
        self.healthy = True

    def start(self) -> None:
        self.beat()  # register before fetching anything, so leases are renewed from the start
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=timeout)

    def beat(self) -> None:
        sent = time.monotonic()
        revoked = self._broker.heartbeat(self._owner, self._lease_timeout, self._info(), self._running())
        now = time.monotonic()
        if self._last_beat and now - self._last_beat > self._lease_timeout:
            # The leases of live peers may have expired while nobody could renew them.
            self._reclaim_after = now + max(self._lease_timeout, 2 * self._interval)
            logger.warning(
                "%s: no heartbeat got through for %.1fs; reclaiming no leases for %.1fs so that live "
                "workers renew theirs first",
                self._owner,
                now - self._last_beat,
                self._reclaim_after - now,
            )
        self._last_beat = sent
        if revoked:
            self._on_revoked(revoked)
        self._on_paused(frozenset(paused_queues(self._broker)))

    def _loop(self) -> None:
        failing_since: float | None = None
        while not self._stop.wait(self._interval):
            try:
                self.beat()
                now = time.monotonic()
                if now >= self._reclaim_after:
                    self._reclaim()
                if now - self._last_cleanup >= CLEANUP_EVERY:
                    self._last_cleanup = now
                    self._broker.cleanup(self._dead_letter_ttl)
                    self._trim_history()
                if failing_since is not None:
                    logger.warning("%s: broker reachable again after %.1fs", self._name, now - failing_since)
                    failing_since = None
                self.healthy = True
            except Exception as exc:
                self.healthy = False
                self._on_trouble()
                if failing_since is None:
                    failing_since = time.monotonic()
                    logger.error("%s: heartbeat failed (broker unreachable?): %s", self._name, exc)

    def _reclaim(self) -> None:
        report = self._broker.reclaim(self._max_deaths, self._result_ttl, self._lost)
        for task_id in report.requeued:
            logger.warning("task %s: its worker died; lease expired, requeued", task_id)
        for task_id in report.dead:
            # At-most-once and lost (worker dead, or an acknowledgement lost in a broker crash),
            # or past its max deaths: the dead letter holds which.
            logger.error(
                "task %s: its lease expired and it is not to run again (at-most-once, or its workers "
                "died under it task_max_worker_deaths times); moved to dead letters (see its reason)",
                task_id,
            )
        if report.dead:
            try:
                self._on_lost(report.dead)
            except Exception as exc:  # the dead letters are kept; only their history records miss
                logger.error("could not record the history of %d lost task(s): %s", len(report.dead), exc)

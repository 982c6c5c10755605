"""The worker's heartbeat thread: renews leases, learns of revokes, reclaims dead workers' jobs.

It is a thread, not a coroutine, on purpose: a sync task on the solo pool (or a CPU-bound one
holding the event loop) must not stop the heartbeat, or a long task on a live worker would
look dead and run twice — the failure Celery's fixed visibility timeout is known for.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from ..brokers import Broker

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
        on_revoked: Callable[[dict[str, bool]], None],
    ) -> None:
        self._broker = broker
        self._owner = owner
        self._interval = interval
        self._lease_timeout = lease_timeout
        self._max_deaths = max_deaths
        self._result_ttl = result_ttl
        self._dead_letter_ttl = dead_letter_ttl
        self._info = info
        self._on_revoked = on_revoked
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="conveyor-keeper", daemon=True)
        self._last_cleanup = 0.0
        self.healthy = True

    def start(self) -> None:
        self.beat()  # register before fetching anything, so leases are renewed from the start
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def beat(self) -> None:
        revoked = self._broker.heartbeat(self._owner, self._lease_timeout, self._info())
        if revoked:
            self._on_revoked(revoked)

    def _loop(self) -> None:
        failing_since: float | None = None
        while not self._stop.wait(self._interval):
            try:
                self.beat()
                report = self._broker.reclaim(self._max_deaths, self._result_ttl)
                for task_id in report.requeued:
                    logger.warning("task %s: its worker died; lease expired, requeued", task_id)
                for task_id in report.dead:
                    logger.error("task %s: its worker died on it too often; moved to dead letters", task_id)
                now = time.monotonic()
                if now - self._last_cleanup >= CLEANUP_EVERY:
                    self._last_cleanup = now
                    self._broker.cleanup(self._dead_letter_ttl)
                if failing_since is not None:
                    logger.warning("broker reachable again after %.1fs", now - failing_since)
                    failing_since = None
                self.healthy = True
            except Exception as exc:
                self.healthy = False
                if failing_since is None:
                    failing_since = time.monotonic()
                    logger.error("heartbeat failed (broker unreachable?): %s", exc)

"""One background thread per process that keeps held locks and concurrency slots alive.

A lock or slot is stored with a short TTL and renewed while its holder lives; when the holder
dies (SIGKILL, power loss) the renewals stop and the key expires by itself. Renewing from a
thread, not the event loop, keeps locks alive even while a CPU-bound task holds the loop —
the same reason the worker's heartbeat is a thread.

One shared thread rather than one per lock: a worker running 100 guarded tasks at once needs
100 renewals every few seconds, not 100 threads.

>>> handle = renewer().every(10.0, lambda: True)   # call every 10 s until it returns False
>>> renewer().cancel(handle)
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable

logger = logging.getLogger("conveyor.coordination")


class Renewer:
    """Calls registered functions periodically from a daemon thread.

    A function returns True to be called again after its interval, False to stop (the thing it
    renews is gone). One that raises is logged and tried again at its next turn: a broker
    blip shorter than the TTL must not cost the lock.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int]] = []
        self._jobs: dict[int, tuple[float, Callable[[], bool]]] = {}
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None

    def every(self, interval: float, fn: Callable[[], bool]) -> int:
        """Call ``fn`` every ``interval`` seconds (first call one interval from now); returns a handle."""
        with self._cond:
            handle = next(self._ids)
            self._jobs[handle] = (interval, fn)
            heapq.heappush(self._heap, (time.monotonic() + interval, handle))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="conveyor-renewer", daemon=True)
                self._thread.start()
            self._cond.notify()
        return handle

    def cancel(self, handle: int) -> None:
        """Stop calling the function (a call already running finishes)."""
        with self._cond:
            self._jobs.pop(handle, None)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    if not self._heap:
                        self._cond.wait()
                        continue
                    due, handle = self._heap[0]
                    if handle not in self._jobs:
                        heapq.heappop(self._heap)
                        continue
                    delay = due - time.monotonic()
                    if delay <= 0:
                        heapq.heappop(self._heap)
                        interval, fn = self._jobs[handle]
                        break
                    self._cond.wait(delay)
            try:
                again = fn()
            except Exception:
                logger.exception("renewal failed; trying again in %.1fs", interval)
                again = True
            with self._cond:
                if again and handle in self._jobs:
                    heapq.heappush(self._heap, (time.monotonic() + interval, handle))
                else:
                    self._jobs.pop(handle, None)


_shared: Renewer | None = None
_shared_pid = 0
_shared_lock = threading.Lock()


def renewer() -> Renewer:
    """The process's renewer (a forked child gets its own: threads do not survive a fork)."""
    global _shared, _shared_pid
    with _shared_lock:
        if _shared is None or _shared_pid != os.getpid():
            _shared, _shared_pid = Renewer(), os.getpid()
        return _shared

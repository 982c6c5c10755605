"""An alarm for one sleeping coroutine on the worker's loop: wakes it at a timeout or when rung.

The fetcher (waiting for room) and the settler (idle, or letting a batch gather) sleep and wake
once per fetch or flush, hundreds of times a second under load. ``asyncio.wait_for`` on an
``asyncio.Event`` costs a task, a timer and several turns of the loop each time; an alarm costs
one future and one timer (profiled in docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio


class Alarm:
    """(Loop only) ``sleep`` until ``timeout`` seconds pass or ``ring`` is called. A ring while
    nobody sleeps is not remembered: callers look at their condition before sleeping, with no
    await in between. A ring sent from another thread (``call_soon_threadsafe(alarm.ring)``)
    may land after the sleeper woke for another reason and end its next sleep early: its
    callers only look at their condition again (the settler's gap ends, the fetcher looks
    for room), so that costs a turn, never a missed wake-up."""

    __slots__ = ("_sleeper",)

    def __init__(self) -> None:
        self._sleeper: asyncio.Future[None] | None = None

    @property
    def sleeping(self) -> bool:
        return self._sleeper is not None

    def ring(self) -> None:
        sleeper = self._sleeper
        if sleeper is not None and not sleeper.done():
            sleeper.set_result(None)

    async def sleep(self, timeout: float | None = None) -> None:
        loop = asyncio.get_running_loop()
        sleeper = self._sleeper = loop.create_future()
        timer = None if timeout is None else loop.call_later(timeout, _wake, sleeper)
        try:
            await sleeper
        finally:
            self._sleeper = None
            if timer is not None:
                timer.cancel()


def _wake(sleeper: asyncio.Future[None]) -> None:
    if not sleeper.done():
        sleeper.set_result(None)

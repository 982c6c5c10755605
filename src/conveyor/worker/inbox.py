"""The inbox: leased deliveries waiting for a consumer, shared by the loop and the slot threads.

The fetcher puts deliveries in on the loop; the loop's consumers take them with ``await
get()``; and under the threads pool a slot thread on a streak (streaks.py) takes the next one
itself with ``take()``, without going through the loop. ``asyncio.Queue`` cannot be shared so:
its ``get`` checks for an item and then takes it, and a thread taking the item in between would
make that take fail. Here every take is a single ``deque.popleft`` (atomic under the GIL), and
a consumer that finds the deque empty waits for the next ``put_nowait`` and tries again.

A consumer may also set a delivery it took aside for a running streak (``set_aside``): set-aside
deliveries come first, in the order they were taken, so doing so never reorders the inbox.

``None`` is the stop sentinel the worker puts in at shutdown, one per consumer: only a consumer
takes it (a slot thread that finds it first in line leaves it there and ends its streak).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from ..brokers import Delivery


class Inbox:
    def __init__(self) -> None:
        self._items: deque[Delivery | None] = deque()
        # Deliveries consumers took and set aside for a streak (set_aside): ahead of _items.
        self._aside: deque[Delivery] = deque()
        self._getters: deque[asyncio.Future[None]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None  # the consumers', once one waited

    def put_nowait(self, item: Delivery | None) -> None:
        """(Loop) Add a delivery (or a stop sentinel) and wake one waiting consumer."""
        self._items.append(item)
        self._wake_one()

    def _wake_one(self) -> None:
        getters = self._getters
        while getters:
            fut = getters.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    def set_aside(self, d: Delivery) -> None:
        """(Loop) Give back a delivery a consumer took but leaves to the running streak: it is
        next in line again, after any set aside before it (a consumer takes from the front, so
        the set-aside ones keep their order; streaks.py). No consumer is woken for it: the one
        that set it aside waits for its turn."""
        self._aside.append(d)

    async def get(self) -> Delivery | None:
        """(Loop) The next item, waiting for one if there is none."""
        items, aside = self._items, self._aside
        while True:
            try:
                return aside.popleft()
            except IndexError:
                pass
            try:
                return items.popleft()
            except IndexError:
                pass
            loop = self._loop = asyncio.get_running_loop()
            fut = loop.create_future()
            self._getters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                # A wake-up meant for this consumer passes on to the next one.
                if fut.done() and not fut.cancelled():
                    self._wake_one()
                raise

    def get_nowait(self) -> Delivery | None:
        """(Loop) The next item; ``asyncio.QueueEmpty`` if there is none."""
        try:
            return self._aside.popleft()
        except IndexError:
            pass
        try:
            return self._items.popleft()
        except IndexError:
            raise asyncio.QueueEmpty from None

    def take(self) -> Delivery | None:
        """(Any thread) The next delivery, or None when there is none or the next item is a
        stop sentinel (left in place, for a consumer)."""
        try:
            return self._aside.popleft()
        except IndexError:
            pass
        items = self._items
        try:
            if items[0] is None:  # looked at, not taken: a consumer may be looking right now
                return None
            item = items.popleft()
        except IndexError:
            return None
        if item is None:
            # A consumer took the delivery ahead of it meanwhile. Put back, the sentinel may
            # have been missed by a consumer that looked in between and now waits: wake one.
            items.appendleft(None)
            loop = self._loop
            if loop is not None:
                with contextlib.suppress(RuntimeError):  # closed: nobody waits any more
                    loop.call_soon_threadsafe(self._wake_one)
        return item

    def empty(self) -> bool:
        return not self._aside and not self._items

    def qsize(self) -> int:
        return len(self._aside) + len(self._items)

    def waiting(self) -> list[Delivery]:
        """(Any thread) A copy of the deliveries waiting, for ``inspect reserved``."""
        return [*list(self._aside), *(d for d in list(self._items) if d is not None)]

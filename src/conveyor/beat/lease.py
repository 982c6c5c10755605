"""The leader lease: one scheduler does the work, the others wait to take over.

The lease is an optimisation, not the safety mechanism: slot claims and deterministic task ids
(:mod:`conveyor.beat.claims`) keep every slot to one enqueue even if two schedulers briefly
both believe they lead (a paused process, a partition).  What the lease buys is that followers
sleep instead of racing for every slot.

Timing: the leader renews every ``ttl / 3``; followers try to take the lease every
``FOLLOWER_POLL``.  A leader killed with SIGKILL is replaced after at most
``ttl + FOLLOWER_POLL`` (3.5 s with the default ``beat_lease_timeout = 3``), inside the 5 s
failover guarantee; a leader that stops cleanly releases the lease at once.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from typing import Any

from ..brokers import Broker
from .store import LEADER_KEY

logger = logging.getLogger("conveyor.beat")

FOLLOWER_POLL = 0.5


class LeaderLease:
    """``beat:leader`` held by compare-and-set on our exact value, renewed before it expires.

    >>> lease = LeaderLease(app.broker, owner="beat@host:123", ttl=3.0)   # doctest: +SKIP
    >>> lease.keep(time.time())                                           # doctest: +SKIP
    True
    """

    def __init__(self, broker: Broker, owner: str, ttl: float) -> None:
        if not ttl > 0:
            raise ValueError(f"lease timeout must be > 0, got {ttl!r}")
        self.broker = broker
        self.owner = owner
        self.ttl = ttl
        self._value: bytes | None = None  # our value while we hold the lease
        self._renew_at = 0.0  # monotonic

    @property
    def held(self) -> bool:
        return self._value is not None

    @property
    def renew_in(self) -> float:
        """Seconds until the next renewal is due (0 if not held)."""
        return max(0.0, self._renew_at - time.monotonic()) if self.held else 0.0

    def keep(self, now: float) -> bool:
        """Acquire the lease or renew it if due; returns whether we lead now."""
        if self._value is not None:
            if time.monotonic() < self._renew_at:
                return True
            if self.broker.kv_compare_and_set(LEADER_KEY, self._value, self._value, ttl=self.ttl):
                self._renew_at = time.monotonic() + self.ttl / 3
                return True
            logger.warning("beat %s: lost the leader lease (expired or taken); following", self.owner)
            self._value = None
            return False
        value = json.dumps(
            {"owner": self.owner, "host": socket.gethostname(), "pid": os.getpid(), "since": now}
        ).encode()
        if self.broker.kv_put(LEADER_KEY, value, ttl=self.ttl, only_if_absent=True):
            self._value = value
            self._renew_at = time.monotonic() + self.ttl / 3
            logger.info("beat %s: became the leader", self.owner)
            return True
        return False

    def release(self) -> None:
        """Give the lease up (clean shutdown), so a follower takes over without waiting."""
        if self._value is not None:
            try:
                self.broker.kv_compare_and_set(LEADER_KEY, self._value, None)
            finally:
                self._value = None


def current_leader(broker: Broker) -> dict[str, Any] | None:
    """Who leads now (``owner``, ``host``, ``pid``, ``since``), or None."""
    kv = broker.kv_get(LEADER_KEY)
    if kv is None:
        return None
    try:
        record = json.loads(kv.value)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None

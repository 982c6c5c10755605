"""Per-key concurrency limits: at most N runs at once per key, across every worker and host.

``@app.task(concurrency_key="{user_id}", concurrency_limit=2)``: the key has N slots,
``conc:<key>:0`` … ``conc:<key>:N-1``. A run takes a free slot with ``kv_put(only_if_absent)``
(stored with a TTL and renewed while the run lives), and gives it back when it ends. A worker
that dies stops renewing, so its slots free themselves after the TTL. A run that finds every
slot taken goes back to the broker for a moment (it never waits in a worker).

Keys are global: two tasks with ``concurrency_key="api:github"`` share the same slots, which
is how one limit covers every task calling the same external API. Checking a full key costs one
round trip per slot, so limits are meant to be small numbers (up to a few dozen).
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from typing import TYPE_CHECKING

import msgspec

from .keys import slot_key

if TYPE_CHECKING:
    from ..brokers import Broker

logger = logging.getLogger("conveyor.coordination")


class SlotValue(msgspec.Struct, omit_defaults=True):
    token: str
    task_id: str = ""
    acquired: float = 0.0


_encode = msgspec.json.Encoder().encode


class Slot:
    """One held slot; ``renew`` and ``release`` only touch it while the value is still ours."""

    def __init__(self, broker: Broker, key: str, value: bytes, ttl: float) -> None:
        self.broker = broker
        self.key = key
        self.value = value
        self.ttl = ttl
        self.released = False

    def renew(self) -> bool:
        if self.released:
            return False
        if self.broker.kv_compare_and_set(self.key, self.value, self.value, self.ttl):
            return True
        if not self.released:
            logger.warning(
                "concurrency slot %s was lost while held (expired); the limit may be exceeded", self.key
            )
        return False

    def release(self) -> None:
        self.released = True
        self.broker.kv_compare_and_set(self.key, self.value, None)


def acquire_slot(broker: Broker, key: str, limit: int, ttl: float, task_id: str) -> Slot | None:
    """Take one of the key's ``limit`` slots, or return None when all are taken.

    Trying the slots from a random starting point spreads concurrent runs over different keys
    instead of making every run fight over slot 0 first.
    """
    value = _encode(SlotValue(uuid.uuid4().hex, task_id, time.time()))
    start = random.randrange(limit)
    for i in range(limit):
        name = slot_key(key, (start + i) % limit)
        if broker.kv_put(name, value, ttl, only_if_absent=True):
            return Slot(broker, name, value, ttl)
    return None

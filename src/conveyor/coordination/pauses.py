"""Paused queues, stored in the broker so a pause holds cluster-wide and across restarts.

A pause is one key/value key per queue (``queue:paused:<queue>``, see keys.py), written by the
admin API and read by every worker's heartbeat thread, which then leaves the queue out of its
fetches. Enqueues are never refused: a paused queue keeps filling up and drains after resume,
which is what an operator pausing a queue during an incident expects (Sidekiq Pro's pause).

>>> pause(broker, "emails"); paused_queues(broker)     # doctest: +SKIP
{'emails': 1764567890.5}
"""

from __future__ import annotations

import json
import time

from ..brokers import KeyValueStore
from .keys import PAUSED_PREFIX


def pause(store: KeyValueStore, queue: str) -> bool:
    """Pause ``queue``; returns False if it was paused already."""
    value = json.dumps({"at": time.time()}).encode()
    return store.kv_put(PAUSED_PREFIX + queue, value, only_if_absent=True)


def resume(store: KeyValueStore, queue: str) -> bool:
    """Resume ``queue``; returns False if it was not paused."""
    entry = store.kv_get(PAUSED_PREFIX + queue)
    if entry is None:
        return False
    return store.kv_compare_and_set(PAUSED_PREFIX + queue, entry.value, None)


def paused_queues(store: KeyValueStore) -> dict[str, float]:
    """Every paused queue and when it was paused (epoch seconds; 0 if unreadable)."""
    paused = {}
    for key, entry in store.kv_scan(PAUSED_PREFIX).items():
        try:
            at = float(json.loads(entry.value)["at"])
        except (ValueError, KeyError, TypeError):
            at = 0.0
        paused[key[len(PAUSED_PREFIX) :]] = at
    return paused

"""Every key/value key the coordination features use, in one place.

    lock:<name>                 a held lock; value: LockValue (JSON), TTL = the lock's timeout
    fence:locks                 one counter for every lock's fencing number (never expires)
    unique:<task>:<key>         a pending unique job; value: UniqueClaim (JSON), TTL = unique_for
    rate:<task>                 a rate limit's theoretical arrival time (GCRA), TTL ~ one interval
    conc:<key>:<i>              slot i of a per-key concurrency limit; TTL = lock_timeout
    queue:paused:<queue>        a paused queue; value: JSON {"at": epoch seconds}, no TTL

One fencing counter for all locks (rather than one per lock name) keeps the store from growing
a never-expiring key for every distinct ``lock="user:{id}"`` ever taken; the numbers are still
strictly increasing for each lock, just not consecutive.
"""

from __future__ import annotations

LOCK_PREFIX = "lock:"
FENCE_KEY = "fence:locks"
UNIQUE_PREFIX = "unique:"
RATE_PREFIX = "rate:"
CONCURRENCY_PREFIX = "conc:"
PAUSED_PREFIX = "queue:paused:"


def lock_key(name: str) -> str:
    return LOCK_PREFIX + name


def unique_key(task: str, key: str) -> str:
    return f"{UNIQUE_PREFIX}{task}:{key}"


def rate_key(task: str) -> str:
    return RATE_PREFIX + task


def slot_key(key: str, index: int) -> str:
    return f"{CONCURRENCY_PREFIX}{key}:{index}"

"""Coordination across workers and hosts, all stored in the broker: locks with expiry and
fencing, unique enqueue, global rate limits and per-key concurrency limits.

Everything here is built on the broker's key/value primitives (``kv_put``,
``kv_compare_and_set``, ``kv_incr``, ...), so it holds on every broker and across machines.
Key names are listed in ``keys``. See docs/coordination.md.

>>> with app.lock("scrape", timeout=3600, blocking_timeout=10):   # doctest: +SKIP
...     scrape()
"""

from .locks import Lock, LockInfo, force_release, list_locks, read_lock
from .options import TaskCoordination
from .rate_limit import Rate, parse_rate

__all__ = [
    "Lock",
    "LockInfo",
    "Rate",
    "TaskCoordination",
    "force_release",
    "list_locks",
    "parse_rate",
    "read_lock",
]

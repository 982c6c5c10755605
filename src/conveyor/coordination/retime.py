"""A rate limit changed at run time: the runs it held back take the new one at once.

A run that arrived early reserved a start time under the old limit and waits in the broker's
delayed set until then (rate_limit.py), carrying that reservation in its headers. Left there,
a removed or raised limit would still hold a backlog for as long as the old one spaced it
(hours, at "1/m"), and new runs would queue behind the old reservations. So ``control
rate_limit`` (``Control.rate_limit``) calls ``retime`` once, after storing the new limit:

1. the limiter's key (its next free start time) is dropped when there is no limit any more;
   when it lies ahead (a run started within the old interval, or runs were reserved) it is
   set one new interval from now, as the last run may have started just now; a limit set
   where none was lets the next run start at once;
2. every delayed run of that task holding a reservation is made ready now; each worker that
   takes one sees its reservation was made under another rate (the interval is in the header)
   and reserves again under the new limit, or runs it at once when there is none.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..exceptions import DecodeError
from ..message import decode_envelope
from .guards import RATE_HEADER
from .keys import rate_key

if TYPE_CHECKING:
    from ..brokers import Broker
    from .rate_limit import Rate

PAGE = 500  # delayed jobs read per broker call, and ids brought forward per call


def retime(broker: Broker, task: str, rate: Rate | None) -> int:
    """Void ``task``'s rate-limit reservations, now that its limit is ``rate`` (None: none;
    see the module doc); how many held-back runs it made ready."""
    key = rate_key(task)
    entry = broker.kv_get(key)
    now = time.time()
    if entry is not None and rate is None:
        broker.kv_compare_and_set(key, entry.value, None)
    elif entry is not None and rate is not None and _tat(entry.value) > now:
        # A run started within the old interval, or runs were reserved: the last one may have
        # started just now. (No key, or a passed one: no recent run, the next may start now.)
        interval = rate.interval  # the key's form and expiry as RateLimiter.reserve writes them
        broker.kv_put(key, repr(now + interval).encode(), 2 * interval)
    held: list[str] = []
    offset = 0
    while True:
        page = broker.pending(delayed=True, limit=PAGE, offset=offset)
        for job in page:
            try:
                env = decode_envelope(job.body)
            except DecodeError:
                continue
            if env.task == task and RATE_HEADER in env.headers:
                held.append(job.id)
        if len(page) < PAGE:
            break
        offset += PAGE
    return sum(broker.bring_forward(held[i : i + PAGE]) for i in range(0, len(held), PAGE))


def _tat(raw: bytes) -> float:
    try:
        return float(raw)
    except ValueError:
        return 0.0

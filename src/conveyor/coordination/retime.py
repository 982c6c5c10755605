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
2. every delayed run of that task holding a reservation made under another interval is made
   ready now; the worker that takes one sees its reservation was made under another rate (the
   interval is in the header) and reserves again under the new limit, or runs it at once when
   there is none.

Setting the same limit again voids nothing: its reservations stand, and so does the key while
any waits (resetting it under them would let new runs start between theirs, twice the limit). Runs held
back by a version before 2026-12-02 name no interval: they keep their start times, and the key
is left alone while any waits. The scan reads every delayed job (``pending``, a page at a
time): a job that moves meanwhile can be missed, and then reserves again when its old time
comes (its header names the old interval).
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

from ..exceptions import DecodeError
from ..message import decode_envelope
from .guards import RATE_HEADER
from .keys import rate_key
from .rate_limit import restart

if TYPE_CHECKING:
    from ..brokers import Broker
    from .rate_limit import Rate

PAGE = 500  # delayed jobs read per broker call, and ids brought forward per call


def retime(broker: Broker, task: str, rate: Rate | None) -> int:
    """Void ``task``'s rate-limit reservations made under another limit than ``rate`` (None:
    no limit; see the module doc); how many held-back runs it made ready."""
    voided: list[str] = []
    kept = 0  # reservations still good under ``rate`` (set again unchanged), or of old versions
    offset = 0
    while True:
        page = broker.pending(delayed=True, limit=PAGE, offset=offset)
        for job in page:
            interval = _reserved_under(job.body, task)
            if interval is None:
                continue
            if rate is not None and (interval < 0 or math.isclose(interval, rate.interval)):
                kept += 1
            else:
                voided.append(job.id)
        if len(page) < PAGE:
            break
        offset += PAGE
    if not kept:  # with reservations still good, the key holds their times: left alone
        restart(broker, rate_key(task), rate, time.time())
    return sum(broker.bring_forward(voided[i : i + PAGE]) for i in range(0, len(voided), PAGE))


def _reserved_under(body: bytes, task: str) -> float | None:
    """The interval a held-back run of ``task`` was reserved under (-1: a reservation of an
    earlier version, which names none); None for any other job."""
    try:
        env = decode_envelope(body)
    except DecodeError:
        return None
    reserved = env.headers.get(RATE_HEADER) if env.task == task else None
    if not isinstance(reserved, list):
        return None
    if len(reserved) == 3 and isinstance(reserved[2], int | float):
        return float(reserved[2])
    return -1.0

"""Global rate limits: ``@app.task(rate_limit="10/m")``, enforced across every worker and host.

Celery's syntax: ``"N/s"``, ``"N/m"``, ``"N/h"``; a plain number means per second. Celery
applies a rate limit per worker (ten workers at "10/m" run 100 a minute); Conveyor applies it
to the whole cluster, which is what a limit imposed by an external API needs.

The limiter is GCRA (the generic cell rate algorithm): one key holds the *theoretical arrival
time* (TAT), the earliest time the next run may start; each admitted run moves it one interval
(``per / N``) later. Runs are spaced evenly, as with Celery's token bucket of capacity one:
"10/m" means one run every 6 s, never ten at once.

A run that arrives early does not wait in a worker: it *reserves* the next free start time
(moving the TAT on) and goes back to the broker until then, carrying its reservation in its
message headers. When it comes back it runs without asking again. So a backlog of N jobs
costs N reservations, not N re-checks each interval, and never holds a worker or prefetch slot.

Limits of the guarantee: start times come from each worker host's clock, so hosts must be
NTP-synced (a clock that is s seconds fast lets its runs start up to s seconds early); a
reservation whose job is then revoked or expires leaves its start time unused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..brokers import Broker

_RATE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:/\s*([a-z]+)\s*)?$", re.IGNORECASE)
_UNITS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
}
CAS_ATTEMPTS = 50  # optimistic retries under contention; each loser re-reads and tries again


@dataclass(frozen=True, slots=True)
class Rate:
    """A parsed rate: ``count`` runs per ``per`` seconds."""

    count: float
    per: float
    text: str

    @property
    def interval(self) -> float:
        """Seconds between two admitted runs."""
        return self.per / self.count


def parse_rate(value: Any, option: str = "rate_limit") -> Rate:
    """Parse Celery's rate syntax.

    >>> parse_rate("10/m").interval
    6.0
    >>> parse_rate(2).interval
    0.5
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{option} must be a string like '10/m' or a number per second, got {value!r}")
    text = str(value)
    match = _RATE.match(text)
    unit = (match.group(2) or "s").lower() if match else None
    if match is None or unit not in _UNITS:
        raise ValueError(
            f"{option}={value!r} is not a rate: use 'N/s', 'N/m' or 'N/h' (a plain number is per second)"
        )
    count = float(match.group(1))
    if count <= 0:
        raise ValueError(f"{option}={value!r} must allow at least some runs; leave it unset for no limit")
    return Rate(count, _UNITS[unit], text.strip())


class RateLimiter:
    """GCRA over ``kv_compare_and_set`` on one key, shared by every worker."""

    def __init__(self, key: str, rate: Rate) -> None:
        self.key = key
        self.rate = rate

    def reserve(self, broker: Broker, now: float) -> float:
        """Claim the next free start time (``<= now``: run now) and return it."""
        interval = self.rate.interval
        for _ in range(CAS_ATTEMPTS):
            entry = broker.kv_get(self.key)
            current = entry.value if entry is not None else None
            tat = _float(current)
            start = max(tat, now)
            new_tat = start + interval
            # The key only needs to outlive the TAT: once it has passed, absent == "run now".
            ttl = new_tat - now + interval
            if broker.kv_compare_and_set(self.key, current, repr(new_tat).encode(), ttl):
                return start
        raise RuntimeError(
            f"rate limit {self.key!r}: too much contention, gave up after {CAS_ATTEMPTS} tries"
        )


def restart(broker: Broker, key: str, rate: Rate | None, now: float) -> None:
    """The limit on ``key`` changed to ``rate`` (None: none) and its reservations are void
    (coordination/retime.py): no key when there is no limit; a next free start one new interval
    from now when the key lies ahead (a run started within the old interval: it may have been
    just now); left absent or passed otherwise (the next run may start at once). Compare-and-set:
    a reservation made meanwhile stands."""
    entry = broker.kv_get(key)
    if entry is None:
        return
    if rate is None:
        broker.kv_compare_and_set(key, entry.value, None)
    elif _float(entry.value) > now:
        new_tat = now + rate.interval
        broker.kv_compare_and_set(key, entry.value, repr(new_tat).encode(), new_tat - now + rate.interval)


def _float(raw: bytes | None) -> float:
    if raw is None:
        return 0.0
    try:
        return float(raw)
    except ValueError:
        return 0.0  # unreadable: start afresh rather than block the task forever

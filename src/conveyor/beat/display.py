"""Human-readable times for ``conveyor schedule list`` (and anything else that shows entries)."""

from __future__ import annotations

import math
from datetime import UTC, datetime


def format_duration(seconds: float) -> str:
    """``192`` -> ``'3m 12s'``; ``90061`` -> ``'1d 1h 1m'`` (at most three units).

    >>> format_duration(192)
    '3m 12s'
    >>> format_duration(0.4)
    '0s'
    """
    total = int(seconds)
    parts: list[str] = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        n, total = divmod(total, size)
        if n or (unit == "s" and not parts):
            parts.append(f"{n}{unit}")
    return " ".join(parts[:3])


def format_time(t: float) -> str:
    """``'2026-11-21 08:05:00 UTC'``.

    >>> format_time(0)
    '1970-01-01 00:00:00 UTC'
    """
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_next_run(t: float | None, now: float) -> str:
    """When an entry runs next, relative and absolute.

    >>> format_next_run(1_000_192.0, 1_000_000.0)
    'in 3m 12s (1970-01-12 13:49:52 UTC)'
    >>> format_next_run(999_990.0, 1_000_000.0)
    'due now (1970-01-12 13:46:30 UTC)'
    """
    if t is None or not math.isfinite(t):
        return "never"
    if t <= now:
        return f"due now ({format_time(t)})"
    return f"in {format_duration(math.ceil(t - now))} ({format_time(t)})"


def format_ago(t: float | None, now: float) -> str:
    """``'12s ago'``, or ``'never'``.

    >>> format_ago(999_988.0, 1_000_000.0)
    '12s ago'
    """
    if t is None:
        return "never"
    return f"{format_duration(max(0.0, now - t))} ago"

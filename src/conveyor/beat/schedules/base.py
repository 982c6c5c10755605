"""What every schedule is (:class:`Schedule`), its error, and the timezone helpers all kinds share.

All times are epoch seconds; see :mod:`conveyor.beat.schedules` for the slot, timezone and DST rules.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["UTC_ZONE", "Schedule", "ScheduleError", "TzLike", "check_time", "resolve_tz", "zone_name"]

TzLike = str | ZoneInfo | None

UTC_ZONE = ZoneInfo("UTC")


class ScheduleError(ValueError):
    """A schedule is invalid: a bad crontab field, cron string, interval, timezone or stored dict."""


def resolve_tz(tz: TzLike) -> ZoneInfo | None:
    """Turn a timezone name or ``ZoneInfo`` into a ``ZoneInfo`` (``None`` stays ``None``).

    >>> resolve_tz("Europe/Berlin")
    zoneinfo.ZoneInfo(key='Europe/Berlin')
    """
    if tz is None:
        return None
    if isinstance(tz, ZoneInfo):
        if tz.key is None:  # built from a file: it could not be stored in the broker by name
            raise ScheduleError(
                "timezone must be a named zone (ZoneInfo('Area/City')), not one loaded from a file"
            )
        return tz
    if not isinstance(tz, str):
        raise ScheduleError(f"timezone must be a str or ZoneInfo, got {type(tz).__name__}")
    if tz.strip().upper() in ("UTC", "Z"):
        return UTC_ZONE
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleError(f"unknown timezone {tz!r}") from None


def zone_name(tz: ZoneInfo | None) -> str:
    """The name shown in descriptions; a schedule without a timezone is computed in UTC."""
    return "UTC" if tz is None else str(tz.key)


def check_time(t: float, what: str = "t") -> None:
    """Reject NaN and infinities early: they would otherwise loop or overflow in datetime."""
    if not math.isfinite(t):
        raise ValueError(f"{what} must be a finite epoch time, got {t!r}")


class Schedule(ABC):
    """What the scheduler needs from any schedule; all times are epoch seconds.

    ``first_run_immediate``: whether a brand-new entry runs at once (its most recent slot) rather
    than waiting for its next slot -- see :func:`conveyor.beat.catchup.plan`.
    """

    __slots__ = ()
    first_run_immediate: ClassVar[bool] = False

    @abstractmethod
    def next_after(self, t: float) -> float:
        """The first slot strictly after ``t`` (``math.inf`` if the schedule never fires again)."""

    def last_at_or_before(self, t: float) -> float:
        """The latest slot ``<= t`` (``-math.inf`` if none in the past 68 years).

        Generic version built on :meth:`next_after` alone (cron libraries iterate backwards
        poorly across DST folds): widen a look-back window until it holds a slot, then bisect
        for the start point whose next slot is the last one not after ``t``.  About 40
        ``next_after`` calls however dense or sparse the schedule is.
        """
        check_time(t)
        lo, hi = t - 60.0, t
        while self.next_after(lo) > t:
            lo, hi = t - 2 * (t - lo), lo
            if t - lo > 2.2e9:
                return -math.inf
        # Invariant: next_after(lo) <= t < next_after(hi), so every slot in (lo, t] lies in
        # (lo, hi]; once that is shorter than the 1 ms slot resolution it holds just one slot.
        while hi - lo > 0.0005:
            mid = (lo + hi) / 2
            if self.next_after(mid) <= t:
                lo = mid
            else:
                hi = mid
        s = self.next_after(lo)
        while (n := self.next_after(s)) <= t:  # only for custom schedules with sub-ms slots
            s = n
        return s

    def slots_between(self, a: float, b: float, limit: int) -> list[float]:
        """Slots in the half-open interval ``(a, b]``, earliest first, at most ``limit`` of them.

        >>> from conveyor.beat.schedules import every
        >>> every(2).slots_between(10.0, 16.0, limit=100)
        [12.0, 14.0, 16.0]
        """
        out: list[float] = []
        s = a
        while len(out) < limit:
            s = self.next_after(s)
            if s > b:
                break
            out.append(s)
        return out

    @abstractmethod
    def describe(self) -> str:
        """A human-readable description, e.g. ``every 2s``."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict; :func:`schedule_from_dict` turns it back into an equal schedule."""

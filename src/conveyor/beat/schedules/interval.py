"""Interval schedules: ``every(2)`` fires on the grid ``anchor + k * interval``, exact to the millisecond."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any, ClassVar

from .base import Schedule, ScheduleError, check_time

__all__ = ["Interval", "every"]


def _format_seconds(ms: int) -> str:
    """``1500`` -> ``'1.5'``; ``2000`` -> ``'2'`` (no float noise in reprs)."""
    return str(ms // 1000) if ms % 1000 == 0 else repr(ms / 1000)


def _format_duration(ms: int) -> str:
    """``90_000`` -> ``'1m30s'``; ``500`` -> ``'0.5s'``."""
    days, rest = divmod(ms, 86_400_000)
    hours, rest = divmod(rest, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    out = "".join(f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n)
    return out + (f"{_format_seconds(rest)}s" if rest or not out else "")


def _to_ms(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | timedelta):
        raise ScheduleError(f"{what} must be a number of seconds or a timedelta, got {type(value).__name__}")
    if isinstance(value, timedelta):
        # Exact integer arithmetic: timedelta.total_seconds() would go through a float.
        micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
        return round(micros / 1000)
    if not math.isfinite(value):
        raise ScheduleError(f"{what} must be finite, got {value!r}")
    return round(value * 1000)


class Interval(Schedule):
    """Fires every ``seconds`` on the grid ``anchor + k * seconds`` (k any integer).

    Resolution is one millisecond: interval and anchor are stored as integer milliseconds, so
    slot k is exactly ``(anchor_ms + k * interval_ms) / 1000`` however large k grows.
    """

    first_run_immediate: ClassVar[bool] = True
    __slots__ = ("_anchor_ms", "_ms")

    def __init__(self, seconds: float | timedelta, *, anchor: float = 0.0) -> None:
        ms = _to_ms(seconds, "interval")
        if ms <= 0:
            raise ScheduleError(f"interval must be at least 1 ms (0.001 s), got {seconds!r}")
        self._ms = ms
        self._anchor_ms = _to_ms(anchor, "interval anchor")

    @property
    def seconds(self) -> float:
        return self._ms / 1000

    @property
    def run_every(self) -> timedelta:
        """The interval as a ``timedelta`` (Celery's ``schedule.run_every``)."""
        return timedelta(milliseconds=self._ms)

    @property
    def anchor(self) -> float:
        return self._anchor_ms / 1000

    def anchored_at(self, anchor: float) -> Interval:
        """The same interval on a grid through ``anchor`` (e.g. the entry's creation time)."""
        return Interval(timedelta(milliseconds=self._ms), anchor=anchor)

    def _slot(self, k: int) -> float:
        return (self._anchor_ms + k * self._ms) / 1000

    def _index_after(self, t: float) -> int:
        """Smallest k whose slot is strictly after ``t``."""
        check_time(t)
        k = math.floor((t * 1000 - self._anchor_ms) / self._ms) + 1
        # The float estimate can be off by one near a slot boundary; correct it exactly.
        while self._slot(k) <= t:
            k += 1
        while self._slot(k - 1) > t:
            k -= 1
        return k

    def next_after(self, t: float) -> float:
        """The first slot strictly after ``t``.

        >>> every(5).next_after(12.0)
        15.0
        """
        return self._slot(self._index_after(t))

    def last_at_or_before(self, t: float) -> float:
        return self._slot(self._index_after(t) - 1)

    def slots_between(self, a: float, b: float, limit: int) -> list[float]:
        out: list[float] = []
        k = self._index_after(a)
        while len(out) < limit and (s := self._slot(k)) <= b:
            out.append(s)
            k += 1
        return out

    def describe(self) -> str:
        """A short human-readable description.

        >>> every(90).describe()
        'every 1m30s'
        """
        return f"every {_format_duration(self._ms)}"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "interval", "seconds": self._ms / 1000, "anchor": self._anchor_ms / 1000}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Interval):
            return NotImplemented
        return (self._ms, self._anchor_ms) == (other._ms, other._anchor_ms)

    def __hash__(self) -> int:
        return hash(("interval", self._ms, self._anchor_ms))

    def __repr__(self) -> str:
        anchor = f", anchor={_format_seconds(self._anchor_ms)}" if self._anchor_ms else ""
        return f"every({_format_seconds(self._ms)}{anchor})"


def every(seconds: float | timedelta, *, anchor: float = 0.0) -> Interval:
    """An interval schedule: ``every(2)``, ``every(timedelta(minutes=5))``.

    >>> every(2).next_after(1_700_000_001.5)
    1700000002.0
    """
    return Interval(seconds, anchor=anchor)

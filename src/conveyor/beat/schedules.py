"""Schedule math for the periodic scheduler (beat): pure, deterministic, no I/O.

Every schedule answers questions in epoch seconds (``float``), never in wall-clock datetimes, so a
jump of the machine's clock or a DST change cannot skip or repeat anything by itself.  A *slot* is
the epoch-second instant at which an entry is due, rounded to milliseconds; the scheduler uses it
as the idempotency key of (entry, slot), so every scheduler instance must compute identical slots.

Kinds of schedule (all subclasses of :class:`Schedule`):

* :func:`every` -- a fixed interval on an anchored grid: slot k = anchor + k * interval, computed in
  integer milliseconds, so drift never accumulates.  The default anchor is the Unix epoch, which
  needs no coordination between scheduler instances (``every(3600)`` fires on the hour, UTC).
* :class:`~conveyor.beat.crontab.crontab` -- Celery's ``crontab`` with Celery's field syntax and
  semantics.  When both ``day_of_month`` and ``day_of_week`` are restricted a day must match
  *both* (Celery ANDs them, unlike cron, which ORs them).
* :func:`cron` -- a standard 5-field cron string with standard cron semantics (a restricted
  day-of-month and day-of-week are ORed), validated by ``cronsim`` and evaluated by the crontab
  engine (cronsim mishandles 30-minute DST shifts; see :class:`Cron`).

Timezones and DST (identical for ``crontab`` and ``cron``; this is the Debian/Vixie cron rule,
which is also what ``cronsim`` implements):

* An entry is *wall-clock* when neither its minute nor its hour field starts with ``*`` (for
  ``crontab``: an int, an iterable, or a string not starting with ``*``), e.g. "02:30 daily".
  Otherwise it is *wildcard*, e.g. hourly ``crontab(minute=5)`` or ``"*/15 * * * *"``.
* Wall-clock entries fire once per matching local time.  A local time that does not exist (spring
  forward) fires at the first instant after the gap: 02:30 on Europe/Berlin 2026-03-29 fires at
  03:00 CEST.  A local time that occurs twice (fall back) fires only at its first occurrence
  (fold=0): 02:30 on 2026-10-25 fires at 02:30 CEST, never again at 02:30 CET.  So a daily entry
  fires exactly once on every local date.  Several wall times inside one gap collapse into one run.
* Wildcard entries fire at every real (UTC) instant whose local wall time matches: in the
  fall-back overlap such an instant occurs twice, so ``crontab(minute=5)`` fires at 02:05 CEST and
  again at 02:05 CET (one run per real hour, 25 on that day); in the spring-forward gap the local
  times do not exist and nothing fires (23 runs).  No real instant ever fires twice.
* ``tz=None`` means "the app's timezone": :func:`to_schedule` fills it in; used directly it is UTC.

What to enqueue when (first run, missed slots) is decided in :mod:`conveyor.beat.catchup`.

>>> from conveyor.beat.crontab import crontab
>>> s = crontab(minute=0, hour=4, day_of_week="sun")
>>> s.describe()
'at 04:00 on Sunday (UTC)'
>>> s.next_after(0.0)  # the first Sunday after 1970-01-01 00:00 UTC is Jan 4th
273600.0
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

__all__ = [
    "Cron",
    "Interval",
    "Schedule",
    "ScheduleError",
    "cron",
    "every",
    "resolve_tz",
    "schedule_from_dict",
    "to_schedule",
]

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


# ---------------------------------------------------------------------------------------------
# Interval


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


# ---------------------------------------------------------------------------------------------
# Standard cron strings (cronsim)

# Vixie cron's macros; cronsim does not know them, so translate before handing over.
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


# cronsim reads a one-value range with a step ("0-0/1") as "0/1", i.e. 0 to the maximum; in cron
# it is the single value.  Rewrite it to that value before handing the expression over.
_ONE_VALUE_RANGE = re.compile(r"(?<![^\s,])([0-9A-Za-z]+)-\1/[0-9]+(?![^\s,])")


class Cron(Schedule):
    """A standard 5-field cron expression (minute hour day-of-month month day-of-week).

    Validated by ``cronsim`` (maintained, typed, and -- unlike croniter -- it implements the
    Debian cron DST rule this module documents).  Six-field (seconds) expressions are refused:
    cronsim switches its DST handling off for them.  A restricted day-of-month and day-of-week
    are ORed, as in every cron (Vixie's rule: a field starting with ``*`` makes it an AND).
    Also accepts ``@daily``-style macros.

    Evaluated by the :mod:`~conveyor.beat.crontab` engine whenever the expression is in the
    syntax both share (nearly always): cronsim assumes one-hour DST shifts and misses the
    fall-back hour of zones with 30-minute DST (``"* 2 * * *"`` in Australia/Lord_Howe skipped
    02:00-02:29).  An OR of the day fields is the union of two crontabs.  Expressions only
    cronsim reads (``L``, ``W``, ``#``, ``?``) are evaluated by cronsim.

    >>> cron("0 */6 * * *", tz="Europe/Berlin").describe()
    "cron '0 */6 * * *' (Europe/Berlin)"
    """

    __slots__ = ("_cronsim_expr", "_engine", "_expr", "_tz")

    def __init__(self, expr: str, tz: TzLike = None) -> None:
        if not isinstance(expr, str):
            raise ScheduleError(f"cron expression must be a str, got {type(expr).__name__}")
        self._expr = " ".join(expr.split())
        self._cronsim_expr = _ONE_VALUE_RANGE.sub(r"\1", _MACROS.get(self._expr.lower(), self._expr))
        if len(self._cronsim_expr.split()) != 5:
            raise ScheduleError(
                f"invalid cron expression {expr!r}: expected 5 fields "
                f"(minute hour day-of-month month day-of-week), got {len(self._expr.split())}"
            )
        self._tz = resolve_tz(tz)
        try:
            CronSim(self._cronsim_expr, datetime(2000, 1, 1, tzinfo=UTC))
        except (CronSimError, ValueError) as exc:
            raise ScheduleError(f"invalid cron expression {expr!r}: {exc}") from None
        self._engine = _as_crontabs(self._cronsim_expr, self._tz)

    @property
    def expr(self) -> str:
        return self._expr

    @property
    def tz(self) -> ZoneInfo | None:
        return self._tz

    def with_tz(self, tz: TzLike) -> Cron:
        """A copy in another timezone."""
        return Cron(self._expr, tz=tz)

    def _zone(self) -> tzinfo:
        # cronsim special-cases datetime.UTC (plain arithmetic, no DST fix-ups): use it for UTC.
        return UTC if self._tz is None or self._tz.key == "UTC" else self._tz

    def next_after(self, t: float) -> float:
        """The first slot strictly after ``t``.

        >>> cron("*/15 * * * *").next_after(0.0)
        900.0
        """
        check_time(t)
        if self._engine is not None:
            return min(part.next_after(t) for part in self._engine)
        # cronsim starts one second after its (whole-second) start time, so this is "after t".
        it = CronSim(self._cronsim_expr, datetime.fromtimestamp(math.floor(t), self._zone()))
        try:
            # For wall-clock entries cronsim iterates naive local time, which runs backwards in a
            # fall-back overlap: skip anything that is not really after t.
            while (s := next(it).timestamp()) <= t:
                pass
        except StopIteration:  # cronsim gives up after 50 years without a match
            return math.inf
        return s

    def last_at_or_before(self, t: float) -> float:
        if self._engine is not None:
            check_time(t)
            return max(part.last_at_or_before(t) for part in self._engine)
        return super().last_at_or_before(t)

    def describe(self) -> str:
        return f"cron {self._expr!r} ({zone_name(self._tz)})"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "cron", "expr": self._expr, "tz": None if self._tz is None else self._tz.key}

    def _key(self) -> tuple[object, ...]:
        return (self._cronsim_expr.upper(), None if self._tz is None else self._tz.key)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Cron):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(("cron", *self._key()))

    def __repr__(self) -> str:
        tz = f", tz={zone_name(self._tz)!r}" if self._tz is not None else ""
        return f"cron({self._expr!r}{tz})"


def _as_crontabs(expr: str, tz: ZoneInfo | None) -> tuple[Schedule, ...] | None:
    """The cron expression as crontabs with the same slots (one for an AND of the day fields,
    two whose union is the OR), or None if it uses syntax only cronsim reads."""
    from conveyor.beat.crontab import Crontab  # crontab.py imports this module: import late

    minute, hour, dom, month, dow = expr.lower().split()
    # Both day fields restricted: a day matching either runs, i.e. the union of two crontabs.
    either = not (dom.startswith("*") or dow.startswith("*"))
    day_fields = [(dom, "*"), ("*", dow)] if either else [(dom, dow)]
    parts: list[Schedule] = []
    for day_of_month, day_of_week in day_fields:
        try:
            parts.append(Crontab(minute, hour, day_of_week, day_of_month, month, tz=tz))
        except ScheduleError as exc:
            if "never occurs" not in str(exc):  # e.g. "31 2": that half of an OR never runs
                return None
    return tuple(parts) or None


def cron(expr: str, tz: TzLike = None) -> Cron:
    """A cron-string schedule.

    >>> cron("0 4 * * sun").next_after(0.0)  # Sunday 1970-01-04 04:00 UTC
    273600.0
    """
    return Cron(expr, tz=tz)


# ---------------------------------------------------------------------------------------------
# Conversion from user configuration and from storage


def to_schedule(value: object, default_tz: TzLike = None) -> Schedule:
    """Turn a ``beat_schedule`` ``"schedule"`` value into a :class:`Schedule`.

    Numbers and timedeltas are intervals, a string with spaces (or an ``@daily`` macro) is a cron
    expression, schedule objects pass through; a crontab/cron without a timezone gets
    ``default_tz`` (the app's ``timezone`` setting).

    >>> to_schedule(2.0)
    every(2)
    >>> to_schedule("0 */6 * * *", "Europe/Berlin")
    cron('0 */6 * * *', tz='Europe/Berlin')
    """
    if isinstance(value, bool):
        raise ScheduleError(
            "schedule must be seconds, a timedelta, a crontab, a cron string or a Schedule, got bool"
        )
    if isinstance(value, int | float | timedelta):
        return every(value)
    if isinstance(value, str):
        text = value.strip()
        if " " in text or text.lower() in _MACROS:
            return cron(text, tz=default_tz)
        raise ScheduleError(
            f"schedule string {value!r} is not a cron expression; "
            "write e.g. '*/15 * * * *' or give a number of seconds"
        )
    from conveyor.beat.crontab import Crontab  # crontab.py imports this module: import late

    if isinstance(value, Crontab | Cron):
        return value.with_tz(default_tz) if value.tz is None and default_tz is not None else value
    if isinstance(value, Schedule):
        return value
    raise ScheduleError(
        "schedule must be seconds, a timedelta, a crontab, a cron string or a Schedule, "
        f"got {type(value).__name__}"
    )


_DICT_KEYS = {
    "interval": {"type", "seconds", "anchor"},
    "crontab": {"type", "minute", "hour", "day_of_week", "day_of_month", "month_of_year", "tz"},
    "cron": {"type", "expr", "tz"},
}


def schedule_from_dict(d: Mapping[str, Any]) -> Schedule:
    """Rebuild a schedule from :meth:`Schedule.to_dict` output (e.g. read back from the broker).

    >>> schedule_from_dict(every(2).to_dict()) == every(2)
    True
    """
    if not isinstance(d, Mapping):
        raise ScheduleError(f"stored schedule must be a dict, got {type(d).__name__}")
    kind = d.get("type")
    if not isinstance(kind, str) or kind not in _DICT_KEYS:
        raise ScheduleError(f"stored schedule has unknown type {kind!r}")
    if set(d) != _DICT_KEYS[kind]:
        raise ScheduleError(
            f"stored {kind} schedule must have keys {sorted(_DICT_KEYS[kind])}, got {sorted(d)}"
        )
    if kind == "interval":
        return Interval(d["seconds"], anchor=d["anchor"])
    for name in _DICT_KEYS[kind] - {"type", "tz"}:
        if not isinstance(d[name], str):
            raise ScheduleError(
                f"stored {kind} schedule field {name!r} must be a str, got {type(d[name]).__name__}"
            )
    if kind == "cron":
        return Cron(d["expr"], tz=d["tz"])
    from conveyor.beat.crontab import Crontab  # crontab.py imports this module: import late

    fields = {name: d[name] for name in ("minute", "hour", "day_of_week", "day_of_month", "month_of_year")}
    return Crontab(**fields, tz=d["tz"])

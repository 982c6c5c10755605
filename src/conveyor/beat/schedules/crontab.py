"""Celery's ``crontab`` schedule: field parsing and the local-time calendar engine.

Why not hand crontab() to cronsim like :func:`~conveyor.beat.schedules.cronstring.cron`?  Celery's
``crontab`` ANDs ``day_of_month`` and ``day_of_week`` when both are restricted, while every cron
implementation (cronsim included) ORs them; Celery also accepts wrap-around ranges (``fri-mon``,
``22-2``) that cron rejects.  The engine below implements Celery's field semantics with the same
DST rules cronsim applies to cron strings (see :mod:`conveyor.beat.schedules`); the tests
cross-check the two on expressions where both agree.
"""

from __future__ import annotations

import calendar
import functools
import math
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from .base import UTC_ZONE, Schedule, ScheduleError, TzLike, check_time, resolve_tz, zone_name

__all__ = ["Crontab", "crontab"]

CronField = int | str | Iterable[int | str]

# Index == value: Sunday is 0 (and 7 is accepted as Sunday too, as in cron).
DAY_NAMES = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
MONTH_NAMES = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)


@dataclass(frozen=True)
class _Field:
    name: str
    lo: int
    hi: int  # inclusive; for day_of_week 7 (an alias of 0) so "5-7" and "0-7" parse like cron
    names: dict[str, int]


def _name_table(names: tuple[str, ...], first: int) -> dict[str, int]:
    """Three-letter abbreviation -> value: a name is looked up by its first three letters."""
    return {full[:3]: first + i for i, full in enumerate(names)}


FIELDS = {
    "minute": _Field("minute", 0, 59, {}),
    "hour": _Field("hour", 0, 23, {}),
    "day_of_week": _Field("day_of_week", 0, 7, _name_table(DAY_NAMES, 0)),
    "day_of_month": _Field("day_of_month", 1, 31, {}),
    "month_of_year": _Field("month_of_year", 1, 12, _name_table(MONTH_NAMES, 1)),
}


def _atom(f: _Field, text: str, spec: str) -> int:
    """One number or name of a field, range-checked."""
    if text.isascii() and text.isdigit():
        value = int(text)
        if not f.lo <= value <= f.hi:
            raise ScheduleError(f"invalid crontab {f.name} {spec!r}: {value} is out of range {f.lo}-{f.hi}")
        return value
    # Celery matches a day or month name by its first three letters (celery.utils.time.weekday
    # and yearmonth take name[0:3]), so ported schedules say "tues", "thurs", "weds", "sept" as
    # well as "tue" and "tuesday".  Accept exactly that: letters only, at least three of them.
    if f.names and len(text) >= 3 and text.isascii() and text.isalpha() and text[:3] in f.names:
        return f.names[text[:3]]
    if not f.names:
        raise ScheduleError(f"invalid crontab {f.name} {spec!r}: {text!r} is not a valid number")
    known = ", ".join(f.names)
    raise ScheduleError(
        f"invalid crontab {f.name} {spec!r}: {text!r} is not a valid number or name "
        f"(a name must start with one of: {known})"
    )


def _part(f: _Field, part: str, spec: str) -> list[int]:
    """Expand one comma-separated part: ``*``, ``*/n``, ``a``, ``a-b``, ``a-b/n``, ``a/n``."""
    base, slash, step_text = part.partition("/")
    step = 1
    if slash:
        if not (step_text.isascii() and step_text.isdigit()) or int(step_text) == 0:
            raise ScheduleError(
                f"invalid crontab {f.name} {spec!r}: step {step_text!r} must be a positive integer"
            )
        step = int(step_text)
    # day_of_week's 7 only exists as an alias of Sunday: "*" means the seven days 0-6, and a
    # range or a/n series starting at 7 starts at 0 ("7-1" = sun,mon; "7/2" = sun,tue,thu,sat).
    dow = f.name == "day_of_week"
    top = 6 if dow else f.hi
    if base == "*":
        values = list(range(f.lo, top + 1))
    elif "-" in base:
        start_text, _, end_text = base.partition("-")
        start, end = _atom(f, start_text, spec), _atom(f, end_text, spec)
        start = 0 if dow and start == 7 else start
        if start <= end:
            values = list(range(start, end + 1))
        else:
            # Celery's wrap-around ranges: "fri-mon" = fri,sat,sun,mon; "22-2" = 22,23,0,1,2.
            values = list(range(start, top + 1)) + list(range(f.lo, end + 1))
    else:
        start = _atom(f, base, spec)
        start = 0 if dow and start == 7 and slash else start
        # "a/n" (a cron extension cronsim also accepts) means "a-max/n"; a plain "a" is one value.
        values = list(range(start, top + 1)) if slash else [start]
    return values[::step]


def parse_field(name: str, value: object) -> tuple[str, frozenset[int]]:
    """Parse one crontab field into (canonical spec text, set of allowed values).

    >>> parse_field("day_of_week", "mon-fri")
    ('mon-fri', frozenset({1, 2, 3, 4, 5}))
    """
    f = FIELDS[name]
    parts: list[str]
    if isinstance(value, bool):  # bool is an int subclass; crontab(minute=True) is a bug
        raise ScheduleError(f"invalid crontab {name}: expected int, str or an iterable of them, got bool")
    if isinstance(value, int):
        parts, spec, display = [str(value)], str(value), str(value)
    elif isinstance(value, str):
        if len(value.split()) > 1 and "," not in value:  # "0 4 * * *": a whole expression
            raise ScheduleError(
                f"invalid crontab {name} {value!r}: one field holds no spaces; for a whole cron "
                f"expression use crontab.from_string({value!r})"
            )
        # Spaces are allowed ("0, 30") and names are case-insensitive: normalise both away.
        spec = display = "".join(value.split()).lower()
        if not spec:
            raise ScheduleError(f"invalid crontab {name} {value!r}: empty field")
        parts = spec.split(",")
    elif isinstance(value, Iterable):
        items = list(value)
        for item in items:
            if isinstance(item, bool) or not isinstance(item, int | str):
                raise ScheduleError(
                    f"invalid crontab {name}: iterable items must be int or str, got {type(item).__name__}"
                )
        if not items:
            raise ScheduleError(f"invalid crontab {name}: empty iterable")
        parts = ["".join(str(item).split()).lower() for item in items]
        spec, display = "", ",".join(parts)  # spec is rebuilt below from the expanded values
    else:
        raise ScheduleError(
            f"invalid crontab {name}: expected int, str or an iterable of them, got {type(value).__name__}"
        )
    values: set[int] = set()
    for part in parts:
        if not part:
            raise ScheduleError(f"invalid crontab {name} {display!r}: empty list item")
        values.update(_part(f, part, display))
    if name == "day_of_week" and 7 in values:
        values.discard(7)
        values.add(0)
    if not spec:
        spec = ",".join(str(v) for v in sorted(values))
    return spec, frozenset(values)


@dataclass(frozen=True)
class CronFields:
    """Expanded crontab fields; ``wall_clock`` selects the DST rule (see schedules module docs)."""

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    wall_clock: bool

    def date_matches(self, d: date) -> bool:
        # Celery semantics: month AND day-of-month AND day-of-week must all match.
        return d.month in self.months and d.day in self.days and (d.isoweekday() % 7) in self.weekdays

    def ever_matches(self) -> bool:
        """Whether some (month, day) pair exists at all; Feb 29 counts (leap years)."""
        lengths = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
        return any(day <= lengths[m - 1] for m in self.months for day in self.days)


def _gap_end(before: int, after: int, tz: ZoneInfo) -> int:
    """First instant (epoch s) of the new offset, for a DST gap between ``before`` and ``after``.

    ``before`` still has the old offset, ``after`` the new one; offsets change on whole seconds,
    so a bisection over integers is exact.
    """
    new_offset = datetime.fromtimestamp(after, tz).utcoffset()
    while after - before > 1:
        mid = (before + after) // 2
        if datetime.fromtimestamp(mid, tz).utcoffset() == new_offset:
            after = mid
        else:
            before = mid
    return after


def _resolve(naive: datetime, tz: ZoneInfo, wall_clock: bool) -> list[int]:
    """Real instants for one local wall time, applying the DST rules."""
    early = int(naive.replace(tzinfo=tz, fold=0).timestamp())
    late = int(naive.replace(tzinfo=tz, fold=1).timestamp())
    if early == late:
        return [early]
    if early < late:
        # Ambiguous (fall-back overlap): fold=0 is the first occurrence, fold=1 the second.
        return [early] if wall_clock else [early, late]
    # Non-existent (spring-forward gap).  zoneinfo maps fold=0 with the old offset, which lands
    # after the gap, and fold=1 before it.  A wall-clock entry runs when the gap ends.
    return [_gap_end(late, early, tz)] if wall_clock else []


def _plain_hour(d: date, h: int, tz: ZoneInfo) -> int | None:
    """Epoch of local ``h:00`` on ``d`` if every minute of that hour has one instant at one
    offset (no DST transition inside the hour), else None.  Checking minutes 0 and 59 suffices
    because no zone has two transitions within one hour."""
    first, last = datetime(d.year, d.month, d.day, h, 0), datetime(d.year, d.month, d.day, h, 59)
    a0, a1 = first.replace(tzinfo=tz, fold=0).timestamp(), first.replace(tzinfo=tz, fold=1).timestamp()
    b0, b1 = last.replace(tzinfo=tz, fold=0).timestamp(), last.replace(tzinfo=tz, fold=1).timestamp()
    return int(a0) if a0 == a1 and b0 == b1 and b0 - a0 == 59 * 60 else None


@functools.lru_cache(maxsize=512)
def day_slots(fields: CronFields, tz: ZoneInfo, d: date) -> tuple[int, ...]:
    """All firing instants (sorted epoch seconds) for local date ``d``; cached because a
    minutely entry has 1440 of them and ``slots_between`` asks for one day many times."""
    if not fields.date_matches(d):
        return ()
    if tz.key == "UTC":
        midnight = calendar.timegm(d.timetuple())
        return tuple(midnight + h * 3600 + m * 60 for h in fields.hours for m in fields.minutes)
    found: set[int] = set()
    for h in fields.hours:
        top = _plain_hour(d, h, tz)
        if top is not None:  # the common case: four conversions instead of two per minute
            found.update(top + m * 60 for m in fields.minutes)
            continue
        for m in fields.minutes:
            found.update(_resolve(datetime(d.year, d.month, d.day, h, m), tz, fields.wall_clock))
    return tuple(sorted(found))


# A schedule that passed CronFields.ever_matches() fires at least once in any 400-year span
# (the Gregorian calendar repeats every 400 years), so the searches below always terminate.
_HORIZON_YEARS = 401


def _dates_from(fields: CronFields, start: date) -> Iterator[date]:
    """Matching local dates from ``start`` onwards, skipping whole months that cannot match."""
    d = start
    end_year = min(start.year + _HORIZON_YEARS, date.max.year - 1)
    while d.year <= end_year:
        if d.month not in fields.months:
            d = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
            continue
        if fields.date_matches(d):
            yield d
        d += timedelta(days=1)


def _dates_back(fields: CronFields, start: date) -> Iterator[date]:
    """Matching local dates from ``start`` backwards, skipping whole months that cannot match."""
    d = start
    end_year = max(start.year - _HORIZON_YEARS, date.min.year + 1)
    while d.year >= end_year:
        if d.month not in fields.months:
            d = date(d.year, d.month, 1) - timedelta(days=1)
            continue
        if fields.date_matches(d):
            yield d
        d -= timedelta(days=1)


# Both searches start one day beyond t's local date: with a fold or a transition near midnight,
# instants near t can carry the neighbouring local date.  Per-day lists never interleave.


def next_after(fields: CronFields, tz: ZoneInfo, t: float) -> float:
    """First firing instant strictly after ``t`` (epoch seconds), or ``inf`` if none in 400 years."""
    for d in _dates_from(fields, datetime.fromtimestamp(t, tz).date() - timedelta(days=1)):
        slots = day_slots(fields, tz, d)
        i = bisect_right(slots, t)
        if i < len(slots):
            return float(slots[i])
    return math.inf


def last_at_or_before(fields: CronFields, tz: ZoneInfo, t: float) -> float:
    """Last firing instant at or before ``t``, or ``-inf`` if none in 400 years."""
    for d in _dates_back(fields, datetime.fromtimestamp(t, tz).date() + timedelta(days=1)):
        slots = day_slots(fields, tz, d)
        i = bisect_right(slots, t)
        if i:
            return float(slots[i - 1])
    return -math.inf


# ---------------------------------------------------------------------------------------------
# Human-readable descriptions


def _join(words: list[str], conj: str = "and") -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + f" {conj} " + words[-1]


def _describe_weekdays(days: frozenset[int]) -> str:
    order = [1, 2, 3, 4, 5, 6, 0]  # Monday first, as people read a week
    ordered = [d for d in order if d in days]
    positions = [order.index(d) for d in ordered]
    if len(ordered) >= 3 and positions == list(range(positions[0], positions[0] + len(ordered))):
        return f"{DAY_NAMES[ordered[0]].title()} through {DAY_NAMES[ordered[-1]].title()}"
    return _join([DAY_NAMES[d].title() for d in ordered])


def describe(fields: CronFields, specs: dict[str, str], tz_name: str) -> str:
    """English description, e.g. ``at 04:00 on Sunday (UTC)``."""
    minutes, hours = fields.minutes, fields.hours
    all_minutes, all_hours = len(minutes) == 60, len(hours) == 24
    if all_minutes and all_hours:
        when = "every minute"
    elif all_minutes:
        when = f"every minute of hour {specs['hour']}"
    elif len(minutes) == 1 and all_hours:
        m = minutes[0]
        when = "every hour, on the hour" if m == 0 else f"at {m} minute{'s' * (m != 1)} past every hour"
    elif len(minutes) * len(hours) <= 6 and not all_hours:
        when = "at " + _join([f"{h:02d}:{m:02d}" for h in hours for m in minutes])
    elif all_hours:
        when = f"at minute {specs['minute']} of every hour"
    else:
        when = f"at minute {specs['minute']} of hour {specs['hour']}"
    parts = [when]
    dom_all, dow_all = len(fields.days) == 31, len(fields.weekdays) == 7
    days_text = ", ".join(str(d) for d in sorted(fields.days))
    if not dom_all and not dow_all:
        weekdays = _join([DAY_NAMES[d].title() for d in sorted(fields.weekdays)], "or")
        parts.append(f"on day{'s' * (len(fields.days) > 1)} {days_text} of the month if it is a {weekdays}")
    elif not dom_all:
        parts.append(f"on day{'s' * (len(fields.days) > 1)} {days_text} of the month")
    elif not dow_all:
        parts.append("on " + _describe_weekdays(fields.weekdays))
    if len(fields.months) != 12:
        parts.append("in " + _join([MONTH_NAMES[m - 1].title() for m in sorted(fields.months)]))
    return " ".join(parts) + f" ({tz_name})"


# ---------------------------------------------------------------------------------------------
# Celery-style crontab


class Crontab(Schedule):
    """Celery's ``crontab``: fires when minute, hour, day of month, month and day of week all match.

    Field syntax (case-insensitive, spaces ignored): ``*``, ``*/15``, ``5``, ``0,30``, ``1-5``,
    ``1-30/5``, ``10/5`` (10 to max, step 5), names matched by their first three letters as in
    Celery (``mon``/``monday``, ``tues``, ``thurs``, ``weds``, ``jan``/``january``, ``sept``),
    wrap-around ranges ``fri-mon`` / ``22-2``; an int or an iterable of ints/names also works.
    day_of_week: 0 or 7 = Sunday.  If both ``day_of_month`` and ``day_of_week`` are restricted,
    a day must match both (Celery's rule; standard cron, see :func:`cron`, matches either).

    >>> crontab(minute=5).describe()
    'at 5 minutes past every hour (UTC)'
    """

    __slots__ = ("_fields", "_specs", "_tz")

    def __init__(
        self,
        minute: CronField = "*",
        hour: CronField = "*",
        day_of_week: CronField = "*",
        day_of_month: CronField = "*",
        month_of_year: CronField = "*",
        *,
        tz: TzLike = None,
    ) -> None:
        raw = {
            "minute": minute,
            "hour": hour,
            "day_of_week": day_of_week,
            "day_of_month": day_of_month,
            "month_of_year": month_of_year,
        }
        specs: dict[str, str] = {}
        sets: dict[str, frozenset[int]] = {}
        for name, value in raw.items():
            specs[name], sets[name] = parse_field(name, value)
        self._specs = specs
        self._tz = resolve_tz(tz)
        self._fields = CronFields(
            minutes=tuple(sorted(sets["minute"])),
            hours=tuple(sorted(sets["hour"])),
            days=sets["day_of_month"],
            months=sets["month_of_year"],
            weekdays=sets["day_of_week"],
            wall_clock=not specs["minute"].startswith("*") and not specs["hour"].startswith("*"),
        )
        if not self._fields.ever_matches():
            raise ScheduleError(
                f"invalid crontab: day_of_month {specs['day_of_month']!r} never occurs in "
                f"month_of_year {specs['month_of_year']!r}"
            )

    @classmethod
    def from_string(cls, expr: str, tz: TzLike = None) -> crontab:
        """Celery's ``crontab.from_string``: the five fields of a cron expression, in cron's order
        (minute hour day-of-month month day-of-week).

        >>> crontab.from_string("0 4 * * mon-fri") == crontab(minute=0, hour=4, day_of_week="mon-fri")
        True
        """
        fields = expr.split()
        if len(fields) != 5:
            raise ScheduleError(
                f"invalid cron expression {expr!r}: expected 5 fields "
                f"(minute hour day-of-month month day-of-week), got {len(fields)}"
            )
        minute, hour, day_of_month, month_of_year, day_of_week = fields
        return cls(minute, hour, day_of_week, day_of_month, month_of_year, tz=tz)

    # Celery exposes the expanded sets under the field names.
    @property
    def minute(self) -> frozenset[int]:
        return frozenset(self._fields.minutes)

    @property
    def hour(self) -> frozenset[int]:
        return frozenset(self._fields.hours)

    @property
    def day_of_week(self) -> frozenset[int]:
        return self._fields.weekdays

    @property
    def day_of_month(self) -> frozenset[int]:
        return self._fields.days

    @property
    def month_of_year(self) -> frozenset[int]:
        return self._fields.months

    @property
    def tz(self) -> ZoneInfo | None:
        return self._tz

    @property
    def wall_clock(self) -> bool:
        """True when the DST wall-clock rule applies (see the module docstring)."""
        return self._fields.wall_clock

    def with_tz(self, tz: TzLike) -> Crontab:
        """A copy in another timezone."""
        return Crontab(**self._specs, tz=tz)

    def next_after(self, t: float) -> float:
        """The first slot strictly after ``t``.

        >>> crontab(minute=0, hour=4).next_after(0.0)
        14400.0
        """
        check_time(t)
        return next_after(self._fields, self._tz or UTC_ZONE, t)

    def last_at_or_before(self, t: float) -> float:
        check_time(t)
        return last_at_or_before(self._fields, self._tz or UTC_ZONE, t)

    def describe(self) -> str:
        return describe(self._fields, self._specs, zone_name(self._tz))

    def to_dict(self) -> dict[str, Any]:
        return {"type": "crontab", **self._specs, "tz": None if self._tz is None else self._tz.key}

    def _key(self) -> tuple[object, ...]:
        tz_key = None if self._tz is None else self._tz.key
        return (self._fields, tz_key)

    def __eq__(self, other: object) -> bool:
        # Like Celery, equal expanded fields are equal schedules ("0-6" == "*" for day_of_week)
        # -- plus the DST rule, which the minute/hour spelling selects.
        if not isinstance(other, Crontab):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        args = ", ".join(f"{name}={spec!r}" for name, spec in self._specs.items() if spec != "*")
        tz = f"tz={zone_name(self._tz)!r}" if self._tz is not None else ""
        return f"crontab({', '.join(a for a in (args, tz) if a)})"


# The brief's public name is Celery's lowercase class name; isinstance(x, crontab) keeps working.
crontab = Crontab

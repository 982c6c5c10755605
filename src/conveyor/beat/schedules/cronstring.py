"""Standard 5-field cron strings: ``cron("0 */6 * * *")``, validated by ``cronsim``.

Named ``cronstring`` rather than ``cron`` so that ``conveyor.beat.schedules.cron`` stays the
function everyone imports, not this module.  Evaluated by the crontab engine
(:mod:`.crontab`) whenever the expression allows it; see :class:`Cron` for why.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

from .base import Schedule, ScheduleError, TzLike, check_time, resolve_tz, zone_name
from .crontab import Crontab

__all__ = ["Cron", "cron"]

# Vixie cron's macros; cronsim does not know them, so translate before handing over.
MACROS = {
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


_CRON_ORDER = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")


def _which_field(expr: str, exc: Exception) -> str:
    """What is wrong with a cron expression cronsim refused ("Bad minute"): the first field the
    crontab parser refuses too, with its reason ("minute '61': 61 is out of range 0-59").

    >>> _which_field("61 * * * *", ValueError("Bad minute"))
    "minute '61': 61 is out of range 0-59"
    """
    from .crontab import parse_field

    for name, value in zip(_CRON_ORDER, expr.split(), strict=False):
        if any(c in value.upper() for c in "LW#?"):  # cron syntax only cronsim reads: its word
            return str(exc)
        try:
            parse_field(name, value)
        except ScheduleError as bad:
            return str(bad).removeprefix("invalid crontab ")
    return str(exc)


class Cron(Schedule):
    """A standard 5-field cron expression (minute hour day-of-month month day-of-week).

    Validated by ``cronsim`` (maintained, typed, and -- unlike croniter -- it implements the
    Debian cron DST rule this module documents).  Six-field (seconds) expressions are refused:
    cronsim switches its DST handling off for them.  A restricted day-of-month and day-of-week
    are ORed, as in every cron (Vixie's rule: a field starting with ``*`` makes it an AND).
    Also accepts ``@daily``-style macros.

    Evaluated by the :mod:`~conveyor.beat.schedules.crontab` engine whenever the expression is in the
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
        self._cronsim_expr = _ONE_VALUE_RANGE.sub(r"\1", MACROS.get(self._expr.lower(), self._expr))
        if len(self._cronsim_expr.split()) != 5:
            raise ScheduleError(
                f"invalid cron expression {expr!r}: expected 5 fields "
                f"(minute hour day-of-month month day-of-week), got {len(self._expr.split())}"
            )
        self._tz = resolve_tz(tz)
        try:
            CronSim(self._cronsim_expr, datetime(2000, 1, 1, tzinfo=UTC))
        except (CronSimError, ValueError) as exc:
            why = _which_field(self._cronsim_expr, exc)
            raise ScheduleError(f"invalid cron expression {expr!r}: {why}") from None
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

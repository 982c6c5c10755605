"""From configuration and from storage to a :class:`~.base.Schedule`, whatever its kind."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from .base import Schedule, ScheduleError, TzLike
from .cronstring import MACROS, Cron, cron
from .crontab import Crontab
from .interval import Interval, every

__all__ = ["schedule_from_dict", "to_schedule"]


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
        if " " in text or text.lower() in MACROS:
            return cron(text, tz=default_tz)
        raise ScheduleError(
            f"schedule string {value!r} is not a cron expression; "
            "write e.g. '*/15 * * * *' or give a number of seconds"
        )
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
    fields = {name: d[name] for name in ("minute", "hour", "day_of_week", "day_of_month", "month_of_year")}
    return Crontab(**fields, tz=d["tz"])

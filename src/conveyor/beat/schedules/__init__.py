"""Schedule math for the periodic scheduler (beat): pure, deterministic, no I/O.

Every schedule answers questions in epoch seconds (``float``), never in wall-clock datetimes, so a
jump of the machine's clock or a DST change cannot skip or repeat anything by itself.  A *slot* is
the epoch-second instant at which an entry is due, rounded to milliseconds; the scheduler uses it
as the idempotency key of (entry, slot), so every scheduler instance must compute identical slots.

Kinds of schedule (all subclasses of :class:`Schedule`):

* :func:`every` -- a fixed interval on an anchored grid: slot k = anchor + k * interval, computed in
  integer milliseconds, so drift never accumulates.  The default anchor is the Unix epoch, which
  needs no coordination between scheduler instances (``every(3600)`` fires on the hour, UTC).
* :func:`~conveyor.beat.schedules.crontab.crontab` -- Celery's ``crontab`` with Celery's field syntax and
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

Modules, each importing only those before it: :mod:`.base` (``Schedule``, ``ScheduleError``,
timezones), :mod:`.interval` (``every``), :mod:`.crontab` (Celery's ``crontab`` and the calendar
engine), :mod:`.cronstring` (``cron`` strings, evaluated by that engine), :mod:`.convert`
(``to_schedule``, ``schedule_from_dict``).

>>> from conveyor.beat.schedules.crontab import crontab
>>> s = crontab(minute=0, hour=4, day_of_week="sun")
>>> s.describe()
'at 04:00 on Sunday (UTC)'
>>> s.next_after(0.0)  # the first Sunday after 1970-01-01 00:00 UTC is Jan 4th
273600.0
"""

from .base import UTC_ZONE, Schedule, ScheduleError, TzLike, check_time, resolve_tz, zone_name
from .convert import schedule_from_dict, to_schedule
from .cronstring import Cron, cron
from .crontab import Crontab
from .interval import Interval, every

__all__ = [
    "UTC_ZONE",
    "Cron",
    "Crontab",
    "Interval",
    "Schedule",
    "ScheduleError",
    "TzLike",
    "check_time",
    "cron",
    "every",
    "resolve_tz",
    "schedule_from_dict",
    "to_schedule",
    "zone_name",
]

"""django_celery_beat's periodic tasks into Conveyor's schedules (``manage.py conveyor_import_beat``).

django_celery_beat keeps each periodic task as a ``PeriodicTask`` row pointing at an
``IntervalSchedule`` or ``CrontabSchedule`` row. Each becomes a runtime entry in the broker
(``app.schedules``: shown by ``conveyor schedule list``, edited with ``conveyor schedule ...``),
under the row's name:

==========================  ===================================================================
``PeriodicTask``            Conveyor
==========================  ===================================================================
interval (every, period)    an interval schedule of that many seconds
crontab (+ timezone)        ``crontab(minute, hour, day_of_week, day_of_month, month_of_year,
                            tz=timezone)``, same field syntax and day numbering
enabled                     the entry is enabled or disabled
args, kwargs (JSON)         the entry's arguments
queue, priority, headers    the entry's ``queue``, ``priority`` (kept as is: in Conveyor 9
                            runs first, in Celery on Redis 0 does), ``headers``
expire_seconds              ``expires`` (seconds after each slot is sent, the same meaning)
expires (a date)            past: imported disabled; future: imported, with a note (Conveyor
                            entries have no end date: disable it then)
one_off                     not a schedule: one task enqueued for the row's next slot, once
                            (its id is fixed, so importing again does not enqueue it again);
                            a one-off row that already ran is skipped
start_time in the future    the entry is imported disabled, with a note (enable it then)
solar, clocked              not imported (reported): Conveyor has no such schedules
``celery.backend_cleanup``  not imported: Conveyor expires results itself
==========================  ===================================================================

Importing again updates the entries (their run state is kept). Entries Conveyor already has
that are not django_celery_beat rows are never touched.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ...beat.entry import EntryError, build_entry, check_task
from ...beat.schedules import Schedule, every
from ...beat.schedules.crontab import crontab

if TYPE_CHECKING:
    from ...app import Conveyor

#: Seconds in each of django_celery_beat's interval periods.
PERIOD_SECONDS = {"days": 86400.0, "hours": 3600.0, "minutes": 60.0, "seconds": 1.0, "microseconds": 1e-6}
SKIPPED_TASKS = {"celery.backend_cleanup": "Conveyor expires results itself (result_expires)"}


@dataclass
class ImportReport:
    """What an import did, row by row (``lines`` is what the command prints)."""

    imported: list[str] = field(default_factory=list)
    one_off: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def say(self, line: str) -> None:
        self.lines.append(line)


def import_periodic_tasks(app: Conveyor, *, dry_run: bool = False, check_tasks: bool = True) -> ImportReport:
    """Import every ``PeriodicTask`` row into ``app``'s schedules; see the module docstring.

    >>> report = import_periodic_tasks(current_app())                       # doctest: +SKIP
    >>> report.imported  # doctest: +SKIP
    ['refresh-weather', 'nightly-cleanup']
    """
    from django_celery_beat.models import PeriodicTask

    report = ImportReport()
    rows = PeriodicTask.objects.select_related("interval", "crontab").order_by("name")
    for row in rows:
        try:
            _import_row(app, row, report, dry_run, check_tasks)
        except (EntryError, ValueError) as exc:
            report.failed.append(row.name)
            report.say(f"failed   {row.name}: {exc}")
    return report


def _import_row(app: Conveyor, row: Any, report: ImportReport, dry_run: bool, check_tasks: bool) -> None:
    name = row.name
    why_not = SKIPPED_TASKS.get(row.task) or _unsupported(row)
    if why_not:
        report.skipped.append(name)
        report.say(f"skipped  {name}: {why_not}")
        return
    schedule = _schedule(row)
    args, kwargs = _json(row.args, list, "args"), _json(row.kwargs, dict, "kwargs")
    options, notes = _options(row)
    now = time.time()
    enabled = bool(row.enabled)
    if row.expires is not None and row.expires.timestamp() <= now:
        enabled = False
        notes.append("its expiry date has passed: imported disabled")
    elif row.expires is not None:
        notes.append(f"it expires {row.expires.isoformat()}: disable it then (entries have no end date)")
    if row.start_time is not None and row.start_time.timestamp() > now and enabled:
        enabled = False
        notes.append(f"it starts {row.start_time.isoformat()}: imported disabled, enable it then")
    # Everything is checked first, so that --dry-run reports what the import would refuse.
    entry = build_entry(name, row.task, schedule, args=args, kwargs=kwargs, options=options)
    if check_tasks:
        check_task(app, entry)
    if row.one_off:
        _one_off(app, row, schedule, args, kwargs, options, report, dry_run, now)
        return
    if not dry_run:
        app.schedules.add(
            name,
            row.task,
            schedule,
            args=args,
            kwargs=kwargs,
            options=options,
            enabled=enabled,
            replace=True,
            check_task=False,
        )
        # replace=True keeps an existing entry's enabled flag: the row's flag wins.
        (app.schedules.enable if enabled else app.schedules.disable)(name)
    report.imported.append(name)
    state = "enabled" if enabled else "disabled"
    report.say(f"imported {name}: {row.task} {schedule.describe()} ({state})")
    for note in notes:
        report.say(f"         {name}: {note}")


def _one_off(
    app: Conveyor,
    row: Any,
    schedule: Schedule,
    args: list[Any],
    kwargs: dict[str, Any],
    options: dict[str, Any],
    report: ImportReport,
    dry_run: bool,
    now: float,
) -> None:
    """A one-off row: one task at its next slot, under a fixed id (importing twice sends it once)."""
    if row.total_run_count or row.last_run_at is not None or not row.enabled:
        report.skipped.append(row.name)
        report.say(f"skipped  {row.name}: a one-off task that already ran or is disabled")
        return
    when = schedule.next_after(now)
    if not dry_run:
        send_options = {k: v for k, v in options.items() if k in ("queue", "priority", "headers")}
        app.send_task(
            row.task,
            args,
            kwargs,
            task_id=f"beat-import:{row.name}",
            eta=datetime.fromtimestamp(when).astimezone(),
            **send_options,
        )
    report.one_off.append(row.name)
    report.say(
        f"one-off  {row.name}: {row.task} enqueued once for {datetime.fromtimestamp(when).isoformat()}"
    )


def _unsupported(row: Any) -> str | None:
    if getattr(row, "solar_id", None) is not None:
        return "solar schedules are not supported by Conveyor"
    if getattr(row, "clocked_id", None) is not None:
        return "clocked (one date) schedules are not supported: use apply_async(eta=...)"
    if row.interval_id is None and row.crontab_id is None:
        return "no schedule"
    return None


def _schedule(row: Any) -> Schedule:
    if row.interval is not None:
        interval = row.interval
        seconds = PERIOD_SECONDS.get(interval.period)
        if seconds is None:
            raise ValueError(f"unknown interval period {interval.period!r}")
        return every(interval.every * seconds)
    tab = row.crontab
    return crontab(
        minute=tab.minute,
        hour=tab.hour,
        day_of_week=tab.day_of_week,
        day_of_month=tab.day_of_month,
        month_of_year=tab.month_of_year,
        tz=str(tab.timezone) if tab.timezone else None,
    )


def _options(row: Any) -> tuple[dict[str, Any], list[str]]:
    options: dict[str, Any] = {}
    notes: list[str] = []
    if row.queue:
        options["queue"] = row.queue
    if row.priority is not None:
        options["priority"] = row.priority
        notes.append(f"priority {row.priority} kept as is: in Conveyor 9 runs first (Celery on Redis: 0)")
    if row.expire_seconds:
        options["expires"] = float(row.expire_seconds)
    headers = _json(row.headers, dict, "headers")
    if headers:
        options["headers"] = headers
    if row.exchange or row.routing_key:
        notes.append("exchange/routing_key are AMQP routing: not used (queue is)")
    return options, notes


def _json(text: str | None, kind: type[list[Any]] | type[dict[str, Any]], what: str) -> Any:
    if not text or not text.strip():
        return kind()
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, kind):
        raise ValueError(f"{what} must be a JSON {'list' if kind is list else 'object'}, got {text!r}")
    return value

"""Periodic entries as the dashboard and the HTTP API show them, read from beat's store in the
broker (beat/store.py): the schedule, next and last run, run count, last error.

Editing (enable, disable, run now, change the schedule) goes through ``app.schedules``
(beat/api.py), which needs the app to send a task; reading needs only the broker.

>>> [(s.name, s.schedule, s.enabled) for s in app.admin.schedules()]    # doctest: +SKIP
[('poll-aircraft', 'every 2s', True)]
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..beat.api import ScheduledEntry, entry_view
from ..beat.lease import current_leader
from ..beat.store import ScheduleStore
from ..brokers import Broker
from ..message import describe_args


@dataclass(frozen=True, slots=True)
class ScheduleInfo:
    """One periodic entry. ``next_run`` None: disabled, or it never runs again."""

    name: str
    task: str
    schedule: str  # "every 2s", "cron '0 4 * * sun' (Europe/Berlin)", ...
    enabled: bool
    args: str  # the arguments it sends, shortened
    queue: str | None
    source: str  # declared (in the app's code) or runtime (added through the API or CLI)
    next_run: float | None
    last_run: float | None
    total_runs: int
    last_error: str | None


def schedule_info(item: ScheduledEntry) -> ScheduleInfo:
    e = item.entry
    queue = e.options.get("queue")
    return ScheduleInfo(
        name=e.name,
        task=e.task,
        schedule=e.schedule.describe(),
        enabled=e.enabled,
        args=describe_args(list(e.args), dict(e.kwargs)),
        queue=str(queue) if queue is not None else None,
        source=e.source,
        next_run=item.next_run,
        last_run=item.last_run_at,
        total_runs=item.total_runs,
        last_error=item.last_error,
    )


def schedules(broker: Broker) -> list[ScheduleInfo]:
    """Every readable stored entry, by name."""
    now = time.time()
    return [schedule_info(entry_view(s, now)) for _, s in sorted(ScheduleStore(broker).load().items())]


def leader(broker: Broker) -> str | None:
    """The owner of the scheduler leading now, or None when no scheduler runs."""
    found = current_leader(broker)
    return str(found["owner"]) if found else None

"""``conveyor beat``: run a scheduler.  Start as many as you like; exactly one leads."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

import click

from ..app import Conveyor
from ..beat.entry import EntryError
from ..beat.scheduler import Scheduler
from .celery_flags import BEAT_NOTES, announce_runbook_flags, announce_schedule_file, runbook_flags
from .common import State, import_task_modules, log_options, setup_logging

logger = logging.getLogger("conveyor.beat")


class BadSchedule(click.ClickException):
    """A bad declared entry: one line on stderr, exit code 2, nothing written."""

    exit_code = 2


def prepared_scheduler(app: Conveyor, *, check_tasks: bool = True) -> Scheduler:
    """A scheduler whose declared entries are validated and synced (exit 2 if any is bad)."""
    import_task_modules(app)  # declared entries are checked against the registered tasks
    scheduler = Scheduler(app)
    try:
        scheduler.prepare(check_tasks=check_tasks)
    except EntryError as exc:
        raise BadSchedule(str(exc)) from None
    return scheduler


class BeatThread:
    """A scheduler on a daemon thread, for ``conveyor worker --beat``.

    >>> with BeatThread(prepared_scheduler(app)):      # doctest: +SKIP
    ...     worker.run()
    """

    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        self.thread = threading.Thread(target=scheduler.run, name="conveyor-beat", daemon=True)

    def __enter__(self) -> Scheduler:
        self.thread.start()
        return self.scheduler

    def __exit__(self, *exc: object) -> None:
        self.scheduler.stop()  # releases the leader lease so another scheduler takes over at once
        self.thread.join(timeout=10)


@click.command()
@log_options
@click.option(
    "-S",
    "--scheduler",
    "scheduler_cls",
    metavar="CLASS",
    help="Accepted for Celery compatibility and ignored: schedules always live in the broker.",
)
@click.option(
    "-s",
    "--schedule",
    "schedule_file",
    metavar="FILE",
    help="Accepted for Celery compatibility: the schedule state lives in the broker, not in a file.",
)
@click.option(
    "--no-task-check",
    is_flag=True,
    help="Do not require declared tasks to be registered here (they are sent by name).",
)
@runbook_flags(BEAT_NOTES, exclude=False)
@click.pass_obj
def beat(
    state: State,
    loglevel: str,
    logfile: str | None,
    log_format: str,
    scheduler_cls: str | None,
    schedule_file: str | None,
    no_task_check: bool,
) -> None:
    """Run the periodic scheduler: enqueue each entry's task once per schedule slot.

    Run one on every machine you like: they elect a leader through the broker, a follower
    takes over within 5 s when the leader dies, and no slot is ever sent twice.

    \b
    Example:
      conveyor -A proj beat -l info
    """
    state.defer_config_warnings = True  # logged once logging is set up: to --logfile too
    app = state.app  # first: a setup_logging handler it connects replaces Conveyor's setup
    setup_logging(loglevel, logfile, log_format, state)
    if scheduler_cls:
        logger.warning("--scheduler %s ignored: Conveyor keeps schedules in the broker", scheduler_cls)
    announce_schedule_file(schedule_file)
    announce_runbook_flags(logger)
    scheduler = prepared_scheduler(app, check_tasks=not no_task_check)

    def on_signal(signum: int, _frame: Any) -> None:
        logger.info("beat: %s received, stopping", signal.Signals(signum).name)
        scheduler.stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    scheduler.run()

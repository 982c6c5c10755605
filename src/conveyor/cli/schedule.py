"""``conveyor schedule list|add|remove|enable|disable|run|sync``: periodic entries at runtime.

Every edit is live: running schedulers see it within a second.  Bad input (a bad cron string,
zone, interval, option, or an unknown task) is one line on stderr, exit code 2, nothing saved.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import click

from ..beat.api import ScheduledEntry
from ..beat.display import format_ago, format_next_run
from ..beat.entry import EntryError
from ..beat.schedules import Schedule, ScheduleError, every, resolve_tz, to_schedule
from .beat import BadSchedule
from .common import State
from .tasks import _json

_DURATION = re.compile(
    r"^(?:(\d+(?:\.\d+)?)d)?(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$"
)


def parse_schedule(text: str, tz: str | None) -> Schedule:
    """``30``, ``2.5``, ``5m``, ``1h30m`` are intervals; ``"0 */6 * * *"`` / ``@daily`` are cron.

    >>> parse_schedule("1h30m", None)
    every(5400)
    >>> parse_schedule("0 */6 * * *", "Europe/Berlin")
    cron('0 */6 * * *', tz='Europe/Berlin')
    """
    text = text.strip()
    seconds: float | None = None
    try:
        seconds = float(text)
    except ValueError:
        match = _DURATION.match(text) if text else None
        if match and any(match.groups()):
            d, h, m, s = (float(g) if g else 0.0 for g in match.groups())
            seconds = d * 86400 + h * 3600 + m * 60 + s
    if seconds is not None:
        if tz is not None:
            raise ScheduleError("--tz applies to cron schedules only, not to intervals")
        return every(seconds)
    resolve_tz(tz)  # an unknown zone is reported as such, before the expression
    return to_schedule(text, tz)


def _bad(exc: Exception) -> BadSchedule:
    return BadSchedule(str(exc))


@click.group()
def schedule() -> None:
    """Periodic entries stored in the broker: list them, add, change, enable, disable, run now.

    \b
    Examples:
      conveyor -A proj schedule list
      conveyor -A proj schedule add poll proj.tasks.poll_aircraft 2 -Q polling --expires 2
      conveyor -A proj schedule add scrape proj.tasks.scrape "0 */6 * * *" --tz Europe/Berlin
      conveyor -A proj schedule disable poll
    """


@schedule.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per entry (machine-readable).")
@click.pass_obj
def list_(state: State, as_json: bool) -> None:
    """Show every entry: schedule, task, next run, last run, run count, errors."""
    entries = state.app.schedules.entries()
    if as_json:
        for item in entries:
            click.echo(json.dumps(item.to_dict(), sort_keys=True))
        return
    if not entries:
        click.echo("no periodic entries (declared ones appear once a scheduler has started)")
        return
    now = time.time()
    rows = [_row(item, now) for item in entries]
    header = ("NAME", "SCHEDULE", "TASK", "NEXT RUN", "LAST RUN", "RUNS")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        click.echo("  ".join(str(cell).ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    for item in entries:
        if item.last_error:
            click.echo(f"{item.name}: last error: {item.last_error}")
    leader = state.app.schedules.leader()
    click.echo(f"leader: {leader['owner']}" if leader else "leader: none (no scheduler running)")


def _row(item: ScheduledEntry, now: float) -> tuple[Any, ...]:
    next_run = format_next_run(item.next_run, now) if item.enabled else "disabled"
    return (
        item.name,
        item.schedule.describe(),
        item.task,
        next_run,
        format_ago(item.last_run_at, now),
        item.total_runs,
    )


@schedule.command()
@click.argument("name")
@click.argument("task_name", metavar="TASK")
@click.argument("schedule_text", metavar="SCHEDULE")
@click.option("--tz", help="Timezone of a cron schedule (default: the app's timezone).")
@click.option("-a", "--args", "args_json", help="Positional arguments as a JSON array.")
@click.option("-k", "--kwargs", "kwargs_json", help="Keyword arguments as a JSON object.")
@click.option("-Q", "--queue", help="Queue to send to (default: routing, then the task's own).")
@click.option("--priority", type=click.IntRange(0, 9), help="0..9, higher runs first.")
@click.option("--expires", type=float, help="Seconds after sending that an unstarted run is dropped.")
@click.option(
    "--catch-up",
    type=click.Choice(["once", "skip", "all"]),
    default="once",
    show_default=True,
    help="What to do with slots missed while no scheduler ran.",
)
@click.option("--disabled", is_flag=True, help="Store the entry disabled.")
@click.option("--replace", is_flag=True, help="Redefine an existing entry (its state is kept).")
@click.pass_obj
def add(
    state: State,
    name: str,
    task_name: str,
    schedule_text: str,
    tz: str | None,
    args_json: str | None,
    kwargs_json: str | None,
    queue: str | None,
    priority: int | None,
    expires: float | None,
    catch_up: str,
    disabled: bool,
    replace: bool,
) -> None:
    """Add entry NAME: send TASK on SCHEDULE (seconds, 5m, 1h30m, or a cron string).

    \b
    Examples:
      conveyor -A proj schedule add poll proj.tasks.poll_aircraft 2 -Q polling --expires 2
      conveyor -A proj schedule add vacuum proj.tasks.vacuum "0 4 * * sun" --tz UTC
      conveyor -A proj schedule add hourly proj.tasks.aggregate "5 * * * *"
    """
    args = _json(args_json, list, "--args")
    kwargs = _json(kwargs_json, dict, "--kwargs")
    options = {"queue": queue, "priority": priority, "expires": expires}
    try:
        sched = parse_schedule(schedule_text, tz)
        item = state.app_with_tasks.schedules.add(
            name,
            task_name,
            sched,
            args=args,
            kwargs=kwargs,
            options={k: v for k, v in options.items() if v is not None},
            catch_up=catch_up,
            enabled=not disabled,
            replace=replace,
        )
    except (ScheduleError, EntryError) as exc:
        raise _bad(exc) from None
    click.echo(
        f"{item.name}: {item.schedule.describe()}; next run {format_next_run(item.next_run, time.time())}"
    )


@schedule.command()
@click.argument("name")
@click.pass_obj
def remove(state: State, name: str) -> None:
    """Delete entry NAME and its state."""
    if not state.app.schedules.remove(name):
        raise BadSchedule(f"no periodic entry named {name!r}")
    click.echo(f"{name}: removed")


@schedule.command()
@click.argument("name")
@click.pass_obj
def enable(state: State, name: str) -> None:
    """Enable entry NAME (slots missed while disabled are not caught up)."""
    try:
        item = state.app.schedules.enable(name)
    except EntryError as exc:
        raise _bad(exc) from None
    click.echo(f"{name}: enabled; next run {format_next_run(item.next_run, time.time())}")


@schedule.command()
@click.argument("name")
@click.pass_obj
def disable(state: State, name: str) -> None:
    """Disable entry NAME: it is kept, with its state, but not sent."""
    try:
        state.app.schedules.disable(name)
    except EntryError as exc:
        raise _bad(exc) from None
    click.echo(f"{name}: disabled")


@schedule.command()
@click.argument("name")
@click.pass_obj
def run(state: State, name: str) -> None:
    """Send entry NAME's task now, once (its schedule is unaffected); prints the task id."""
    try:
        result = state.app.schedules.run_now(name)
    except (EntryError, TypeError, ValueError) as exc:
        raise _bad(exc) from None
    click.echo(result.id)


@schedule.command()
@click.pass_obj
def sync(state: State) -> None:
    """Write the app's declared entries (beat_schedule) into the broker now."""
    try:
        report = state.app_with_tasks.schedules.sync()
    except EntryError as exc:
        raise _bad(exc) from None
    click.echo(
        f"created {len(report.created)}, updated {len(report.updated)}, "
        f"removed {len(report.removed)}, unchanged {len(report.unchanged)}"
    )

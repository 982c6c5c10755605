"""``conveyor tasks`` and ``conveyor task ID``: the persistent task history, listed and shown.

Both read ``app.admin`` (admin/history.py); the history lives in the broker, so these answer
the same after every worker, dashboard and CLI restart.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from typing import Any

import click

from ..admin import ProgressInfo, TaskInfo
from ..admin.history import LISTED, search_bound_note
from .common import State, lookups
from .display import duration, echo_json, table

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_AGO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


class When(click.ParamType[float]):
    """A point in time: an age (``90s``, ``30m``, ``1h``, ``2d``, ``1w``: that long ago) or an
    ISO 8601 date/time (UTC unless it says otherwise)."""

    name = "WHEN"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        text = str(value)
        ago = _AGO.match(text)
        if ago:
            return time.time() - float(ago.group(1)) * _UNITS[ago.group(2)]
        try:
            when = dt.datetime.fromisoformat(text)
        except ValueError:
            self.fail(f"{text!r} is not an age such as 30m, 1h or 2d, nor an ISO date/time", param, ctx)
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        return when.timestamp()


def _at(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


@click.command("tasks")
@click.option("--state", "task_state", type=click.Choice(LISTED), help="Only tasks in this state.")
@click.option("--name", help="Only this task name (the full, exact name: proj.tasks.add).")
@click.option("-Q", "--queue", help="Only tasks of this queue.")
@click.option("--since", type=When(), help="Only tasks whose latest state is newer: 1h, 30m, 2d or a date.")
@click.option("--until", type=When(), help="Only tasks whose latest state is older: 1h, 30m, 2d or a date.")
@click.option("--search", metavar="TEXT", help="Only tasks whose arguments (or id) contain TEXT (any case).")
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0, help="Start here (a page's next offset).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: the page with its items.")
@click.pass_obj
def tasks(
    state: State,
    task_state: str | None,
    name: str | None,
    queue: str | None,
    since: float | None,
    until: float | None,
    search: str | None,
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """List tasks, newest first: from the persistent history, succeeded, failed (dead or
    not), retrying and revoked tasks as they last ended; from the queues and workers, waiting,
    scheduled (soonest due first) and running ones. Filtered by state, task name, queue, time
    and a text in the arguments; prints the next page's offset.

    \b
    Example:
      conveyor -A proj tasks --state failed --since 1h --search order-4711
      ID       STATE          TASK               ARGS          QUEUE    AT (UTC)             ...  ERROR
      5b1e...  failed (dead)  shop.tasks.charge  'order-4711'  default  2026-12-01 07:02:11  ...  OSError: ...
    """
    page = state.admin().tasks(task_state, name, queue, since, until, search, limit, offset)
    if as_json:
        echo_json(page)
        return
    if not page.items:
        click.echo("no tasks" + _name_hint(state, name))
    rows = [
        [
            t.id,
            t.state + (" (dead)" if t.dead else ""),
            t.name,
            _short(t.args, 30),
            t.queue,
            # Ended, started (running), due (scheduled) or enqueued (waiting).
            _at(t.finished or t.started or t.next_attempt or t.enqueued),
            "-" if t.runtime is None else duration(t.runtime),
            str(t.attempts_made),
            _short(t.error or "", 60),
        ]
        for t in page.items
    ]
    if rows:
        table(rows, ["ID", "STATE", "TASK", "ARGS", "QUEUE", "AT (UTC)", "RUNTIME", "ATTEMPTS", "ERROR"])
    if page.next_offset is not None:
        click.echo(f"more: --offset {page.next_offset}")
    note = search_bound_note(page)
    if note:
        click.echo(note)


def _name_hint(state: State, name: str | None) -> str:
    """Why ``--name`` may have matched nothing: it takes the full name, and Celery users often
    type the function's (``broadcast_gps_update`` for ``trips.tasks.broadcast_gps_update``).
    Only with ``-A``: without the app the registered names are unknown.

    A name no task of the app has is said so too, but it is not an error: another service may
    send tasks under names this app does not register."""
    if name is None or not state.app_spec:
        return ""
    registered = state.app_with_tasks.tasks
    if name in registered:
        return ""
    full = sorted(n for n in registered if n.rpartition(".")[2] == name)
    if full:
        return f": no task is named {name!r}; --name takes the full name: {', '.join(full)}"
    return f": no task of this app is named {name!r}"


@click.command("task")
@click.argument("task_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: the whole record.")
@click.pass_obj
def task(state: State, task_id: str, as_json: bool) -> None:
    """Show one task's full record: name, arguments, queue, priority, state, times, runtime,
    attempts with each one's error, worker, and its result or traceback. Works for a waiting,
    running or finished task; an unknown id exits 2.

    \b
    Example:
      conveyor -A proj task 5b1e0c1e-...
      id:        5b1e0c1e-...
      task:      shop.tasks.charge('order-4711')
      state:     failed (dead letter)
      attempts:  4
      progress:  PROGRESS 40/100 (40.0%) importing rows  at 2026-12-01 07:02:09
        1  retrying  2026-12-01 07:02:10  w1@web-1  OSError: gateway timeout
      ...
    """
    with lookups():
        info = state.admin().task(task_id)
    if as_json:
        echo_json(info)
        return
    _show(info)


def _show(t: TaskInfo) -> None:
    state = t.state + (" (dead letter)" if t.dead else "")
    lines = [
        ("id", t.id),
        ("task", f"{t.name or '?'}({t.args})"),
        ("state", state),
        ("queue", f"{t.queue or '?'}  priority {t.priority}"),
        ("worker", t.worker or "-"),
        ("enqueued", _at(t.enqueued)),
        ("started", _at(t.started)),
        ("finished", _at(t.finished)),
        ("runtime", "-" if t.runtime is None else f"{t.runtime:.3f}s"),
        ("attempts", str(t.attempts_made)),
    ]
    if t.next_attempt is not None:
        lines.append(("next try", _at(t.next_attempt)))
    if t.progress is not None:
        lines.append(("progress", _progress(t.progress)))
    for label, value in lines:
        click.echo(f"{label + ':':<10} {value}")
    for a in t.attempts:
        runtime = "" if a.runtime is None else f"  {a.runtime:.3f}s"
        click.echo(f"  {a.attempt}  {a.state:<8}  {_at(a.at)}  {a.worker or '-'}{runtime}  {a.error or ''}")
    if t.error:
        click.echo(f"{'error:':<10} {t.error}")
    if t.traceback:
        click.echo(t.traceback.rstrip())
    elif t.state == "succeeded":
        click.echo(f"{'result:':<10} {t.result!r}")


def _progress(p: ProgressInfo) -> str:
    """``PROGRESS 40/100 (40.0%) message`` for ``progress()``'s meta, else the state and meta."""
    meta = p.meta
    if isinstance(meta, dict) and "done" in meta and "total" in meta:
        text = f"{meta['done']}/{meta['total']}"
        if meta.get("percent") is not None:
            text += f" ({meta['percent']}%)"
        if meta.get("message"):
            text += f" {meta['message']}"
    else:
        text = json.dumps(meta, default=repr)
    return f"{p.state} {text}  at {_at(p.at)}"

"""``conveyor call``, ``result``, ``purge``."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import click

from .. import states
from ..codecs import COMPRESSIONS, SERIALIZERS
from ..exceptions import ConfigurationError, RemoteError, TimeoutError
from ..options import EnqueueOptions
from .common import NotFound, State

#: ``--compression none``: no compression for this call, whatever the task or app sets.
NO_COMPRESSION = "none"


def _json(value: str | None, kind: type, name: str) -> Any:
    if value is None:
        return kind()
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint=name) from exc
    if not isinstance(parsed, kind):
        raise click.BadParameter(f"must be a JSON {'array' if kind is list else 'object'}", param_hint=name)
    return parsed


@click.command()
@click.argument("task_name", metavar="TASK")
@click.option("-a", "--args", "args_json", help="Positional arguments as a JSON array, e.g. '[1, 2]'.")
@click.option("-k", "--kwargs", "kwargs_json", help="Keyword arguments as a JSON object.")
@click.option(
    "--countdown", type=click.FloatRange(min=0), help="Run no earlier than this many seconds from now."
)
@click.option(
    "--expires", type=click.FloatRange(min=0), help="Seconds after which it is dropped if not started."
)
@click.option("-Q", "--queue", help="Queue (default: routing, then the task's own).")
@click.option("--priority", type=click.IntRange(0, 9), help="0..9, higher runs first.")
@click.option(
    "--serializer",
    type=click.Choice(SERIALIZERS),
    help="How the arguments travel (default: the task's, else task_serializer); pickle only where "
    "accept_content names it.",
)
@click.option(
    "--compression",
    type=click.Choice([*COMPRESSIONS, NO_COMPRESSION]),
    help="Compress large arguments (default: the task's, else task_compression); "
    f"'{NO_COMPRESSION}' turns a configured one off.",
)
@click.pass_obj
def call(
    state: State,
    task_name: str,
    args_json: str | None,
    kwargs_json: str | None,
    countdown: float | None,
    expires: float | None,
    queue: str | None,
    priority: int | None,
    serializer: str | None,
    compression: str | None,
) -> None:
    """Enqueue TASK by name and print its id.

    \b
    Examples:
      conveyor -A proj call proj.tasks.add --args '[2, 3]'
      conveyor -A proj call proj.tasks.load --args '[[1, 2, 3]]' --serializer msgpack --compression gzip
    """
    app = state.app_with_tasks
    args = _json(args_json, list, "--args")
    kwargs = _json(kwargs_json, dict, "--kwargs")
    task = app.tasks.get(task_name)
    if task is None:
        known = ", ".join(sorted(n for n in app.tasks if not n.startswith("conveyor."))) or "none"
        raise NotFound(f"unknown task {task_name!r}; registered tasks: {known}")
    options: EnqueueOptions = {
        "countdown": countdown,
        "expires": expires,
        "queue": queue,
        "priority": priority,
    }
    # --serializer/--compression only when given: absent, the task's and then the app's settings
    # apply, as in apply_async (where compression=None means "not compressed", not "default").
    if serializer is not None:
        options["serializer"] = serializer
    if compression is not None:
        options["compression"] = None if compression == NO_COMPRESSION else compression
    try:
        result = task.apply_async(args, kwargs, **options)
    except (TypeError, ValueError, ConfigurationError) as exc:
        # ConfigurationError: pickle (or msgpack) not in this app's accept_content, refused with
        # the Python API's own message.
        raise click.UsageError(str(exc)) from exc
    click.echo(result.id)


@click.command()
@click.argument("task_id")
@click.option(
    "-w", "--wait", type=click.FloatRange(min=0), help="Wait up to this many seconds for it to finish."
)
@click.option("--traceback", "show_traceback", is_flag=True, help="Show the traceback of a failure.")
@click.pass_obj
def result(state: State, task_id: str, wait: float | None, show_traceback: bool) -> None:
    """Show a task's state and result (UNKNOWN for an id nobody enqueued)."""
    res = state.app.AsyncResult(task_id)
    if wait is not None:
        with contextlib.suppress(TimeoutError):
            res.get(timeout=wait, propagate=False)
    current = res.state
    click.echo(f"state: {current}")
    if current == states.SUCCESS:
        click.echo(f"result: {json.dumps(res.result)}")
    elif current in states.EXCEPTION_STATES:
        exc = res.result
        if isinstance(exc, RemoteError):
            # Its class is not importable here (this command imports no task module): the
            # task's own exception, named as `task ID` and the dashboard name it.
            click.echo(f"error: {exc.exc_type.rpartition('.')[2]}: {exc.message}")
        elif exc is not None:
            click.echo(f"error: {type(exc).__name__}: {exc}")
        if show_traceback and res.traceback:
            click.echo(res.traceback.rstrip())
    if current == states.UNKNOWN:
        raise SystemExit(2)


@click.command()
@click.option("-Q", "--queues", help="Comma-separated queues (default: every queue with jobs).")
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def purge(state: State, queues: str | None, force: bool) -> None:
    """Delete waiting tasks (ready and delayed) from queues. Running tasks are not touched."""
    broker = state.app.broker
    names = [q.strip() for q in queues.split(",") if q.strip()] if queues else sorted(broker.queue_stats())
    if not names:
        click.echo("no queues have waiting tasks")
        return
    waiting = sum(s.ready + s.delayed for q, s in broker.queue_stats().items() if q in names)
    if not waiting:  # nothing to ask about
        click.echo(f"no waiting tasks in {', '.join(names)}")
        return
    if not force:
        click.confirm(f"Delete {waiting} waiting task(s) from {', '.join(names)}?", abort=True)
    purged = broker.purge(names)
    click.echo(f"purged {purged} task(s) from {', '.join(names)}")

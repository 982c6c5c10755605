"""``conveyor control shutdown|revoke|terminate|rate_limit|add_consumer|cancel_consumer`` and
``conveyor revoke ID...``: Celery's control commands, sent through the broker to the workers,
which reply (admin/control.py, worker/control.py).

Every command waits up to ``-t/--timeout`` seconds (default 1, as in Celery) and names each
destination worker that did not reply; then it exits 1. An unknown worker, task, task id or
queue, a bad rate or signal is a one-line usage error (exit 2) before anything is sent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import click

from ..admin import Reply
from ..admin.control import DEFAULT_TIMEOUT, SIGNALS
from .common import HintedGroup, State, lookups
from .display import echo_json

Lines = Callable[[Any], list[str]]


def destination_option(fn: Callable[..., None]) -> Callable[..., None]:
    return click.option(
        "-d",
        "--destination",
        multiple=True,
        metavar="WORKER[,WORKER]",
        help="Only these workers (their -n name, e.g. w1@web-1). Repeat or comma-separate. "
        "Default: every live worker.",
    )(fn)


def timeout_option(fn: Callable[..., None]) -> Callable[..., None]:
    return click.option(
        "-t",
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=DEFAULT_TIMEOUT,
        show_default=True,
        help="Seconds to wait for the workers' replies.",
    )(fn)


def json_option(fn: Callable[..., None]) -> Callable[..., None]:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON: {worker: reply}.")(fn)


def names(destination: Sequence[str]) -> list[str]:
    """``-d a,b -d c`` -> ``["a", "b", "c"]``."""
    return [n.strip() for d in destination for n in d.split(",") if n.strip()]


@contextlib.contextmanager
def checked() -> Iterator[None]:
    """Unknown names (exit 2, via ``lookups``) and bad values such as a rate (exit 2)."""
    with lookups():
        try:
            yield
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc


def report(replies: list[Reply], as_json: bool, lines: Lines = lambda data: [str(data)]) -> None:
    """Print the replies as Celery does (``-> w1@host: OK`` and the reply indented) or as JSON;
    exit 1 naming the workers that did not reply."""
    if not replies:
        raise click.ClickException("no nodes replied within time constraint (no live worker)")
    keys = {r.worker: _key(r, replies) for r in replies}
    if as_json:
        echo_json({keys[r.worker]: r.data if r.ok else {"error": r.error} for r in replies})
    else:
        for r in replies:
            if r.ok:
                click.echo(f"-> {keys[r.worker]}: OK")
                for line in lines(r.data) or ["- empty -"]:
                    click.echo(f"    {line}")
            else:
                click.echo(f"-> {keys[r.worker]}: ERROR: {r.error}")
        answered = sum(r.replied for r in replies)
        click.echo(f"\n{answered} node{'s' if answered != 1 else ''} replied.")
    silent = [r for r in replies if not r.replied]
    if silent:
        raise click.ClickException("; ".join(f"worker {keys[r.worker]} {r.error}" for r in silent))


def _key(reply: Reply, replies: list[Reply]) -> str:
    """The -n name, or the unique lease name when two processes share one -n name."""
    return reply.hostname if sum(r.hostname == reply.hostname for r in replies) == 1 else reply.worker


class _Control(HintedGroup):
    hints = {
        "time_limit": "not provided at run time: set time_limit/soft_time_limit on the task, or "
        "worker --time-limit/--soft-time-limit, and restart the worker",
        **dict.fromkeys(
            ("pool_grow", "pool_shrink", "autoscale"),
            "not provided: the pool size is -c at start; run more worker processes (--processes N) to grow",
        ),
        **dict.fromkeys(
            ("enable_events", "disable_events"),
            "not needed: task states are always recorded in the broker (`conveyor monitor`)",
        ),
        "heartbeat": "not needed: workers heartbeat to the broker on their own (`inspect stats`)",
        "election": "not provided: schedulers elect their leader through a broker lease",
    }


@click.group("control", cls=_Control)
def control() -> None:
    """Send commands to live workers through the broker; each worker replies.

    \b
    Example:
      conveyor -A proj control shutdown -d w1@web-1
      conveyor -A proj control rate_limit proj.tasks.scrape 10/m
      conveyor -A proj control add_consumer emails -d w2@web-2
    """


@control.command("shutdown")
@destination_option
@timeout_option
@json_option
@click.pass_obj
def shutdown(state: State, destination: tuple[str, ...], timeout: float, as_json: bool) -> None:
    """Shut workers down gracefully (as SIGTERM does): stop fetching, give prefetched tasks
    back, let running ones finish. Without -d: EVERY live worker. A process of a
    `worker --processes N` is not replaced.

    \b
    Example:
      conveyor -A proj control shutdown -d w1@web-1
      -> w1@web-1: OK
          shutting down
    """
    with checked():
        replies = state.admin().control.shutdown(names(destination), timeout)
    report(replies, as_json)


@control.command("add_consumer")
@click.argument("queue")
@destination_option
@timeout_option
@json_option
@click.pass_obj
def add_consumer(
    state: State, queue: str, destination: tuple[str, ...], timeout: float, as_json: bool
) -> None:
    """Workers start fetching from QUEUE too (seen in `inspect active_queues`). Until a
    restart: a restarted worker consumes what its -Q says.

    \b
    Example:
      conveyor -A proj control add_consumer emails -d w1@web-1
      -> w1@web-1: OK
          add consumer 'emails'
    """
    with checked():
        replies = state.admin().control.add_consumer(queue, names(destination), timeout)
    report(replies, as_json)


@control.command("cancel_consumer")
@click.argument("queue")
@destination_option
@timeout_option
@json_option
@click.pass_obj
def cancel_consumer(
    state: State, queue: str, destination: tuple[str, ...], timeout: float, as_json: bool
) -> None:
    """Workers stop fetching from QUEUE (tasks already prefetched from it still run). A queue
    no destination worker consumes is an error (exit 2).

    \b
    Example:
      conveyor -A proj control cancel_consumer emails -d w1@web-1
      -> w1@web-1: OK
          no longer consuming from 'emails'
    """
    with checked():
        replies = state.admin().control.cancel_consumer(queue, names(destination), timeout)
    report(replies, as_json)


@control.command("rate_limit")
@click.argument("task")
@click.argument("rate")
@destination_option
@timeout_option
@json_option
@click.pass_obj
def rate_limit(
    state: State, task: str, rate: str, destination: tuple[str, ...], timeout: float, as_json: bool
) -> None:
    """Set TASK's rate limit cluster-wide, now and for workers started later (stored in the
    broker). RATE is N/s, N/m or N/h (a plain number is per second); 0 or none removes it.

    \b
    Example:
      conveyor -A proj control rate_limit proj.tasks.scrape 10/m
      -> w1@web-1: OK
          new rate limit set successfully: 10/m
    """
    with checked():
        admin = state.admin()
        known = list(state.app_with_tasks.tasks) if state.app_spec else []
        replies = admin.control.rate_limit(task, rate, names(destination), timeout, known=known)
    report(replies, as_json)


def revoke_lines(data: Any) -> list[str]:
    revoked, terminated = data.get("revoked", []), data.get("terminated", [])
    if not revoked:
        return ["held none of them"]
    running = [i for i in data.get("running", []) if i not in terminated]
    return (
        [f"tasks flagged as revoked: {', '.join(revoked)}"]
        + ([f"terminated: {', '.join(terminated)}"] if terminated else [])
        + ([f"still running (it finishes; --terminate stops it): {', '.join(running)}"] if running else [])
    )


def _revoke(
    state: State,
    ids: tuple[str, ...],
    terminate: bool,
    signal: str,
    destination: tuple[str, ...],
    timeout: float,
    as_json: bool,
    allow_unknown: bool = False,
) -> None:
    with checked():
        admin = state.admin()
        if not admin.control.destinations(names(destination)):
            # Stored all the same: durable revokes need no live worker.
            admin.control.revoke(ids, terminate, signal, (), timeout, allow_unknown)
            click.echo(f"revoked {len(ids)} task(s); no live worker to tell")
            return
        replies = admin.control.revoke(ids, terminate, signal, names(destination), timeout, allow_unknown)
    report(replies, as_json, revoke_lines)


terminate_option = click.option("--terminate", is_flag=True, help="Also stop the tasks that are running now.")
signal_option = click.option(
    "--signal",
    default="SIGTERM",
    show_default=True,
    help=f"With --terminate: any signal, such as {', '.join(SIGNALS)} (TERM, KILL... work too).",
)


@control.command("revoke")
@click.argument("task_ids", nargs=-1, required=True, metavar="ID...")
@terminate_option
@signal_option
@destination_option
@timeout_option
@json_option
@click.pass_obj
def control_revoke(
    state: State,
    task_ids: tuple[str, ...],
    terminate: bool,
    signal: str,
    destination: tuple[str, ...],
    timeout: float,
    as_json: bool,
) -> None:
    """Revoke tasks: stored in the broker (a worker down now honours it too); workers skip them
    if prefetched. A running task finishes unless --terminate is given (as `terminate` and
    `conveyor revoke --terminate`; see `conveyor revoke --help` for how it is stopped).

    \b
    Example:
      conveyor -A proj control revoke 5b1e0f5e-0c1d-4c55-9d7b-6f1c1f2d3a4b
      conveyor -A proj control revoke 5b1e0f5e-0c1d-4c55-9d7b-6f1c1f2d3a4b --terminate
    """
    _revoke(state, task_ids, terminate, signal, destination, timeout, as_json)


@control.command("terminate")
@click.argument("signal", metavar="SIGNAL")
@click.argument("task_ids", nargs=-1, required=True, metavar="ID...")
@destination_option
@timeout_option
@json_option
@click.pass_obj
def terminate(
    state: State,
    signal: str,
    task_ids: tuple[str, ...],
    destination: tuple[str, ...],
    timeout: float,
    as_json: bool,
) -> None:
    """Revoke tasks and stop the running ones (Celery's argument order: SIGNAL first). See
    `conveyor revoke --help` for how a running task is stopped in each pool.

    \b
    Example:
      conveyor -A proj control terminate SIGKILL 5b1e0f5e-0c1d-4c55-9d7b-6f1c1f2d3a4b
    """
    _revoke(state, task_ids, True, signal, destination, timeout, as_json)


@click.command("revoke")
@click.argument("task_ids", nargs=-1, required=True, metavar="ID...")
@terminate_option
@click.option(
    "--allow-unknown",
    is_flag=True,
    help="Revoke ids the broker has not seen yet (a task about to be sent); else exit 2.",
)
@signal_option
@destination_option
@timeout_option
@json_option
@click.pass_obj
def revoke(
    state: State,
    task_ids: tuple[str, ...],
    terminate: bool,
    allow_unknown: bool,
    signal: str,
    destination: tuple[str, ...],
    timeout: float,
    as_json: bool,
) -> None:
    """Revoke tasks by id, durably: a revoked task is never started, by any worker, even one
    that is down now. With --terminate a RUNNING task is stopped too and recorded as REVOKED
    (terminated), neither retried nor dead-lettered.

    How a running task is stopped: in the threads, asyncio and solo pools an exception
    (TaskRevokedError) is raised inside the task's thread, or an async task is cancelled. That
    stops Python code at once, but code stuck inside one long C call (a socket read without a
    timeout) sees it only when that call returns; the worker stops waiting for it at once all
    the same. On -P processes the child process running the task gets --signal (SIGTERM and
    SIGINT, which pool children ignore, are sent as SIGKILL) and stops whatever it is doing.

    \b
    Example:
      conveyor -A proj revoke 5b1e0f5e-0c1d-4c55-9d7b-6f1c1f2d3a4b --terminate
      -> w1@web-1: OK
          tasks flagged as revoked: 5b1e0f5e-0c1d-4c55-9d7b-6f1c1f2d3a4b
          terminated: 5b1e0f5e-0c1d-4c55-9d7b-6f1c1f2d3a4b
    """
    _revoke(state, task_ids, terminate, signal, destination, timeout, as_json, allow_unknown)

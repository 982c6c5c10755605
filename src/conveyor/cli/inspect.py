"""``conveyor inspect active|stats|registered|active_queues|ping|reserved|scheduled|revoked|
query_task``: Celery's inspect commands.

Celery broadcasts a question and waits ``--timeout`` for replies. Conveyor's workers already
write what they run, their counters, tasks and queues into the broker with every heartbeat
(once a second), so ``active``, ``stats``, ``registered`` and ``active_queues`` read those
records: they never wait, and a worker that is gone is known to be gone instead of timing out.
There ``-t/--timeout`` keeps its meaning as "how long a worker may take to answer": only workers
whose last heartbeat is at most that old count (default: the lease timeout, 3 s), and the output
ends "N nodes reported by heartbeat." rather than claiming a reply.

``ping``, ``reserved``, ``scheduled``, ``revoked`` and ``query_task`` ask the workers through
the control channel (cli/control.py) and wait up to ``-t`` seconds (default 1) for the replies;
a worker that did not reply is named, and the command exits 1.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import click

from ..admin import Admin, WorkerInfo
from .common import HintedGroup, State
from .control import checked, destination_option, json_option, names, report, timeout_option
from .display import duration, echo_json, size


class _Inspect(HintedGroup):
    hints = {
        "failed": "not a Celery command either: failed tasks are `conveyor tasks --state failed`, "
        "dead letters `conveyor dead list`",
        "report": "not provided: `conveyor status` and `conveyor inspect stats` describe each worker",
        "conf": "not provided: a worker's settings are its app's (`app.conf`, the settings module)",
        "clock": "not provided: workers keep no logical clock; `inspect stats` shows heartbeat_age",
        **dict.fromkeys(
            ("memdump", "memsample", "objgraph"),
            "not provided: `inspect stats` shows each worker's memory_rss",
        ),
    }


@click.group("inspect", cls=_Inspect)
def inspect() -> None:
    """Inspect live workers: what they run, hold and know, their counters and queues.

    \b
    Example:
      conveyor -A proj inspect active -d w1@web-1
      conveyor -A proj inspect stats --json
      conveyor -A proj inspect query_task 5b1e0f5e-0c1d-4c55-9d7b-6f1c1f2d3a4b
    """


def _options(fn: Callable[..., None]) -> Callable[..., None]:
    fn = click.option("--json", "as_json", is_flag=True, help="Print JSON: {worker: reply}.")(fn)
    fn = click.option(
        "-t",
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=None,
        help="Count only workers whose last heartbeat is at most this many seconds old "
        "(default: the lease timeout).",
    )(fn)
    fn = click.option(
        "-d",
        "--destination",
        multiple=True,
        metavar="WORKER[,WORKER]",
        help="Only these workers (their -n name, e.g. w1@web-1). Repeat or comma-separate.",
    )(fn)
    return click.pass_obj(fn)


def _select(admin: Admin, destination: tuple[str, ...], timeout: float | None) -> list[WorkerInfo]:
    """The workers that reply; an unknown destination is a usage error (exit 2)."""
    now = time.time()
    live = [w for w in admin.workers() if timeout is None or now - w.heartbeat <= timeout]
    names = [n.strip() for d in destination for n in d.split(",") if n.strip()]
    if not names:
        chosen = live
    else:
        known = admin.workers(include_gone=True)
        for name in names:
            if not any(w.answers_to(name) for w in known):
                live_names = ", ".join(sorted({w.hostname for w in live})) or "none"
                raise click.UsageError(f"unknown worker {name!r} (live: {live_names})")
        chosen = [w for w in live if any(w.answers_to(name) for name in names)]
    if not chosen:
        within = f" within {timeout:g}s" if timeout is not None else ""
        raise click.ClickException(f"no live worker: no node reported by heartbeat{within}")
    return chosen


def _key(worker: WorkerInfo, chosen: list[WorkerInfo]) -> str:
    """The -n name, or the unique lease name when two live processes share one -n name."""
    same = sum(w.hostname == worker.hostname for w in chosen)
    return worker.hostname if same == 1 else worker.name


def _report(
    chosen: list[WorkerInfo],
    as_json: bool,
    reply: Callable[[WorkerInfo], Any],
    lines: Callable[[Any], list[str]],
) -> None:
    replies = {_key(w, chosen): reply(w) for w in chosen}
    if as_json:
        echo_json(replies)
        return
    for name, value in replies.items():
        click.echo(f"-> {name}: OK")
        for line in lines(value) or ["- empty -"]:
            click.echo(f"    {line}")
    # Not Celery's "N nodes online.": these workers did not reply to anything (their heartbeats
    # were read), and with -d they are not every node online (`conveyor status` counts those).
    click.echo(f"\n{len(replies)} node{'s' if len(replies) != 1 else ''} reported by heartbeat.")


@inspect.command("active")
@_options
def active(state: State, destination: tuple[str, ...], timeout: float | None, as_json: bool) -> None:
    """The tasks each worker is running now: id, name, arguments, runtime, attempt, and the
    pid of the process running it (a -P processes child, else the worker's own).

    \b
    Example:
      conveyor -A proj inspect active
      -> w1@web-1: OK
          * 5b1e0f5e-... proj.tasks.report(42, full=True) runtime=12.3s attempt=1 pid=4121
    """
    chosen = _select(state.admin(), destination, timeout)
    _report(
        chosen,
        as_json,
        lambda w: list(w.running),
        lambda tasks: [
            f"* {t.id} {t.name}({t.args}) runtime={duration(t.runtime)} attempt={t.attempt}"
            + (f" pid={t.pid}" if t.pid is not None else "")
            for t in tasks
        ],
    )


@inspect.command("stats")
@_options
def stats(state: State, destination: tuple[str, ...], timeout: float | None, as_json: bool) -> None:
    """Each worker's pid, pool, concurrency, uptime, counters and memory.

    \b
    Example:
      conveyor -A proj inspect stats -d w1@web-1
    """
    chosen = _select(state.admin(), destination, timeout)
    now = time.time()

    def reply(w: WorkerInfo) -> dict[str, Any]:
        return {
            "pid": w.pid,
            "host": w.host,
            "pool": w.pool,
            "concurrency": w.concurrency,
            "queues": list(w.queues),
            "uptime": round(now - w.started, 1),
            "processed": w.processed,
            "succeeded": w.succeeded,
            "failed": w.failed,
            "retried": w.retried,
            "dead_lettered": w.dead_lettered,
            "revoked": w.revoked,
            "abandoned_threads": w.abandoned_threads,
            "running": len(w.running),
            "memory_rss": w.memory_rss,
            "fetch_state": w.fetch_state,
            "heartbeat_age": round(now - w.heartbeat, 2),
            **({"pool_processes": list(w.pool_processes)} if w.pool_processes else {}),
            **({"group": w.group} if w.group else {}),
        }

    def lines(r: dict[str, Any]) -> list[str]:
        shown = {**r, "uptime": duration(r["uptime"]), "memory_rss": size(r["memory_rss"])}
        shown["queues"] = ",".join(r["queues"])
        return [f"{k}: {v}" for k, v in shown.items()]

    _report(chosen, as_json, reply, lines)


@inspect.command("registered")
@_options
def registered(state: State, destination: tuple[str, ...], timeout: float | None, as_json: bool) -> None:
    """The task names each worker has registered (can run).

    \b
    Example:
      conveyor -A proj inspect registered
      -> w1@web-1: OK
          * proj.tasks.report
    """
    chosen = _select(state.admin(), destination, timeout)
    _report(chosen, as_json, lambda w: list(w.registered), lambda names: [f"* {n}" for n in names])


@inspect.command("active_queues")
@_options
def active_queues(state: State, destination: tuple[str, ...], timeout: float | None, as_json: bool) -> None:
    """The queues each worker consumes, and which of them are paused.

    \b
    Example:
      conveyor -A proj inspect active_queues
      -> w1@web-1: OK
          * default
          * emails (paused)
    """
    admin = state.admin()
    chosen = _select(admin, destination, timeout)
    paused = {q.name for q in admin.queues(chosen) if q.paused}  # the heartbeats just read
    _report(
        chosen,
        as_json,
        lambda w: [{"name": q, "paused": q in paused} for q in w.queues],
        lambda qs: [f"* {q['name']}{' (paused)' if q['paused'] else ''}" for q in qs],
    )


def _asked(fn: Callable[..., None]) -> Callable[..., None]:
    """The options of the inspect commands answered through the control channel."""
    return click.pass_obj(destination_option(timeout_option(json_option(fn))))


@inspect.command("ping")
@_asked
def ping(state: State, destination: tuple[str, ...], timeout: float, as_json: bool) -> None:
    """Ask workers to answer through the control channel: a reply proves the worker reads
    its commands now (a worker that does not is named; exit 1).

    \b
    Example:
      conveyor -A proj inspect ping -d w1@web-1
      -> w1@web-1: OK
          pong
    """
    with checked():
        replies = state.admin().control.ping(names(destination), timeout)
    report(replies, as_json)


def _held(tasks: list[dict[str, Any]]) -> list[str]:
    return [f"* {t['id']} {t['name']}({t['args']}) queue={t['queue']}" for t in tasks]


@inspect.command("reserved")
@_asked
def reserved(state: State, destination: tuple[str, ...], timeout: float, as_json: bool) -> None:
    """The tasks each worker has prefetched and not started yet.

    \b
    Example:
      conveyor -A proj inspect reserved
      -> w1@web-1: OK
          * 5b1e0f5e-... proj.tasks.report(42) queue=default
    """
    with checked():
        replies = state.admin().control.reserved(names(destination), timeout)
    report(replies, as_json, _held)


@inspect.command("scheduled")
@_asked
def scheduled(state: State, destination: tuple[str, ...], timeout: float, as_json: bool) -> None:
    """The eta/countdown tasks each worker holds: always none in Conveyor. Such tasks wait in
    the broker's delayed set until due (a worker crash cannot lose them); `conveyor queues`
    counts them per queue (DELAYED).

    \b
    Example:
      conveyor -A proj inspect scheduled
      -> w1@web-1: OK
          - empty -
    """
    with checked():
        replies = state.admin().control.scheduled(names(destination), timeout)
    report(replies, as_json, _held)


@inspect.command("revoked")
@_asked
def revoked(state: State, destination: tuple[str, ...], timeout: float, as_json: bool) -> None:
    """The revoked task ids each worker knows of: those revoked through the control channel
    since it started (the last 10,000) and revoked ones among the tasks it holds. Every revoke
    is also stored in the broker, where every worker honours it.

    \b
    Example:
      conveyor -A proj inspect revoked
      -> w1@web-1: OK
          * 5b1e0f5e-0c1d-4c55-9d7b-6f1c1f2d3a4b
    """
    with checked():
        replies = state.admin().control.revoked(names(destination), timeout)
    report(replies, as_json, lambda ids: [f"* {i}" for i in ids])


@inspect.command("query_task")
@click.argument("task_ids", nargs=-1, required=True, metavar="ID...")
@_asked
def query_task(
    state: State, task_ids: tuple[str, ...], destination: tuple[str, ...], timeout: float, as_json: bool
) -> None:
    """Which worker holds these tasks, and whether it runs them (active) or holds them
    prefetched (reserved). An id the broker never saw is an error (exit 2); `conveyor result
    ID` shows a task's state in the broker.

    \b
    Example:
      conveyor -A proj inspect query_task 5b1e0f5e-0c1d-4c55-9d7b-6f1c1f2d3a4b
      -> w1@web-1: OK
          * 5b1e0f5e-0c1d-4c55-9d7b-6f1c1f2d3a4b active proj.tasks.report
    """
    with checked():
        replies = state.admin().control.query_task(task_ids, names(destination), timeout)
    report(
        replies,
        as_json,
        lambda found: [f"* {i} {info['state']} {info['name']}" for i, info in found.items()],
    )

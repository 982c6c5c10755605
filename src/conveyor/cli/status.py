"""``conveyor status``: one line per live worker, like ``celery status``."""

from __future__ import annotations

import time

import click

from ..admin.health import check, problem
from .common import State
from .display import duration, echo_json


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (a list of workers).")
@click.option(
    "--all",
    "include_gone",
    is_flag=True,
    help="Also list workers that stopped heartbeating (gone) while their heartbeat is kept.",
)
@click.pass_obj
def status(state: State, as_json: bool, include_gone: bool) -> None:
    """One line per live worker (with --all, gone ones too).

    Each says OK, or what is wrong with it as ``conveyor health`` says it (shutting down, its
    fetches fail, ...). A worker that stopped heartbeating for longer than its lease (3 s by
    default) is no longer listed: its tasks are being handed to live workers (``--all`` lists
    it as gone, with when it last beat). Then a line for each queue with ready tasks that no
    live worker consumes (they would wait for ever). Exits 1 when no worker is online (as
    ``celery status`` does), so a script can test it.

    \b
    Example:
      conveyor -A proj status
      w1@web-1: OK  pid=4242 queues=default,emails running=2 processed=1042 up=3.1h
      1 node online.
      problem: queue 'reports': 12 task(s) ready and no live worker consumes it
    """
    admin = state.admin()
    listed = admin.workers(include_gone=include_gone)
    workers = [w for w in listed if not w.gone]
    if as_json:
        echo_json(listed)
    else:
        now = time.time()
        for w in listed:
            if w.gone:
                click.echo(
                    f"{w.hostname}: gone (last heartbeat {duration(now - w.heartbeat)} ago)  pid={w.pid}"
                    f" queues={','.join(w.queues)} processed={w.processed}"
                )
                continue
            # OK, or what `conveyor health` would say of it (shutting down, fetches failing, ...).
            why = problem(w, now)
            said = "OK" if why is None else why.removeprefix(f"{w.hostname}: ")
            click.echo(
                f"{w.hostname}: {said}  pid={w.pid} queues={','.join(w.queues)} running={len(w.running)}"
                f" processed={w.processed} up={duration(now - w.started)}"
            )
        gone = len(listed) - len(workers)
        if workers or gone:
            summary = f"{len(workers)} node{'s' if len(workers) != 1 else ''} online"
            click.echo(summary + (f", {gone} gone." if gone else "."))
        # Tasks routed to a queue no worker consumes wait for ever: the operator's first question.
        try:
            lines = check(admin, [])["problems"]
        except Exception as exc:  # the workers are listed already: say what is missing
            lines = [f"could not read the queues: {type(exc).__name__}: {exc}"]
        for line in lines:
            click.echo(f"problem: {line}")
    if not workers:
        raise click.ClickException("no workers online")

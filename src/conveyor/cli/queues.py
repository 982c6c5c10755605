"""``conveyor queues``, ``pause QUEUE``, ``resume QUEUE``: queue lengths, latency and pauses."""

from __future__ import annotations

import click

from .common import State, lookups
from .display import duration, echo_json, table


@click.command("queues")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (a list of queues).")
@click.pass_obj
def queues(state: State, as_json: bool) -> None:
    """List queues: ready (waiting to run now), delayed (countdown, eta, retry), running,
    leased (held by workers: running or prefetched), latency (how long the oldest ready task
    has waited) and whether it is paused.

    A queue is listed while it holds tasks, is paused, or a live worker consumes it.

    \b
    Example:
      conveyor -b redis://localhost:6379/0 queues
      QUEUE    READY  DELAYED  RUNNING  LEASED  LATENCY  PAUSED
      default  12     0        8        10      1.2s     no
      emails   340    5        0        0       4.5m     yes
    """
    found = state.admin().queues()
    if as_json:
        echo_json(found)
        return
    if not found:
        click.echo("no queues")
        return
    rows = [
        [
            q.name,
            str(q.ready),
            str(q.delayed),
            str(q.running),
            str(q.leased),
            duration(q.latency),
            "yes" if q.paused else "no",
        ]
        for q in found
    ]
    table(rows, ["QUEUE", "READY", "DELAYED", "RUNNING", "LEASED", "LATENCY", "PAUSED"])


@click.command("pause")
@click.argument("queue")
@click.option("--force", is_flag=True, help="Pause even a queue nothing mentions yet.")
@click.pass_obj
def pause(state: State, queue: str, force: bool) -> None:
    """Pause QUEUE on every worker: within a heartbeat no task of it starts (workers started
    later too; tasks they prefetched go back unstarted); enqueues are still accepted and running
    tasks finish.

    \b
    Example:
      conveyor -A proj pause emails
      paused queue emails (workers stop starting its tasks within a heartbeat)
    """
    with lookups():
        changed = state.admin().pause(queue, allow_unknown=force)
    # The workers read the pause with their next heartbeat: a task may still start until then.
    click.echo(
        f"paused queue {queue} (workers stop starting its tasks within a heartbeat)"
        if changed
        else f"queue {queue} was already paused"
    )


@click.command("resume")
@click.argument("queue")
@click.pass_obj
def resume(state: State, queue: str) -> None:
    """Resume a paused QUEUE: workers fetch from it again within a heartbeat.

    \b
    Example:
      conveyor -A proj resume emails
      resumed queue emails
    """
    with lookups():
        changed = state.admin().resume(queue)
    click.echo(f"resumed queue {queue}" if changed else f"queue {queue} was not paused")

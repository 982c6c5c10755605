"""``conveyor dead list|retry|purge``: the dead-letter set."""

from __future__ import annotations

import datetime as dt

import click

from ..message import decode_envelope
from .common import State


@click.group()
def dead() -> None:
    """Inspect and retry dead letters.

    A dead letter is a task that failed for good, was malformed or unknown, or whose worker
    died on it too often.
    """


@dead.command("list")
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True)
@click.pass_obj
def list_dead(state: State, limit: int) -> None:
    """List dead letters, newest first."""
    letters = state.app.broker.dead_letters(limit=limit)
    if not letters:
        click.echo("no dead letters")
        return
    for letter in letters:
        try:
            name = decode_envelope(letter.body).task
        except Exception:
            name = "<malformed>"
        when = dt.datetime.fromtimestamp(letter.failed_at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        click.echo(f"{letter.id}  {name}  queue={letter.queue}  {when} UTC  {letter.reason}")


@dead.command("retry")
@click.argument("task_ids", nargs=-1)
@click.option("--all", "retry_all", is_flag=True, help="Retry every dead letter.")
@click.pass_obj
def retry_dead(state: State, task_ids: tuple[str, ...], retry_all: bool) -> None:
    """Put dead letters back on their queue."""
    if retry_all:
        # A broker page at a time: never the whole dead-letter set in memory.
        click.echo(f"requeued {state.app.admin.retry_dead_matching()} task(s)")
        return
    if not task_ids:
        raise click.UsageError("give task ids or --all")
    click.echo(f"requeued {state.app.broker.requeue_dead(list(task_ids))} task(s)")


@dead.command("purge")
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def purge_dead(state: State, force: bool) -> None:
    """Delete every dead letter."""
    if not force:
        click.confirm("Delete all dead letters?", abort=True)
    click.echo(f"deleted {state.app.broker.purge_dead()} dead letter(s)")

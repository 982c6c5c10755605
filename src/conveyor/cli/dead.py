"""``conveyor dead [list|retry|delete|purge]``: the dead-letter set, paged and filtered."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import click

from .common import State
from .display import echo_json


@click.group(invoke_without_command=True)
@click.pass_context
def dead(ctx: click.Context) -> None:
    """Inspect and retry dead letters (alone: the newest page, as ``dead list``).

    A dead letter is a task that failed for good, was malformed or unknown, or whose worker
    died on it too often.
    """
    if ctx.invoked_subcommand is None:  # `conveyor dead`: what an operator wants first is the list
        ctx.invoke(list_dead)


def _filters(fn: Callable[..., None]) -> Callable[..., None]:
    fn = click.option("--search", help="Only letters whose id, task, arguments or reason contain this.")(fn)
    fn = click.option("--task", help="Only this task name, or a glob such as 'proj.tasks.*'.")(fn)
    fn = click.option("-Q", "--queue", help="Only dead letters of this queue.")(fn)
    return fn


@dead.command("list")
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0, help="Start here (a page's next offset).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: the page with its items.")
@_filters
@click.pass_obj
def list_dead(
    state: State,
    limit: int,
    offset: int,
    as_json: bool,
    queue: str | None,
    task: str | None,
    search: str | None,
) -> None:
    """List dead letters, newest first, optionally filtered; prints the next page's offset.

    \b
    Example:
      conveyor -A proj dead list --task 'proj.tasks.send_*' --limit 20
      5b1e...  proj.tasks.send_mail('a@b.c')  queue=emails  2026-12-01 05:02:11 UTC  SMTPError: ...
      more: --offset 20
    """
    page = state.admin().dead_letters(offset, limit, queue=queue, task=task, search=search)
    if as_json:
        echo_json(page)
        return
    if not page.items:
        click.echo("no dead letters")
    for letter in page.items:
        when = dt.datetime.fromtimestamp(letter.failed_at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        click.echo(
            f"{letter.id}  {letter.task}({letter.args})  queue={letter.queue}  {when} UTC  {letter.reason}"
        )
    if page.next_offset is not None:
        click.echo(f"more: --offset {page.next_offset}")


@dead.command("retry")
@click.argument("task_ids", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Retry every dead letter matching the filters.")
@_filters
@click.pass_obj
def retry_dead(
    state: State,
    task_ids: tuple[str, ...],
    every: bool,
    queue: str | None,
    task: str | None,
    search: str | None,
) -> None:
    """Put dead letters back on their queue: by id, or --all (matching the filters).

    \b
    Example:
      conveyor -A proj dead retry --all -Q emails
      requeued 120 task(s)
    """
    admin = state.admin()
    if _chosen(task_ids, every, queue, task, search):
        # A broker page at a time: never the whole dead-letter set in memory.
        count = admin.retry_dead_matching(queue=queue, task=task, search=search)
    else:
        count = admin.retry_dead(task_ids)
        _none_found(task_ids, count)
    click.echo(f"requeued {count} task(s)")


@dead.command("delete")
@click.argument("task_ids", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Delete every dead letter matching the filters.")
@_filters
@click.pass_obj
def delete_dead(
    state: State,
    task_ids: tuple[str, ...],
    every: bool,
    queue: str | None,
    task: str | None,
    search: str | None,
) -> None:
    """Delete dead letters: by id, or --all (matching the filters).

    \b
    Example:
      conveyor -A proj dead delete --all --task 'proj.tasks.legacy_*'
      deleted 7 dead letter(s)
    """
    admin = state.admin()
    if _chosen(task_ids, every, queue, task, search):
        count = admin.delete_dead_matching(queue=queue, task=task, search=search)
    else:
        count = admin.delete_dead(task_ids)
        _none_found(task_ids, count)
    click.echo(f"deleted {count} dead letter(s)")


def _none_found(task_ids: tuple[str, ...], count: int) -> None:
    """Ids given by hand of which some are no dead letters: a typo, or already retried or
    deleted. None found is a usage error (exit 2); some found, a warning on stderr."""
    given = len(set(task_ids))
    if count == 0:
        raise click.UsageError(
            f"no dead letter with the id{'s' if given > 1 else ''} given "
            "(a typo, or already retried or deleted? `conveyor dead list` shows them)"
        )
    if count < given:
        click.echo(f"{given - count} of the {given} ids given are no dead letters", err=True)


def _chosen(
    task_ids: tuple[str, ...], every: bool, queue: str | None, task: str | None, search: str | None
) -> bool:
    """True: act on every letter matching the filters; False: on the ids given."""
    filtered = any(v is not None for v in (queue, task, search))
    if task_ids and (every or filtered):
        raise click.UsageError("give task ids, or --all with filters, not both")
    if filtered and not every:
        raise click.UsageError("filters select letters for --all: add --all")
    if not task_ids and not every:
        raise click.UsageError("give task ids or --all")
    return every


@dead.command("purge")
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def purge_dead(state: State, force: bool) -> None:
    """Delete every dead letter.

    \b
    Example:
      conveyor -A proj dead purge -f
      deleted 12 dead letter(s)
    """
    if not force:
        click.confirm("Delete all dead letters?", abort=True)
    click.echo(f"deleted {state.app.broker.purge_dead()} dead letter(s)")

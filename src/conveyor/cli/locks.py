"""``conveyor locks`` and ``conveyor release-lock NAME``: see and break held locks."""

from __future__ import annotations

import json
import time

import click

from ..coordination.locks import LockInfo, holder_running, read_lock
from .common import State
from .display import duration


def _row(info: LockInfo, now: float) -> list[str]:
    expires = "never" if info.expires_at is None else duration(info.expires_at - now)
    age = duration(now - info.acquired) if info.acquired else "?"
    holder = info.holder + (" (no such process here)" if holder_running(info.holder) is False else "")
    return [info.name, holder, info.token[:8], str(info.fence), age, expires]


@click.command("locks")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one object per lock).")
@click.pass_obj
def locks(state: State, as_json: bool) -> None:
    """List held locks: name, holder, token prefix, fence, age and time to expiry.

    A lock that is renewed (a running task's lock, or auto_renew=True) keeps a short expiry
    that moves forward; one whose holder died disappears once its expiry passes.
    """
    held = state.app.locks()
    if as_json:
        for info in held:
            click.echo(
                json.dumps(
                    {
                        "name": info.name,
                        "holder": info.holder,
                        "holder_running": holder_running(info.holder),
                        "token": info.token[:8],
                        "fence": info.fence,
                        "acquired": info.acquired,
                        "expires_at": info.expires_at,
                        "task_id": info.task_id,
                    }
                )
            )
        return
    if not held:
        click.echo("no locks held")
        return
    now = time.time()
    rows = [["NAME", "HOLDER", "TOKEN", "FENCE", "AGE", "EXPIRES IN"], *(_row(i, now) for i in held)]
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


@click.command("release-lock")
@click.argument("name")
@click.option("-f", "--force", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def release_lock(state: State, name: str, force: bool) -> None:
    """Force-release the lock NAME, whoever holds it.

    Use it for a holder that is stuck but alive (a dead holder's lock expires by itself). The
    holder is not stopped: if it is still running, two holders may now overlap — which is
    what fencing numbers let the protected resource detect.
    """
    app = state.app
    info = read_lock(app.broker, name)
    if info is None:
        raise click.ClickException(f"lock {name!r} is not held")
    if not force:
        click.confirm(
            f"Release lock {name!r} held by {info.holder} for {duration(time.time() - info.acquired)}?",
            abort=True,
        )
    if not app.release_lock(name):
        raise click.ClickException(f"lock {name!r} is not held")
    click.echo(f"released lock {name!r} (was held by {info.holder}, fence {info.fence})")

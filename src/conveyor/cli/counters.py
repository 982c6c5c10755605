"""``conveyor counters``: what each task name did over a window, from the per-minute counters
the workers keep in the broker (admin ``task_counts``; kept three days)."""

from __future__ import annotations

import time

import click

from .common import State
from .display import duration, echo_json, table
from .history import When


@click.command("counters")
@click.option("--name", help="Only this task name (exact).")
@click.option(
    "--since",
    type=When(),
    default="1h",
    show_default=True,
    help="Start of the window: 30m, 1h, 2d or a date.",
)
@click.option("--until", type=When(), help="End of the window (default: now): 30m, 1h or a date.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print JSON: each task name with its per-minute series."
)
@click.pass_obj
def counters(state: State, name: str | None, since: float, until: float | None, as_json: bool) -> None:
    """Runs per task name over a window (the last hour by default): processed (every run that
    ended: successes, failures and retries), failed, retried, and the mean runtime. --json adds
    each name's per-minute series, for charts. Counters are kept three days; a minute counts
    whole when it starts inside the window.

    \b
    Example:
      conveyor -A proj counters --since 30m
      TASK               PROCESSED  FAILED  RETRIED  MEAN RUNTIME
      shop.tasks.charge  1804       12      30       212.4ms
      shop.tasks.email   5120       0       0        8.1ms
    """
    found = state.admin().task_counts(since, until if until is not None else time.time() + 60, name)
    if as_json:
        echo_json(found)
        return
    if not found:
        click.echo(f"no runs of {name}" if name else "no runs", nl=False)
        click.echo(" in this window")
        return
    rows = [
        [
            c.name,
            str(c.processed),
            str(c.failed),
            str(c.retried),
            "-" if c.mean_runtime is None else _mean(c.mean_runtime),
        ]
        for c in found
    ]
    table(rows, ["TASK", "PROCESSED", "FAILED", "RETRIED", "MEAN RUNTIME"])


def _mean(seconds: float) -> str:
    return f"{seconds * 1000:.1f}ms" if seconds < 1 else duration(seconds)

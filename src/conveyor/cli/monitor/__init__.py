"""``conveyor monitor``: a live terminal view of workers, queues, running tasks and the last
failures, refreshed every second; ``q`` or Ctrl-C quits. Built on ``app.admin`` only.

sample.py reads (on a thread of its own, so a hanging broker never freezes the keys),
view.py draws with rich, terminal.py reads keys in cbreak mode.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from typing import Any

import click
from rich.console import Console
from rich.live import Live

from ...brokers import redacted_url
from ...config import DEFAULT_BROKER_URL
from ...exceptions import ConveyorError
from ..common import State
from ..display import echo_json
from .sample import Rates, Reading, Sampler, Snapshot, take_snapshot
from .terminal import Keys
from .view import render

QUIT_KEYS = frozenset("qQ")
KEY_POLL = 0.1  # seconds between key checks: q feels instant, the loop costs nothing


@click.command("monitor")
@click.option(
    "-i",
    "--interval",
    type=click.FloatRange(min=0.2, max=3600),
    default=1.0,
    show_default=True,
    help="Seconds between refreshes.",
)
@click.option("--once", is_flag=True, help="Print one snapshot and exit (as when stdout is no terminal).")
@click.option("--json", "as_json", is_flag=True, help="Print one snapshot as JSON and exit.")
@click.pass_obj
def monitor(state: State, interval: float, once: bool, as_json: bool) -> None:
    """A live view of the cluster: workers (pool, running, processed, failed, tasks/s, last
    heartbeat), queues (ready, delayed, running, leased, latency, paused, net change per
    second), the tasks running now (longest first) and the last failures. Press q or Ctrl-C
    to quit. Fits an 80-column terminal; works over SSH.

    When stdout is not a terminal (a pipe, `watch`), prints one snapshot and exits. Exits 1
    when the broker cannot be reached at start; later outages show an error line and the
    monitor keeps trying.

    \b
    Example:
      conveyor -b redis://localhost:6379/0 monitor
      conveyor -A proj monitor --once
      conveyor -A proj monitor --json
      watch -n 2 conveyor -A proj monitor --once
    """
    admin = state.admin()
    first = _first_snapshot(lambda: take_snapshot(admin))
    if as_json:
        echo_json(first)
        return
    console = Console(highlight=False)
    broker = redacted_url(_broker_url(state))
    if once or not console.is_terminal:
        console.print(render(Reading(first, Rates()), broker, console.width, live=False))
        return
    sampler = Sampler(lambda: take_snapshot(admin), first, interval).start()
    try:
        with _ended_by_sigterm(), contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: a normal quit
            _run_live(console, sampler, broker)
    finally:
        sampler.stop()


def _first_snapshot(take: Callable[[], Snapshot]) -> Snapshot:
    """The first read decides: an unreachable broker at start is exit 1 with one line."""
    try:
        snapshot = take()
    except KeyboardInterrupt:
        raise click.Abort() from None  # Ctrl-C while a slow broker is read: no traceback
    except ConveyorError:
        raise  # main() prints it on one line and exits 1
    except Exception as exc:
        raise click.ClickException(f"cannot read the broker: {exc}") from exc
    return snapshot


def _run_live(console: Console, sampler: Sampler, broker: str) -> None:
    # The alternate screen (screen=True) leaves the shell's scrollback as it was, like top;
    # refreshes happen only when the sampler has something new, never on a timer of rich's.
    with Keys() as keys, Live(console=console, screen=True, auto_refresh=False) as live:
        live.update(render(sampler.reading(), broker, console.width, console.height), refresh=True)
        while not (QUIT_KEYS & set(keys.read(KEY_POLL))) and not keys.closed:
            if sampler.changed.is_set():
                sampler.changed.clear()
                live.update(render(sampler.reading(), broker, console.width, console.height), refresh=True)


@contextlib.contextmanager
def _ended_by_sigterm() -> Iterator[None]:
    """SIGTERM (and SIGHUP: the SSH session went away) end the view like Ctrl-C, so the
    terminal is restored on the way out."""

    def stop(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _broker_url(state: State) -> str:
    if state.broker:
        return state.broker
    if state.app_spec:
        return state.app.conf.broker()
    return os.environ.get("CONVEYOR_BROKER_URL") or DEFAULT_BROKER_URL


__all__ = ["monitor"]

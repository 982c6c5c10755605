"""``conveyor`` — the command line: ``conveyor -A proj worker``, ``call``, ``result``, ``purge``, ``dead``,
and the operator commands ``status``, ``queues``, ``pause``, ``resume``, ``inspect``, ``control``,
``revoke``, ``health``, ``tasks``, ``task``, ``counters``, ``monitor``."""

from __future__ import annotations

import os
import sys

import click

from .. import __version__
from ..exceptions import ConveyorError
from .common import State


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-A",
    "--app",
    "app_spec",
    envvar="CONVEYOR_APP",
    metavar="MODULE[:ATTR]",
    help="Module holding the Conveyor app (env: CONVEYOR_APP).",
)
@click.option("-b", "--broker", metavar="URL", help="Broker URL; overrides the app's setting.")
@click.version_option(__version__, "--version", prog_name="conveyor")
@click.pass_context
def cli(ctx: click.Context, app_spec: str | None, broker: str | None) -> None:
    """Conveyor: background tasks for Python (Celery-familiar, crash-safe, SQLite or Redis)."""
    ctx.obj = State(app_spec, broker)
    ctx.call_on_close(ctx.obj.close)  # broker connections closed when the command ends


def main() -> None:
    try:
        cli(prog_name="conveyor")
    except ConveyorError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)


def _register() -> None:
    from . import dead, locks, tasks, worker

    cli.add_command(worker.worker)
    cli.add_command(tasks.call)
    cli.add_command(tasks.result)
    cli.add_command(tasks.purge)
    cli.add_command(dead.dead)
    cli.add_command(locks.locks)
    cli.add_command(locks.release_lock)
    from . import beat, schedule

    cli.add_command(beat.beat)
    cli.add_command(schedule.schedule)
    from . import control, counters, health, history, inspect, queues, status

    cli.add_command(status.status)
    cli.add_command(queues.queues)
    cli.add_command(queues.pause)
    cli.add_command(queues.resume)
    cli.add_command(inspect.inspect)
    cli.add_command(control.control)
    cli.add_command(control.revoke)
    cli.add_command(health.health)
    cli.add_command(history.tasks)
    cli.add_command(history.task)
    cli.add_command(counters.counters)
    from . import metrics, monitor

    cli.add_command(monitor.monitor)
    cli.add_command(metrics.metrics)
    from . import dashboard

    cli.add_command(dashboard.dashboard)


_register()

if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()

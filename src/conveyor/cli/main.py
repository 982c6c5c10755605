"""``conveyor`` — the command line: ``conveyor -A proj worker``, ``call``, ``result``, ``purge``, ``dead``,
and the operator commands ``status``, ``queues``, ``pause``, ``resume``, ``inspect``, ``control``,
``revoke``, ``health``, ``tasks``, ``task``, ``counters``, ``monitor``.

Each command's module is imported only when that command runs (or its help is shown): a worker does
not pay for the dashboard, ``rich`` or the monitor at start-up. ``conveyor --help`` lists the
commands from ``COMMANDS`` without importing any of them."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from .. import __version__
from ..exceptions import ConveyorError

# Command name -> (module under conveyor.cli, attribute, its one-line help). The one-line help is
# the first sentence of the command's own help, from which click makes the line `conveyor --help`
# shows; kept here so that listing the commands imports none of them (tests/cli/test_lazy_commands.py
# checks every entry against the command itself). Listed in the order `conveyor --help` shows them.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "beat": ("beat", "beat", "Run the periodic scheduler: enqueue each entry's task once per schedule slot."),
    "call": ("tasks", "call", "Enqueue TASK by name and print its id."),
    "control": (
        "control",
        "control",
        "Send commands to live workers through the broker; each worker replies.",
    ),
    "counters": (
        "counters",
        "counters",
        "Runs per task name over a window (the last hour by default): processed (every run that ended: "
        "successes, failures and retries), failed, retried, and the mean runtime.",
    ),
    "dashboard": (
        "dashboard",
        "dashboard",
        "Serve the web dashboard (with the JSON API under /api, /health and /metrics).",
    ),
    "dead": ("dead", "dead", "Inspect and retry dead letters (alone: the newest page, as ``dead list``)."),
    "events": ("celery_flags", "events", "Celery's `celery events`: not provided; says what to use instead."),
    "flower": (
        "celery_flags",
        "flower",
        "Celery's Flower: built in here as the dashboard; says the command to use.",
    ),
    "health": ("health", "health", "Exit 0 if healthy, 1 (with a one-line reason) if not."),
    "inspect": (
        "inspect",
        "inspect",
        "Inspect live workers: what they run, hold and know, their counters and queues.",
    ),
    "locks": (
        "locks",
        "locks",
        "List held locks: name, holder, token prefix, fence, age and time to expiry.",
    ),
    "metrics": (
        "metrics",
        "metrics",
        "Serve Prometheus metrics for the whole cluster at /metrics (and /health).",
    ),
    "monitor": (
        "monitor",
        "monitor",
        "A live view of the cluster: workers (pool, running, processed, failed, tasks/s, last heartbeat), "
        "queues (ready, delayed, running, leased, latency, paused, net change per second), the tasks "
        "running now (longest first) and the last failures.",
    ),
    "multi": ("celery_flags", "multi", "Celery's `celery multi`: not provided; says what to use instead."),
    "pause": (
        "queues",
        "pause",
        "Pause QUEUE on every worker: within a heartbeat no task of it starts (workers started later "
        "too; tasks they prefetched go back unstarted); enqueues are still accepted and running "
        "tasks finish.",
    ),
    "purge": ("tasks", "purge", "Delete waiting tasks (ready and delayed) from queues."),
    "queues": (
        "queues",
        "queues",
        "List queues: ready (waiting to run now), delayed (countdown, eta, retry), running, leased (held "
        "by workers: running or prefetched), latency (how long the oldest ready task has waited) and "
        "whether it is paused.",
    ),
    "release-lock": ("locks", "release_lock", "Force-release the lock NAME, whoever holds it."),
    "result": ("tasks", "result", "Show a task's state and result (UNKNOWN for an id nobody enqueued)."),
    "resume": (
        "queues",
        "resume",
        "Resume a paused QUEUE: workers fetch from it again within a heartbeat.",
    ),
    "revoke": (
        "control",
        "revoke",
        "Revoke tasks by id, durably: a revoked task is never started, by any worker, even one that is "
        "down now.",
    ),
    "schedule": (
        "schedule",
        "schedule",
        "Periodic entries stored in the broker: list them, add, change, enable, disable, run now.",
    ),
    "status": ("status", "status", "One line per live worker (with --all, gone ones too)."),
    "task": (
        "history",
        "task",
        "Show one task's full record: name, arguments, queue, priority, state, times, runtime, attempts "
        "with each one's error, worker, and its result or traceback.",
    ),
    "tasks": (
        "history",
        "tasks",
        "List tasks, newest first: from the persistent history, succeeded, failed (dead or not), retrying "
        "and revoked tasks as they last ended; from the queues and workers, waiting, scheduled (soonest "
        "due first) and running ones.",
    ),
    "worker": ("worker", "worker", "Run a worker: fetch tasks from the queues and run them."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use (click's "lazy loading" pattern).

    ``lazy`` maps a command name to (module under ``conveyor.cli``, attribute, one-line help).
    Commands added with ``add_command`` work as in any group."""

    def __init__(self, *args: Any, lazy: dict[str, tuple[str, str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            module_name, attr, _summary = self.lazy[cmd_name]
            command = getattr(importlib.import_module(f"{__package__}.{module_name}"), attr)
            if not isinstance(command, click.Command) or command.name != cmd_name:
                raise RuntimeError(f"conveyor.cli.{module_name}.{attr} is not the {cmd_name!r} command")
            self.commands[cmd_name] = command  # imported once
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands and args[0] not in self.lazy:
            # An unknown name: click's error suggests the close names among the commands imported
            # ("Did you mean 'worker'?"), so on this error path import them all first.
            for name in self.lazy:
                self.get_command(ctx, name)
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """As click's, with a stand-in carrying the one-line help for every command not yet
        imported, so ``conveyor --help`` imports none of them and shows the same lines."""
        rows: list[tuple[str, click.Command]] = []
        for name in self.list_commands(ctx):
            command = self.commands.get(name)
            if command is None:
                command = click.Command(name, help=self.lazy[name][2])
            if not command.hidden:
                rows.append((name, command))
        if rows:
            limit = formatter.width - 6 - max(len(name) for name, _ in rows)
            with formatter.section("Commands"):
                formatter.write_dl([(name, command.get_short_help_str(limit)) for name, command in rows])


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
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
    from .common import State

    ctx.obj = State(app_spec, broker)
    ctx.call_on_close(ctx.obj.close)  # broker connections closed when the command ends


class _NeverRaised(click.UsageError):
    """Stands in for NoArgsIsHelpError on a click that has none (8.1 shows the help itself)."""


# click >= 8.2 raises this (a UsageError) for a group run without a command: it shows the help.
NO_ARGS_IS_HELP: type[click.UsageError] = getattr(click.exceptions, "NoArgsIsHelpError", _NeverRaised)


def main() -> None:
    """The ``conveyor`` command: click's standalone handling, except that a bad flag, value or
    command name is one line (``Error: ...``, naming the command's ``--help``) and exit code 2,
    as docs/cli.md says, where click would print its usage lines and a blank line first."""
    try:
        code = cli.main(prog_name="conveyor", standalone_mode=False)
    except NO_ARGS_IS_HELP as exc:  # `conveyor` alone: its help, as click shows it
        exc.show()
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        ctx = exc.ctx
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        click.echo(f"Error: {exc.format_message().removesuffix('.')}{hint}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("Aborted!", err=True)
        sys.exit(1)
    except ConveyorError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    # Not standalone, click returns instead of exiting: a command's ``ctx.exit(N)`` comes back
    # as N; a command that simply returned, as its value (None: success).
    sys.exit(code if isinstance(code, int) and not isinstance(code, bool) else 0)


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()

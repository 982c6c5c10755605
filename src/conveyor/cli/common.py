"""What every ``conveyor`` subcommand shares: the lazily loaded app and logging setup."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TextIO

import click

from ..app import Conveyor
from ..config import DEFAULT_BROKER_URL
from ..exceptions import ConfigurationWarning
from ..log import LOG_FORMATS, configure
from .loader import load_app

if TYPE_CHECKING:
    from ..admin import Admin

LOG_LEVELS = ["debug", "info", "warning", "error", "critical"]


class State:
    """The ``-A``/``-b`` options; the app is imported only when a command needs it."""

    def __init__(self, app_spec: str | None, broker: str | None) -> None:
        self.app_spec = app_spec
        self.broker = broker
        self._app: Conveyor | None = None
        self._admin: Admin | None = None  # built from a URL alone (no app)
        self._tasks_imported = False
        self._environment: tuple[str | None] | None = None  # $CONVEYOR_BROKER_URL before -b set it
        # The worker and beat log what the app's settings are warned about (setup_logging):
        # kept while the app is imported, before logging is set up, to go to the log file too.
        self.defer_config_warnings = False
        self.config_warnings: list[Warning | str] = []

    @property
    def app(self) -> Conveyor:
        if self._app is None:
            # (Not warnings.catch_warnings: it would also undo the filters the app's import set.)
            shown = warnings.showwarning
            if self.defer_config_warnings:
                route_config_warnings(self.config_warnings.append)
            try:
                self._app = load_app(self.app_spec)
            finally:
                warnings.showwarning = shown
            if self.broker:
                # -b for this command and everything it starts: the setting and the variable
                # (which the app would otherwise warn is overridden by its own setting).
                # Resolved (a relative SQLite path made absolute against the app's root), so
                # that another app started meanwhile opens the same file.
                self._app.conf.broker_url = self.broker
                self._environment = (os.environ.get("CONVEYOR_BROKER_URL"),)
                os.environ["CONVEYOR_BROKER_URL"] = self._app.resolved_broker_url()
            # As manage.py does: a Django project is set up for every command, so the commands
            # that read the task registry (call, schedule add) see the autodiscovered tasks.
            self._app.loader.setup()
        return self._app

    @property
    def app_with_tasks(self) -> Conveyor:
        """The app with its task modules imported (``include``, ``imports``,
        ``autodiscover_tasks``), as a worker imports them: for the commands that read the task
        registry (``call``, ``schedule add``/``sync``, ``tasks --name``, ``control rate_limit``)."""
        app = self.app
        if not self._tasks_imported:
            import_task_modules(app)
            self._tasks_imported = True
        return app

    def admin(self, import_app: bool = True) -> Admin:
        """The admin API. With ``-A``, over the app's broker (its ``broker_url``, else
        $CONVEYOR_BROKER_URL), as its workers see it. Without ``-A`` (or with
        ``import_app=False`` and ``-b URL``) no app module is imported: the operator commands
        only need the broker, and a health probe need not pay for importing the task modules."""
        from ..admin import Admin
        from ..brokers import broker_from_url

        if self.app_spec and (import_app or not self.broker):
            app = self.app  # the app's broker: its own setting, else the environment's
            warn_if_no_sqlite_file(app.resolved_broker_url())
            return app.admin
        if self._admin is None:
            url = self.broker or os.environ.get("CONVEYOR_BROKER_URL") or DEFAULT_BROKER_URL
            warn_if_no_sqlite_file(url)
            # No app: a revoke still ends the workflow of a step it drops from its queue; the
            # callbacks that needs are built by task name, with their signatures' own options.
            from ..app import Conveyor

            lost = Conveyor("conveyor-cli", broker=url).lost_continuation()
            self._admin = Admin(broker_from_url(url), lost=lost)
        return self._admin

    def close(self) -> None:
        """Close the broker connections a command opened (run when the command ends)."""
        if self._admin is not None:
            self._admin.broker.close()
            self._admin = None
        if self._app is not None:
            self._app.close()
        if self._environment is not None:  # as it was: a command run in-process (a test) leaves no trace
            (before,) = self._environment
            if before is None:
                os.environ.pop("CONVEYOR_BROKER_URL", None)
            else:
                os.environ["CONVEYOR_BROKER_URL"] = before
            self._environment = None


def warn_if_no_sqlite_file(url: str) -> None:
    """(Operator commands) Warn when a SQLite broker's file does not exist yet: opening it
    creates an empty one, and the command would report "no queues", "no workers" without a
    word while the real broker is elsewhere (a relative path given to -b is relative to the
    working directory; the app's is relative to the app's module)."""
    from urllib.parse import urlsplit

    if urlsplit(url).scheme != "sqlite":
        return
    from ..brokers.sqlite.url import parse_sqlite_url

    path = parse_sqlite_url(url)[0]
    if path != ":memory:" and not os.path.exists(path):
        click.echo(
            f"warning: no SQLite broker at {os.path.abspath(path)} yet (nothing was ever sent "
            "there), so it is created empty: check -b or the app's broker_url if you expected "
            "tasks (a relative -b path is relative to the working directory, the app's to its module)",
            err=True,
        )


class NotFound(click.ClickException):
    """No such queue, worker, task id or task name: one line, exit 2 (as for a usage error,
    without the usage lines: the command was written right, the name is not there)."""

    exit_code = 2


@contextlib.contextmanager
def lookups() -> Iterator[None]:
    """An unknown queue, worker or task id: one line, exit 2."""
    from ..admin import UnknownName

    try:
        yield
    except UnknownName as exc:
        raise NotFound(str(exc)) from exc


def import_task_modules(app: Conveyor) -> None:
    """What a worker or beat imports before it starts (``include``, ``autodiscover_tasks``;
    loading.py); a module named there that does not exist is a usage error (exit 2)."""
    from ..exceptions import ConfigurationError

    try:
        app.loader.import_default_modules()
    except ConfigurationError as exc:
        raise click.UsageError(str(exc)) from exc


def setup_logging(
    level: str, logfile: str | None = None, fmt: str = "text", state: State | None = None
) -> None:
    """The worker's and beat's logging (conveyor/log.py); a log file that cannot be opened is
    a usage error: one line, exit 2. From then on a ``ConfigurationWarning`` (a setting not
    used, renamed, overridden) is a log line like any other, in the log file too, and so are
    those ``state`` kept while the app was imported."""
    try:
        configure(level, logfile, fmt)
    except OSError as exc:
        why = f"cannot write to {logfile}: {exc.strerror or exc}"
        raise click.BadParameter(why, param_hint="--logfile") from None
    log = logging.getLogger("conveyor")
    route_config_warnings(lambda message: log.warning("%s", message))
    if state is not None:
        for message in state.config_warnings:
            log.warning("%s", message)
        state.config_warnings.clear()


def route_config_warnings(to: Callable[[Warning | str], object]) -> None:
    """From now on, a ``ConfigurationWarning`` that Python would show goes to ``to`` instead
    (its filters still apply); every other warning is shown as before."""
    shown = warnings.showwarning

    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if issubclass(category, ConfigurationWarning):
            to(message)
        else:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def log_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``-l/--loglevel``, ``-f/--logfile`` and ``--log-format``, as the worker and beat take them."""
    command = click.option(
        "--log-format",
        "log_format",
        type=click.Choice(LOG_FORMATS),
        default="text",
        show_default=True,
        help="text, or json: one JSON object per line (time, level, logger, message, task_id, ...).",
    )(command)
    command = click.option(
        "-f", "--logfile", metavar="PATH", help="Append the log to PATH instead of stderr (logrotate-safe)."
    )(command)
    return click.option(
        "-l",
        "--loglevel",
        type=click.Choice(LOG_LEVELS, case_sensitive=False),
        default="info",
        show_default=True,
    )(command)


class HintedGroup(click.Group):
    """A group that answers a Celery subcommand it does not have with what to use instead
    (``hints``: name -> one line), not only click's "No such command"."""

    hints: dict[str, str] = {}

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = click.utils.make_str(args[0]) if args else ""
        if name in self.hints and self.get_command(ctx, name) is None:
            raise click.UsageError(f"{self.name} {name}: {self.hints[name]}", ctx)
        return super().resolve_command(ctx, args)

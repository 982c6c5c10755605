"""Celery's worker and beat flags that runbooks carry over, and what Conveyor does with each.

Each one either works as in Celery or says, in one line at start-up, what Conveyor does
instead: a flag that is silently ignored hides a difference an operator relies on (a runbook
that says ``-P gevent -c 100`` expects 100-way I/O concurrency, and must not quietly get 8).
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import logging
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..worker.pools import pool_error
from ..worker.worker import POOL_ALIASES, POOLS

logger = logging.getLogger("conveyor.worker")
F = TypeVar("F", bound=Callable[..., Any])


class Refused(click.ClickException):
    """A flag value Conveyor cannot honour: one line on stderr, exit code 2."""

    exit_code = 2


def check_pool(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is None or value in POOLS or value in POOL_ALIASES:
        return value
    raise Refused(pool_error(value, POOLS))


def parse_autoscale(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    """``--autoscale MAX[,MIN]`` -> MAX (the pool does not grow and shrink yet)."""
    if value is None:
        return None
    parts = value.split(",")
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        numbers = []
    if (
        len(numbers) not in (1, 2)
        or numbers[0] < 1
        or (len(numbers) == 2 and not 0 <= numbers[1] <= numbers[0])
    ):
        raise Refused(
            f"--autoscale {value}: give MAX,MIN with MAX >= MIN >= 0 and MAX >= 1, e.g. --autoscale 10,3"
        )
    return numbers[0]


def check_optimization(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is None or value == "fair":
        return value
    raise Refused(f"-O {value}: only -O fair is accepted (and is what Conveyor always does)")


def announce_schedule_file(path: str | None) -> None:
    """``beat -s FILE`` (and ``worker -B -s FILE``): Celery's local schedule state file."""
    if path:
        logger.warning("-s %s not used: the schedule state lives in the broker, not in a file", path)


def announce(
    autoscale: int | None, task_events: bool, optimization: str | None, schedule_file: str | None
) -> None:
    """One line per accepted-but-different flag, logged at start-up."""
    announce_schedule_file(schedule_file)
    if autoscale is not None:
        logger.warning(
            "--autoscale: the pool does not grow and shrink yet; running with concurrency %d", autoscale
        )
    if task_events:
        logger.warning("-E: not needed: task states and results are always recorded in the broker")
    if optimization == "fair":
        logger.warning(
            "-O fair: already how Conveyor works: prefetched jobs wait in one inbox that any free "
            "slot takes from, never queued behind a busy one"
        )


# -- flags from Celery's systemd units and runbooks ------------------------------------------------
_NOTES = "conveyor.flag_notes"  # ctx.meta key: the notes of the flags given, logged at start-up

# flag -> the one line logged when it is given (the flag is accepted and changes nothing)
WORKER_NOTES = {
    "--without-gossip": "--without-gossip: not needed: workers do not gossip; they see each other "
    "through the broker's heartbeats",
    "--without-mingle": "--without-mingle: not needed: a starting worker has nothing to mingle for; "
    "revokes are stored in the broker",
    "--without-heartbeat": "--without-heartbeat: the heartbeat stays on: it renews the worker's leases "
    "(without it its tasks would be taken back and run again elsewhere)",
    "--statedb": "--statedb {value}: not needed: revokes are stored in the broker, not in a file",
}
BEAT_NOTES = {
    "--max-interval": "--max-interval {value}: not needed: beat sleeps until the next schedule slot is "
    "due and rereads the schedules from the broker",
}
DETACH = (
    "--detach: not supported: run it under systemd, supervisord, Docker or Kubernetes "
    "(examples in the repository's deploy/ directory)"
)
EXCLUDE = "-X/--exclude-queues: not supported: list the queues this worker consumes with -Q"


def _note(message: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        if value not in (None, False):
            ctx.meta.setdefault(_NOTES, []).append(message.format(value=value))
        return value

    return callback


def _refuse(message: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(_ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        if value not in (None, False):
            raise Refused(message)
        return value

    return callback


def runbook_flags(notes: dict[str, str], *, exclude: bool) -> Callable[[F], F]:
    """Celery flags with nothing to do here (``notes``: each logged in one line when given),
    ``--detach`` and (worker) ``-X`` refused in one line, and ``--pidfile`` (works as in Celery)."""

    def decorate(command: F) -> F:
        for flag, message in notes.items():
            takes_value = "{value}" in message
            command = click.option(
                flag,
                is_flag=not takes_value,
                metavar="VALUE" if takes_value else None,
                expose_value=False,
                callback=_note(message),
                help="Celery's; accepted: " + message.partition(": ")[2].split(":")[0] + ".",
            )(command)
        command = click.option(
            "--detach", is_flag=True, expose_value=False, callback=_refuse(DETACH), hidden=True
        )(command)
        if exclude:
            command = click.option(
                "-X", "--exclude-queues", expose_value=False, callback=_refuse(EXCLUDE), hidden=True
            )(command)
        return click.option(
            "--pidfile",
            metavar="FILE",
            expose_value=False,
            callback=_take_pidfile,
            help="Write this command's pid to FILE (removed at exit); refuse to start while the pid "
            "in an existing FILE is alive.",
        )(command)

    return decorate


def announce_runbook_flags(log: logging.Logger = logger) -> None:
    """Log the line of each accepted-but-unneeded flag given (``runbook_flags``)."""
    ctx = click.get_current_context(silent=True)
    for message in ctx.meta.get(_NOTES, []) if ctx is not None else []:
        log.warning("%s", message)


def _take_pidfile(_ctx: click.Context, _param: click.Parameter, path: str | None) -> str | None:
    if path is None:
        return None
    try:
        write_pidfile(path)
    except PidfileTaken as exc:
        raise Refused(str(exc)) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # opened with O_NOFOLLOW
            raise Refused(
                f"--pidfile {path}: is a symbolic link, not followed: give the file itself"
            ) from None
        raise Refused(f"--pidfile {path}: cannot write it: {exc.strerror or exc}") from None
    return path


PIDFILE_LOCK_WAIT = 10.0  # seconds a start waits for the pid file's lock before refusing


class PidfileTaken(Exception):
    """The pid file names a process that is alive."""


def write_pidfile(path: str) -> None:
    """Write this process's pid to ``path`` (as Celery's ``--pidfile``): refused while the pid in
    an existing file is alive; a stale one is replaced. Removed when this process exits (not by
    the worker processes it forks).

    The file itself is locked (``flock``, which NFS emulates with a byte-range lock on the
    writable descriptor) while it is checked and written, so of commands started at once with
    the same pid file — missing or stale — exactly one takes it. It is opened without following
    a symlink, and written in place (never removed by a starting command, so a lock is always
    on the file that is there: one removed by an exiting command meanwhile is opened again)."""
    ours = os.getpid()
    deadline = time.monotonic() + PIDFILE_LOCK_WAIT
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise PidfileTaken(
                            f"--pidfile {path}: locked by another process for {PIDFILE_LOCK_WAIT:.0f}s"
                        ) from None
                    time.sleep(0.05)
                except OSError:  # no locks on this file system (NFS without its lock service)
                    break  # checked and written without one, as before locks were taken
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False))
            except FileNotFoundError:
                same = False
            if not same:
                continue  # removed (or replaced) while this one waited for the lock: again
            old = _pid_in(os.read(fd, 64))
            if old and old != ours and _alive(old):
                raise PidfileTaken(f"--pidfile {path}: pid {old} in it is still running; stop it first")
            if old and old != ours:
                click.echo(f"--pidfile {path}: replacing a stale file (pid {old} is not running)", err=True)
            data = f"{ours}\n".encode()
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
            break
        finally:
            os.close(fd)  # releases the lock

    def remove() -> None:
        # Not by a forked worker process exiting, nor once another command has taken the file.
        with contextlib.suppress(OSError):
            if os.getpid() == ours and _read_pid(path) == ours:
                os.unlink(path)

    atexit.register(remove)


def _read_pid(path: str) -> int:
    """The pid in ``path``; 0 if there is no such file or it holds no plausible pid."""
    try:
        with open(path, "rb") as existing:
            return _pid_in(existing.read(64))
    except FileNotFoundError:
        return 0


def _pid_in(data: bytes) -> int:
    """The pid a pid file's bytes name; 0 for none or an implausible one (Linux pids are below
    2**22; ``-1`` would ask ``kill`` about every process)."""
    try:
        pid = int(data.strip() or 0)
    except ValueError:
        return 0
    return pid if 0 < pid < 2**22 else 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False  # gone, or the number now belongs to another user's process: stale (as Celery)
    return True


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def flower(ctx: click.Context) -> None:
    """Celery's Flower: built in here as the dashboard; says the command to use."""
    port = next((a.split("=", 1)[1] for a in ctx.args if a.startswith("--port=")), None)
    if port is None and "--port" in ctx.args[:-1]:
        port = ctx.args[ctx.args.index("--port") + 1]
    raise Refused(
        f"flower: not a separate program here: the dashboard is built in: "
        f"`conveyor -A APP dashboard --port {port or 5555}` (docs/dashboard.md)"
    )


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def events() -> None:
    """Celery's `celery events`: not provided; says what to use instead."""
    raise Refused(
        "events: not provided: `conveyor -A APP monitor` is the live view of workers, queues and "
        "running tasks (and the dashboard, `conveyor -A APP dashboard`); no event stream is needed"
    )


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def multi() -> None:
    """Celery's `celery multi`: not provided; says what to use instead."""
    raise Refused(
        "multi: not provided: `conveyor worker --processes N` runs N worker processes under one "
        "command (restarted when they die); for separate workers run one service each (deploy/systemd)"
    )

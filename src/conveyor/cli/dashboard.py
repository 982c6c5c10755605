"""``conveyor dashboard``: the web dashboard, the JSON API, /health and /metrics in one server."""

from __future__ import annotations

import os
import sys

import click

from ..app import Conveyor
from ..config import DEFAULT_BROKER_URL
from .common import State


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=5555, show_default=True)
@click.option(
    "--auth", "auth", multiple=True, metavar="USER:PASSWORD", help="A user who may act (repeatable)."
)
@click.option(
    "--auth-file",
    type=click.Path(dir_okay=False),
    help="Users with hashed passwords, one 'user:HASH[:read-only]' a line (see --hash-password).",
)
@click.option("--token", help="A bearer token for API clients (or $CONVEYOR_DASHBOARD_TOKEN).")
@click.option(
    "--secret",
    help="Signs CSRF tokens and action notes (or $CONVEYOR_DASHBOARD_SECRET; default: random per "
    "process). Give every replica behind one load balancer the same one.",
)
@click.option("--read-only-user", multiple=True, metavar="USER:PASSWORD", help="A user who can only look.")
@click.option("--read-only", is_flag=True, help="Nobody can act: every user is read-only.")
@click.option("--insecure-no-auth", is_flag=True, help="Allow a non-loopback address without authentication.")
@click.option(
    "--allow-host",
    multiple=True,
    metavar="NAME",
    help="Without authentication on a loopback address, also answer requests for this host name "
    "(a proxy's); other names are refused (DNS rebinding).",
)
@click.option("--root-path", default="", help="The path prefix a reverse proxy serves it under (/conveyor).")
@click.option(
    "--hash-password",
    metavar="USER",
    help="Ask for USER's password (from a pipe: read its first line), print an auth-file line, exit.",
)
@click.pass_obj
def dashboard(
    state: State,
    host: str,
    port: int,
    auth: tuple[str, ...],
    auth_file: str | None,
    token: str | None,
    secret: str | None,
    read_only_user: tuple[str, ...],
    read_only: bool,
    insecure_no_auth: bool,
    allow_host: tuple[str, ...],
    root_path: str,
    hash_password: str | None,
) -> None:
    """Serve the web dashboard (with the JSON API under /api, /health and /metrics).

    Binds 127.0.0.1 by default; another address needs authentication (or --insecure-no-auth).
    Without -A it needs only the broker (-b or $CONVEYOR_BROKER_URL): everything works, and
    "run again" sends tasks by name.

    \b
    Examples:
      conveyor -A proj dashboard
      conveyor -A proj dashboard --host 0.0.0.0 --auth-file /etc/conveyor/users
      conveyor dashboard --hash-password alice >> /etc/conveyor/users
    """
    from ..dashboard.auth import AuthConfigError, check_user_name, hash_line, load_auth_file, parse_plain
    from ..dashboard.serve import UnsafeBind, check_bind, serve
    from ..dashboard.signing import Signer

    try:
        if hash_password is not None:
            check_user_name(hash_password)  # before the password is typed, not after
            click.echo(hash_line(hash_password, _password(hash_password)))
            return
        accounts = [parse_plain(v) for v in auth] + [parse_plain(v, can_act=False) for v in read_only_user]
        if auth_file:
            accounts += load_auth_file(auth_file).values()
        token = token or os.environ.get("CONVEYOR_DASHBOARD_TOKEN") or None
        check_bind(host, bool(accounts) or token is not None, insecure_no_auth)
        try:
            Signer(secret)
        except ValueError as exc:
            raise click.UsageError(f"--secret / $CONVEYOR_DASHBOARD_SECRET: {exc}") from None
        serve(
            _app(state),
            host,
            port,
            accounts,
            token,
            read_only,
            insecure_no_auth,
            root_path.rstrip("/"),
            allow_host,
            secret,
        )
    except (AuthConfigError, UnsafeBind) as exc:
        raise click.UsageError(str(exc)) from exc


def _password(user: str) -> str:
    """USER's password: asked twice, unechoed, on a terminal; else the first line of stdin.

    A pipe (``printf '%s\\n' "$PW" | conveyor dashboard --hash-password alice``) is read as it
    is: getpass would look for a terminal behind it, warn that the input "may be echoed" and
    ask for a confirmation line a script has no reason to send."""
    if sys.stdin.isatty():
        return str(click.prompt(f"password for {user}", hide_input=True, confirmation_prompt=True))
    # Only the line ending is removed: spaces around a password are part of it.
    password = sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    if not password:
        raise click.UsageError(f"--hash-password {user}: no password on stdin (one line expected)")
    return password


def _app(state: State) -> Conveyor:
    """The -A app with its task modules imported (``include=``, ``imports``, as a worker
    imports them: ``POST /api/tasks`` sends only registered tasks), or (without -A) a bare one
    on the broker: the pages need no task module."""
    if state.app_spec:
        return state.app_with_tasks
    url = state.broker or os.environ.get("CONVEYOR_BROKER_URL") or DEFAULT_BROKER_URL
    return Conveyor("conveyor-dashboard", broker=url)

"""Serving the dashboard with uvicorn, after the bind check: a dashboard can purge queues and
terminate tasks, so it never listens beyond this machine without authentication unless told
``--insecure-no-auth`` in so many words."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import uvicorn

from ..app import Conveyor
from .auth import Account
from .site import asgi_app


class UnsafeBind(ValueError):
    """A non-loopback address without authentication (and without --insecure-no-auth)."""


def is_loopback(host: str) -> bool:
    """``127.0.0.1``, ``::1`` and ``localhost`` reach this machine only; ``0.0.0.0`` does not.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_bind(host: str, authenticated: bool, insecure_no_auth: bool) -> None:
    if authenticated or insecure_no_auth or is_loopback(host):
        return
    raise UnsafeBind(
        f"refusing to serve the dashboard on {host} without authentication: anyone who reaches it "
        "could purge queues and stop tasks. Give --auth USER:PASSWORD, --auth-file FILE or --token "
        "TOKEN, bind 127.0.0.1, or say --insecure-no-auth if something in front already guards it."
    )


def url(host: str, port: int, root_path: str = "") -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{root_path}/"


def serve(
    app: Conveyor,
    host: str,
    port: int,
    accounts: Sequence[Account] = (),
    token: str | None = None,
    read_only: bool = False,
    insecure_no_auth: bool = False,
    root_path: str = "",
) -> None:
    """Check the bind, then serve until Ctrl-C/SIGTERM (uvicorn handles both gracefully)."""
    check_bind(host, bool(accounts) or token is not None, insecure_no_auth)
    web = asgi_app(app, accounts=accounts, token=token, read_only=read_only)
    print(f"dashboard: {url(host, port, root_path)}", flush=True)
    uvicorn.run(web, host=host, port=port, root_path=root_path, log_level="warning", access_log=False)

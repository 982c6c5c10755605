"""Serving the dashboard with uvicorn, after the bind check: a dashboard can purge queues and
terminate tasks, so it never listens beyond this machine without authentication unless told
``--insecure-no-auth`` in so many words.

Without authentication on a loopback address, it also answers only requests addressed to a
loopback name (the ``Host`` header: ``localhost``, ``127.0.0.1``, ``[::1]``, or a name given
with ``--allow-host``). Otherwise any web page the operator opens could point its own domain
name at 127.0.0.1 (DNS rebinding) and, being then "same origin", read the pages, pick the CSRF
token out of a form and purge a queue. With credentials that page has no password to send."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from ..app import Conveyor
from .auth import Account, plain_response
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


def host_name(header: str) -> str:
    """The name in a ``Host`` header, without its port, lower-cased.

    >>> host_name("LocalHost:5555"), host_name("[::1]:5555"), host_name("127.0.0.1")
    ('localhost', '::1', '127.0.0.1')
    """
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.partition(":")[0]


class LoopbackHostsOnly:
    """403 for a request whose ``Host`` is neither a loopback name nor one of ``allowed``
    (a request with no ``Host`` at all comes from no browser, and passes)."""

    def __init__(self, app: ASGIApp, allowed: Sequence[str] = ()) -> None:
        self.app = app
        self.allowed = frozenset(host_name(h) for h in allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw = dict(scope["headers"]).get(b"host")
            name = host_name(raw.decode("latin-1")) if raw is not None else None
            if name is not None and not is_loopback(name) and name not in self.allowed:
                await plain_response(
                    send,
                    403,
                    f"host {name!r} refused: without authentication this dashboard answers only to "
                    "localhost, 127.0.0.1 and [::1] (a guard against DNS rebinding). Add "
                    f"--allow-host {name} if a proxy of yours sends that name, or use --auth/--token.",
                    scope=scope,
                )
                return
        await self.app(scope, receive, send)


def url(host: str, port: int, root_path: str = "", page: str = "/") -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{root_path}{page}"


def is_every_interface(host: str) -> bool:
    """``0.0.0.0`` and ``::`` (however spelled) listen on every interface of this machine.

    >>> is_every_interface("0.0.0.0"), is_every_interface("[::]"), is_every_interface("127.0.0.1")
    (True, True, False)
    """
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def serving_line(
    host: str, port: int, root_path: str = "", label: str = "dashboard:", page: str = "/"
) -> str:
    """What ``serve`` prints once it is about to listen: a URL a browser can open.

    ``0.0.0.0`` and ``::`` are addresses to listen on, not to browse to (a browser on another
    machine cannot reach ``http://0.0.0.0:5555/``), so for them the line gives this machine's
    loopback URL, says that it listens on every interface, and names the URL other machines
    would use (this host's name, if their DNS knows it).

    >>> serving_line("127.0.0.1", 5555)
    'dashboard: http://127.0.0.1:5555/'
    >>> serving_line("::", 5555, "/conveyor").split(" (")[0]
    'dashboard: http://[::1]:5555/conveyor/'
    """
    if not is_every_interface(host):
        return f"{label} {url(host, port, root_path, page)}"
    # ::1 for "::": a host set to accept IPv6 only there (bindv6only) would not answer on 127.0.0.1.
    local = "::1" if ":" in host else "127.0.0.1"
    bound = f"[{host.strip('[]')}]" if ":" in host else host
    return (
        f"{label} {url(local, port, root_path, page)} (listening on all interfaces, {bound}:{port}; "
        f"from another machine: {url(socket.gethostname(), port, root_path, page)})"
    )


def serve(
    app: Conveyor,
    host: str,
    port: int,
    accounts: Sequence[Account] = (),
    token: str | None = None,
    read_only: bool = False,
    insecure_no_auth: bool = False,
    root_path: str = "",
    allowed_hosts: Sequence[str] = (),
    secret: str | None = None,
) -> None:
    """Check the bind, then serve until Ctrl-C/SIGTERM (uvicorn handles both gracefully)."""
    authenticated = bool(accounts) or token is not None
    check_bind(host, authenticated, insecure_no_auth)
    web: ASGIApp = asgi_app(app, accounts=accounts, token=token, read_only=read_only, secret=secret)
    if not authenticated and is_loopback(host):
        web = LoopbackHostsOnly(web, allowed_hosts)
    print(serving_line(host, port, root_path), flush=True)
    uvicorn.run(web, host=host, port=port, root_path=root_path, log_level="warning", access_log=False)

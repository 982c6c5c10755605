"""The dashboard as an ASGI application: routes, static files, auth and CSRF.

``asgi_app(app)`` is what ``conveyor dashboard`` serves, and what another Starlette, FastAPI or
Django (ASGI) application mounts under a path::

    from starlette.applications import Starlette
    from starlette.routing import Mount
    from conveyor.dashboard import asgi_app
    from proj.celery import app as conveyor_app

    ops = Starlette(routes=[Mount("/ops", app=asgi_app(conveyor_app))])

Mounted without accounts or a token, it asks for no credentials and trusts the host: put it
behind the host's own auth, which may also set ``scope["conveyor.user"]`` to a ``WebUser``
(the name goes to the action log; ``can_act=False`` makes it read-only).
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ..app import Conveyor
from ..exceptions import BrokerError
from ..httpapi import api_routes, health_route
from ..metrics import metrics_route
from . import actions, pages
from .auth import Account, AuthMiddleware, Security
from .csrf import CSRFMiddleware
from .headers import SecurityHeaders
from .render import page
from .signing import Signer


def page_routes() -> list[BaseRoute]:
    post = ["POST"]
    return [
        Route("/", pages.overview),
        Route("/queues", pages.queues),
        Route("/queues/{name:path}/purge", pages.purge_confirm),
        Route("/queues/{name:path}/purge", actions.purge_queue, methods=post),
        Route("/queues/{name:path}/pause", actions.pause_queue, methods=post),
        Route("/queues/{name:path}/resume", actions.resume_queue, methods=post),
        Route("/workers", pages.workers),
        Route("/workers/{name:path}/shutdown", actions.shutdown_worker, methods=post),
        Route("/tasks", pages.tasks),
        Route("/tasks/{task_id:path}", pages.task),
        Route("/tasks/{task_id:path}/revoke", actions.revoke_task, methods=post),
        Route("/tasks/{task_id:path}/rerun", actions.rerun_task, methods=post),
        Route("/scheduled", pages.scheduled),
        Route("/dead", pages.dead),
        Route("/dead", actions.dead_bulk, methods=post),
        Route("/periodic", pages.periodic),
        Route("/periodic/{name:path}/{what}", actions.schedule_action, methods=post),
        Route("/locks", pages.locks),
        Route("/locks/{name:path}/release", actions.release_lock, methods=post),
        Route("/actions", pages.actions),
        Mount("/static", app=StaticFiles(packages=[("conveyor.dashboard", "static")]), name="static"),
    ]


async def broker_unreachable(request: Request, exc: Exception) -> Response:
    """A page whose broker read failed says so (503) instead of a bare 500; the live refresh
    keeps the last good data on screen and marks it stale until the broker answers again."""
    return page(request, "error.html", status=503, message=f"broker unreachable: {exc}")


def service_routes(app: Conveyor) -> list[BaseRoute]:
    """The JSON API under ``/api``, ``/health`` (left open by the auth middleware: load
    balancers carry no credentials) and ``/metrics`` (conveyor.httpapi, conveyor.metrics)."""
    return [Mount("/api", routes=api_routes(app)), health_route(app), metrics_route(app)]


def asgi_app(
    app: Conveyor,
    *,
    accounts: Sequence[Account] = (),
    token: str | None = None,
    read_only: bool = False,
    secret: str | None = None,
) -> Starlette:
    """The dashboard, the JSON API, ``/health`` and ``/metrics`` for ``app``'s cluster.

    ``accounts`` (basic auth, see auth.py) and ``token`` (``Authorization: Bearer``) are who may
    come in; with neither, nobody is asked (the host's auth in front, or a loopback bind).
    ``read_only`` makes everyone read-only. ``secret`` signs the CSRF tokens and the notes
    shown after an action (default ``$CONVEYOR_DASHBOARD_SECRET``, else random per process:
    replicas behind one load balancer must share one; see signing.py).

    >>> web = asgi_app(app, accounts=[parse_plain("ops:s3cret")])    # doctest: +SKIP
    """
    security = Security({a.name: a for a in accounts}, token, read_only)
    web = Starlette(
        routes=[*service_routes(app), *page_routes()],
        exception_handlers={BrokerError: broker_unreachable},
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(AuthMiddleware, security=security),
            Middleware(CSRFMiddleware, signer=Signer(secret)),
        ],
    )
    web.state.conveyor = app
    return web

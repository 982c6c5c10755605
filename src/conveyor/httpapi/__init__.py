"""The HTTP API: JSON over Starlette, standing on the admin API (``app.admin``) only.

The dashboard mounts ``api_routes(app)`` under ``/api``, ``health_route(app)`` at ``/health``
(no auth) and ``conveyor.metrics.metrics_route(app)`` at ``/metrics``, behind its auth and CSRF
middleware. ``asgi_app(app)`` is the same without the dashboard, to mount in a FastAPI or
Starlette application behind that application's own auth::

    from fastapi import FastAPI
    from conveyor.httpapi import asgi_app
    from proj.tasks import app as conveyor_app

    api = FastAPI()
    api.mount("/conveyor", asgi_app(conveyor_app))   # /conveyor/api/tasks, /conveyor/health

See docs/http-api.md for every endpoint, with curl examples.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Mount, Route

from ..app import Conveyor
from . import cluster, deadletters, tasks
from .endpoint import Endpoint, error, json_response
from .health import health_route
from .openapi import describe

__all__ = ["api_routes", "asgi_app", "endpoints", "health_route"]


def endpoints(app: Conveyor) -> list[Endpoint]:
    """Every endpoint of the API (paths relative to where it is mounted, ``/api``)."""
    return [*tasks.endpoints(app), *cluster.endpoints(app), *deadletters.endpoints(app)]


def api_routes(app: Conveyor) -> list[BaseRoute]:
    """The API's routes, to mount under ``/api``; ``/openapi.json`` describes them."""
    found = endpoints(app)
    description = describe(found)

    async def openapi(request: Request) -> Response:
        return json_response(description)

    routes: list[BaseRoute] = [e.route() for e in found]

    async def not_found(request: Request) -> Response:
        # Reached when no route matched in full: a known path with another method is a 405.
        if any(r.matches(request.scope)[0] is Match.PARTIAL for r in routes):
            return error(405, f"method {request.method} not allowed on {request.url.path}")
        return error(404, f"no such endpoint: {request.method} {request.url.path} (see /api/openapi.json)")

    routes.append(Route("/openapi.json", openapi, methods=["GET"], name="openapi"))
    routes.append(Route("/{rest:path}", not_found, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]))
    return routes


def asgi_app(app: Conveyor) -> Starlette:
    """A Starlette application serving ``/api/...``, ``/health`` and ``/metrics``, with no auth
    of its own (every caller may act, as user "anonymous" in the action log)."""
    from ..metrics import metrics_route

    return Starlette(routes=[Mount("/api", routes=api_routes(app)), health_route(app), metrics_route(app)])

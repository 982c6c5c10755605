"""One JSON endpoint of the HTTP API, described once: its method, path, query parameters, body
and whether it acts on the cluster. The Starlette route and the OpenAPI description are both
built from this description, so the published description cannot drift from what is served.

Every endpoint answers JSON. Errors are ``{"error": "..."}`` with the status that fits:
400 for bad input (malformed JSON, a wrong type, arguments that do not fit the task), 403 for
a read-only user who tries to act, 404 for an unknown task id, queue, worker or task name,
415 for a POST whose ``Content-Type`` is not ``application/json`` (even with no body), 503 when
the broker cannot be reached.

Why 415: mounted on its own (``conveyor.httpapi.asgi_app``) the API has no CSRF token, and a
cross-site HTML form or a "simple" ``fetch`` can only send ``application/x-www-form-urlencoded``,
``multipart/form-data`` or ``text/plain`` (or no type at all) without the API's consent (a CORS
preflight, which it never grants). Requiring JSON makes every such forged POST fail before it
acts.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..admin import Admin, UnknownName, UnknownState
from ..exceptions import BrokerError

log = logging.getLogger("conveyor.httpapi")

USER_SCOPE_KEY = "conveyor.user"  # set by the dashboard's auth middleware (dashboard/auth.py)


class ApiError(Exception):
    """An error the client should see: ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class User:
    """Who calls: the dashboard's authenticated user, or "anonymous" who may act when the API is
    mounted behind a host application's own auth (nothing in the scope)."""

    name: str
    can_act: bool


ANONYMOUS = User("anonymous", True)


def current_user(request: Request) -> User:
    found = request.scope.get(USER_SCOPE_KEY)
    if found is None:
        return ANONYMOUS
    return User(str(getattr(found, "name", "unknown")), bool(getattr(found, "can_act", False)))


async def record(request: Request, admin: Admin, action: str, target: str, detail: str = "") -> None:
    """Write an action the caller took to the action log (admin/actions.py)."""
    await run_in_threadpool(admin.record_action, current_user(request).name, action, target, detail)


@dataclass(frozen=True, slots=True)
class Param:
    """A query parameter (for the OpenAPI description; handlers read them through inputs.py)."""

    name: str
    type: str  # "string", "integer", "number", "boolean"
    description: str
    repeated: bool = False


#: The responses of a listing with query parameters.
LISTED = {200: "OK", 400: "a bad query parameter"}

#: ``limit`` and ``offset``, the query parameters of every paged listing (inputs.paging reads them).
PAGING = (
    Param("limit", "integer", "page size, 1-500 (default 50)"),
    Param("offset", "integer", "where the page starts: the previous page's next_offset"),
)


@dataclass(frozen=True, slots=True)
class Reply:
    """A handler's answer when the status is not 200."""

    status: int
    body: Any


Handler = Callable[[Request], Awaitable[Any]]


@dataclass(frozen=True)
class Endpoint:
    """One endpoint. ``acts``: it changes the cluster, so a user who cannot act gets 403 before
    the handler runs. ``body``: the JSON schema of the request body (None: no body).
    ``returns`` and ``shape``: what a 200 holds, for the OpenAPI description."""

    method: str
    path: str
    summary: str
    handler: Handler
    params: tuple[Param, ...] = ()
    body: dict[str, Any] | None = None
    acts: bool = False
    responses: dict[int, str] = field(default_factory=lambda: {200: "OK"})
    returns: type | None = None  # the admin record a 200 answers with (for the OpenAPI schema)
    shape: str = "one"  # "one" record, a "list" of them, or a "page" of them

    def route(self) -> Route:
        return Route(self.path, self._serve, methods=[self.method], name=self.summary)

    async def _serve(self, request: Request) -> Response:
        try:
            if self.method not in ("GET", "HEAD"):
                require_json(request)
            if self.acts and not current_user(request).can_act:
                raise ApiError(403, f"user {current_user(request).name!r} is read-only: cannot act")
            answer = await self.handler(request)
        except ApiError as exc:
            return error(exc.status, exc.message)
        except UnknownState as exc:
            return error(400, str(exc))
        except UnknownName as exc:
            return error(404, str(exc))
        except BrokerError as exc:
            return error(503, f"broker unreachable: {exc}")
        except Exception as exc:  # a bug must still answer JSON, and be logged with its traceback
            log.exception("%s %s failed", self.method, request.url.path)
            return error(500, f"internal error: {type(exc).__name__}: {exc}")
        if isinstance(answer, Reply):
            return json_response(answer.body, answer.status)
        return json_response(answer)


def require_json(request: Request) -> None:
    """415 unless the request says ``Content-Type: application/json`` (parameters allowed)."""
    given = request.headers.get("content-type", "")
    if given.partition(";")[0].strip().lower() != "application/json":
        raise ApiError(
            415,
            f"{request.method} needs Content-Type: application/json (got {given or 'none'}); "
            "send a JSON body, or none with that header",
        )


def error(status: int, message: str) -> Response:
    return json_response({"error": message}, status)


def json_response(body: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(to_json(body), default=repr, ensure_ascii=False),
        status,
        media_type="application/json",
    )


def to_json(value: Any) -> Any:
    """The admin records (frozen dataclasses, tuples of them) as JSON-ready values. A task's
    result that JSON cannot hold is shown by its ``repr`` (``json.dumps(default=repr)``)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    return value

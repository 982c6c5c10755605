"""Rendering pages: the jinja2 environment, its filters and what every page is given.

Templates are autoescaped: every value shown (task arguments, tracebacks, queue names) comes
from the broker and may hold anything a task was given.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from ..cli.display import duration, size
from .auth import USER_KEY, WebUser
from .csrf import FIELD, SCOPE_KEY, SIGNER_KEY
from .signing import Signer

#: The navigation bar: (path, label).
NAV = (
    ("/", "Overview"),
    ("/queues", "Queues"),
    ("/workers", "Workers"),
    ("/tasks", "Tasks"),
    ("/scheduled", "Scheduled"),
    ("/dead", "Dead letters"),
    ("/periodic", "Periodic"),
    ("/locks", "Locks"),
    ("/actions", "Action log"),
)


def _ago(t: float | None) -> str:
    if t is None:
        return "—"
    delta = time.time() - t
    return f"{duration(delta)} ago" if delta >= 0 else f"in {duration(-delta)}"


def _when(t: float | None) -> str:
    return "—" if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def urlpart(value: object) -> str:
    """One path segment of a link: a task id, queue, worker, entry or lock name, quoted whole
    (a ``/`` in a name included; the routes take the rest of the path for it)."""
    return quote(str(value), safe="@:")


def _secs(t: float | None) -> str:
    return "—" if t is None else duration(t)


ENV = Environment(
    loader=PackageLoader("conveyor.dashboard", "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.filters.update(ago=_ago, when=_when, secs=_secs, size=size, urlpart=urlpart)


def user(request: Request) -> WebUser:
    found: WebUser = request.scope.get(USER_KEY) or WebUser("anonymous")
    return found


def base(request: Request) -> str:
    """The mount prefix (``/ops`` when mounted there): every link starts with it."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def note(request: Request) -> str | None:
    """The one-line note of what an action did (``?done=...&sig=...``), shown only when this
    server signed it for this user a few minutes ago: a crafted link's ``done`` text is dropped,
    not shown as if the dashboard had said it."""
    text, sig = request.query_params.get("done"), request.query_params.get("sig")
    signer: Signer | None = request.scope.get(SIGNER_KEY)
    if not text or not sig or signer is None:
        return None
    return text if signer.valid_note(text, sig, user(request).name) else None


def note_query(request: Request, text: str) -> str:
    """``done=...&sig=...`` for a redirect after an action: the note, signed for this user."""
    signer: Signer = request.scope[SIGNER_KEY]
    return urlencode({"done": text, "sig": signer.note_mac(text, user(request).name)})


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Render ``template`` with what every page needs: the user, the CSRF field, the prefix."""
    html = ENV.get_template(template).render(
        request=request,
        user=user(request),
        base=base(request),
        nav=NAV,
        csrf_field=FIELD,
        csrf_token=request.scope.get(SCOPE_KEY, ""),
        path=request.url.path[len(base(request)) :] or "/",
        done=note(request),
        **context,
    )
    return HTMLResponse(html, status_code=status)

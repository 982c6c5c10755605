"""CSRF protection for every state-changing request to the dashboard and the HTTP API.

Double-submit cookie: the first response sets a random ``conveyor_csrf`` cookie (SameSite=Strict,
HttpOnly); every page renders the same token into its forms (``csrf_token`` field), and a
script sends it as the ``X-CSRF-Token`` header. A POST/PUT/PATCH/DELETE must carry the cookie
and a matching token in the header or the form, else 403. Another site can make a browser send
the cookie (not even that, with SameSite=Strict) but cannot read it, so it cannot forge the
matching field.

A request with ``Authorization: Bearer`` is exempt: a browser never attaches that header by
itself, so such a request cannot be forged by another site (API clients, curl, Prometheus).
"""

from __future__ import annotations

import hmac
import secrets
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import SAFE_METHODS, plain_response

COOKIE = "conveyor_csrf"
FIELD = "csrf_token"
HEADER = b"x-csrf-token"
SCOPE_KEY = "conveyor.csrf"  # the token the pages render into their forms
MAX_FORM = 1024 * 1024  # a form larger than this is refused rather than buffered


class CSRFMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        cookie = _cookie(headers.get(b"cookie", b"").decode("latin-1"))
        token = cookie or secrets.token_urlsafe(32)
        scope[SCOPE_KEY] = token
        if scope["method"] not in SAFE_METHODS and not _bearer(headers):
            body, receive = await _buffer(receive)
            if body is None:
                await plain_response(send, 413, "request body too large")
                return
            sent = headers.get(HEADER, b"").decode("latin-1") or _form_token(headers, body)
            if not cookie or not sent or not hmac.compare_digest(sent.encode(), cookie.encode()):
                await plain_response(send, 403, "CSRF token missing or wrong: reload the page and try again")
                return
        if cookie:
            await self.app(scope, receive, send)
            return
        path = scope.get("root_path", "") or "/"

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                value = f"{COOKIE}={token}; Path={path}; HttpOnly; SameSite=Strict"
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"set-cookie", value.encode())],
                }
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def _cookie(header: str) -> str | None:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except Exception:  # a malformed Cookie header from some other app on the host: ignore it
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None and morsel.value else None


def _bearer(headers: dict[bytes, bytes]) -> bool:
    return headers.get(b"authorization", b"").lower().startswith(b"bearer ")


def _form_token(headers: dict[bytes, bytes], body: bytes) -> str | None:
    if not headers.get(b"content-type", b"").startswith(b"application/x-www-form-urlencoded"):
        return None
    values = parse_qs(body.decode("latin-1")).get(FIELD)
    return values[0] if values else None


async def _buffer(receive: Receive) -> tuple[bytes | None, Receive]:
    """Read the whole body (to look for the form field) and a ``receive`` that replays it."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_FORM:
            return None, receive
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay

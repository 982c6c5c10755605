"""CSRF protection for every state-changing request to the dashboard and the HTTP API.

Signed double-submit cookie: the first response sets a ``conveyor_csrf`` cookie (SameSite=Strict,
HttpOnly) holding a token this server minted — a random nonce and its HMAC under the dashboard's
secret, for the user who asked (signing.py); every page renders the same token into its forms
(``csrf_token`` field), and a script sends it as the ``X-CSRF-Token`` header. A
POST/PUT/PATCH/DELETE must carry a cookie with a valid MAC for its user and the same token in the
header or the form, else 403. Another site can make a browser send the cookie (not even that,
with SameSite=Strict) but cannot read it, so it cannot forge the matching field.

Why signed: cookies are not isolated by port, and a sibling subdomain can set one for the
parent domain, so such a site could plant a ``conveyor_csrf`` of its choosing and post the same
value in a forged form. A planted token has no valid MAC (nor has one minted for another user,
such as the attacker's own read-only account): it is ignored, replaced, and a POST that relies on
it gets 403.

A request with ``Authorization: Bearer`` is exempt: a browser never attaches that header by
itself, so such a request cannot be forged by another site (API clients, curl, Prometheus).
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import SAFE_METHODS, USER_KEY, is_api, plain_response
from .signing import Signer

COOKIE = "conveyor_csrf"
FIELD = "csrf_token"
HEADER = b"x-csrf-token"
SCOPE_KEY = "conveyor.csrf"  # the token the pages render into their forms
SIGNER_KEY = "conveyor.signer"  # the Signer, for the pages' notes (render.py, actions.py)
MAX_FORM = 1024 * 1024  # a form larger than this is refused rather than buffered


class CSRFMiddleware:
    def __init__(self, app: ASGIApp, signer: Signer) -> None:
        self.app = app
        self.signer = signer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope[SIGNER_KEY] = self.signer
        headers = dict(scope["headers"])
        user = user_name(scope)
        # Only a token this server minted for this user counts: a planted one (another port or a
        # sibling subdomain can set this cookie), another user's, or one from before a restart
        # under a random secret is ignored, and a fresh one is set in its place.
        found = _cookies(headers.get(b"cookie", b"").decode("latin-1"))
        cookie = next((c for c in found if self.signer.valid_csrf(c, user)), None)
        token = cookie or self.signer.csrf_token(user)
        scope[SCOPE_KEY] = token
        if scope["method"] not in SAFE_METHODS and not _bearer(headers):
            body, receive = await _buffer(receive)
            if body is None:
                await plain_response(send, 413, "request body too large", scope=scope)
                return
            sent = headers.get(HEADER, b"").decode("latin-1") or _form_token(headers, body)
            if not cookie or not sent or not hmac.compare_digest(sent.encode(), cookie.encode()):
                # A script (curl) cannot "reload the page": it is told what it can send instead.
                advice = (
                    "send a bearer token (conveyor dashboard --token), or the conveyor_csrf "
                    "cookie's value in an X-CSRF-Token header"
                    if is_api(scope)
                    else "reload the page and try again"
                )
                await plain_response(send, 403, f"CSRF token missing or wrong: {advice}", scope=scope)
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


def user_name(scope: Scope) -> str:
    """Who the auth middleware (or the host application) says is asking."""
    return str(getattr(scope.get(USER_KEY), "name", "anonymous"))


def _cookies(header: str) -> list[str]:
    """Every ``conveyor_csrf`` value in a ``Cookie`` header: a browser sends two of the same name
    when a sibling domain planted one too (then only ours has a valid MAC)."""
    found = []
    for pair in header.split(";"):
        name, sep, value = pair.strip().partition("=")
        if sep and name == COOKIE and value:
            found.append(value.strip('"'))
    return found


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

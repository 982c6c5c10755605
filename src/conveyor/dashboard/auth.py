"""Who is asking: basic auth with hashed passwords, a bearer token, read-only users.

The middleware puts the authenticated user in ``scope["conveyor.user"]`` (a ``WebUser``) for
the pages and the HTTP API. A host application that mounts the dashboard behind its own auth
may set that key itself; the dashboard then trusts it and asks for nothing (see
docs/dashboard.md, "Mounting inside another application").

Passwords are never kept in clear: the auth file holds ``scrypt`` (or ``pbkdf2_sha256``)
hashes, and a ``--auth user:password`` given on the command line is hashed as it is read.
Checking a scrypt hash costs tens of milliseconds by design, and a page polls every few
seconds, so a successful check is remembered (by a SHA-256 of the credentials, not the
password) for the life of the process.

Two guards against guessing: a user name that does not exist costs the same scrypt check as a
wrong password (against a dummy hash), so the time of a 401 does not tell which names exist; and
a client address with ``MAX_FAILURES`` failed logins within ``FAILURE_WINDOW`` seconds gets 429
(with ``Retry-After``) for every request until the oldest of them is a window old — which also
bounds the CPU an attacker can make the scrypt checks burn.

>>> line = hash_line("ops", "s3cret")
>>> users = parse_auth_lines([line])
>>> users["ops"].verify("s3cret"), users["ops"].verify("wrong")
(True, False)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import os
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

USER_KEY = "conveyor.user"  # the scope key the pages and the HTTP API read
READ_ONLY = "read-only"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1  # ~16 MiB, ~50 ms: the usual interactive-login cost
PBKDF2_ITERATIONS = 600_000  # OWASP's 2023 figure for PBKDF2-HMAC-SHA256
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_FAILURES = 10  # failed logins from one client address within FAILURE_WINDOW: then 429
FAILURE_WINDOW = 60.0  # seconds


class AuthConfigError(ValueError):
    """A malformed ``--auth`` value or auth-file line: the message names it."""


@dataclass(frozen=True, slots=True)
class WebUser:
    """The user a request acts as. ``can_act`` False: a read-only user, who sees every page
    but gets 403 on any action (and sees no action buttons)."""

    name: str
    can_act: bool = True


@dataclass(frozen=True, slots=True)
class Account:
    """A basic-auth user: the stored password hash and the role."""

    name: str
    password_hash: str
    can_act: bool = True

    def verify(self, password: str) -> bool:
        return verify_password(password, self.password_hash)


# -- hashing -------------------------------------------------------------------------------------
def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def hash_password(password: str, salt: bytes | None = None) -> str:
    """A scrypt hash in the auth file's format: ``scrypt$N$r$p$salt$hash`` (base64).

    >>> hash_password("pw", b"0" * 16).startswith("scrypt$16384$8$1$")
    True
    """
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=64 * 1024 * 1024
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Check a password against a ``scrypt$...`` or ``pbkdf2_sha256$ITER$salt$hash`` hash."""
    parts = stored.split("$")
    try:
        if parts[0] == "scrypt" and len(parts) == 6:
            n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
            salt, want = base64.b64decode(parts[4]), base64.b64decode(parts[5])
            got = hashlib.scrypt(
                password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=len(want)
            )
        elif parts[0] == "pbkdf2_sha256" and len(parts) == 4:
            salt, want = base64.b64decode(parts[2]), base64.b64decode(parts[3])
            got = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, int(parts[1]), len(want))
        else:
            return False
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(got, want)


@cache
def dummy_hash() -> str:
    """A hash of a random password, made once: what an unknown user's password is checked
    against, so that the check costs what a known user's does."""
    return hash_password(base64.b64encode(os.urandom(18)).decode())


def check_hash(stored: str) -> None:
    """Refuse a hash the verifier cannot read (so a typo fails at start, not at every login)."""
    parts = stored.split("$")
    ok = (parts[0] == "scrypt" and len(parts) == 6) or (parts[0] == "pbkdf2_sha256" and len(parts) == 4)
    if ok:
        try:
            [int(p) for p in parts[1:-2]]
            base64.b64decode(parts[-2], validate=True)
            base64.b64decode(parts[-1], validate=True)
        except (ValueError, binascii.Error):
            ok = False
    if not ok:
        raise AuthConfigError(
            "a password hash must be scrypt$N$r$p$SALT$HASH or pbkdf2_sha256$ITERATIONS$SALT$HASH "
            "(make one with: conveyor dashboard --hash-password USER)"
        )


def hash_line(user: str, password: str, read_only: bool = False) -> str:
    """One auth-file line: ``user:HASH`` (``user:HASH:read-only`` for a read-only user)."""
    check_user_name(user)
    return f"{user}:{hash_password(password)}" + (f":{READ_ONLY}" if read_only else "")


# -- configuration -------------------------------------------------------------------------------
def check_user_name(user: str) -> None:
    if not user or ":" in user or user != user.strip():
        raise AuthConfigError(f"bad user name {user!r}: it must be non-empty, without ':' or spaces")


def parse_plain(value: str, can_act: bool = True) -> Account:
    """``--auth user:password`` (or ``--read-only-user``): hashed here, never kept in clear."""
    user, sep, password = value.partition(":")
    if not sep or not password:
        raise AuthConfigError(f"expected USER:PASSWORD, got {user + ':…' if sep else value!r}")
    check_user_name(user)
    return Account(user, hash_password(password), can_act)


def parse_auth_lines(lines: Iterable[str], origin: str = "auth file") -> dict[str, Account]:
    """Auth-file lines: ``user:HASH`` or ``user:HASH:read-only``; blank lines and ``#`` comments
    are skipped. A malformed line raises ``AuthConfigError`` naming it."""
    accounts: dict[str, Account] = {}
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        try:
            if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != READ_ONLY):
                raise AuthConfigError(f"expected user:HASH or user:HASH:{READ_ONLY}")
            check_user_name(parts[0])
            check_hash(parts[1])
        except AuthConfigError as exc:
            raise AuthConfigError(f"{origin}, line {number}: {exc}") from None
        accounts[parts[0]] = Account(parts[0], parts[1], can_act=len(parts) == 2)
    return accounts


def load_auth_file(path: str | Path) -> dict[str, Account]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise AuthConfigError(f"cannot read auth file {path}: {exc.strerror}") from None
    return parse_auth_lines(text.splitlines(), str(path))


@dataclass
class Security:
    """Who may use the dashboard. With no account and no token, nobody is asked for anything
    (a loopback bind, ``--insecure-no-auth``, or a host application's own auth in front);
    ``read_only`` then makes that anonymous user read-only."""

    accounts: dict[str, Account] = field(default_factory=dict)
    token: str | None = None
    read_only: bool = False
    _verified: set[bytes] = field(default_factory=set, repr=False)

    @property
    def enabled(self) -> bool:
        return bool(self.accounts) or self.token is not None

    def authenticate(self, authorization: str | None) -> WebUser | None:
        """The user an ``Authorization`` header names, or None (missing or wrong)."""
        if not self.enabled:
            return WebUser("anonymous", can_act=not self.read_only)
        if not authorization:
            return None
        scheme, _, value = authorization.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and self.token is not None:
            if hmac.compare_digest(value.strip().encode(), self.token.encode()):
                return WebUser("token", can_act=not self.read_only)
            return None
        if scheme == "basic":
            return self._basic(value.strip())
        return None

    def _basic(self, value: str) -> WebUser | None:
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (ValueError, binascii.Error):
            return None
        account = self.accounts.get(user)
        if account is None:
            # As slow as a wrong password for a real user: a fast 401 would say "no such user".
            verify_password(password, dummy_hash())
            return None
        key = hashlib.sha256(f"{user}\0{password}\0{account.password_hash}".encode()).digest()
        if key not in self._verified:
            if not account.verify(password):
                return None
            if len(self._verified) > 10_000:  # bounded: only successful logins are remembered
                self._verified.clear()
            self._verified.add(key)
        return WebUser(user, can_act=account.can_act and not self.read_only)


class FailedLogins:
    """Failed logins per client address over the last ``window`` seconds (thread-safe: the
    checks run in the thread pool). Memory is bounded: addresses whose failures all aged out
    are dropped when the table grows."""

    def __init__(self, limit: int = MAX_FAILURES, window: float = FAILURE_WINDOW) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, client: str, now: float | None = None) -> int:
        """Seconds until ``client`` may try again (0: now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            failures = self._failures.get(client)
            if failures is None:
                return 0
            while failures and failures[0] <= now - self.window:
                failures.popleft()
            if len(failures) < self.limit:
                return 0
            return max(1, math.ceil(failures[0] + self.window - now))

    def failed(self, client: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            if len(self._failures) > 10_000:
                for key in [k for k, v in self._failures.items() if not v or v[-1] <= now - self.window]:
                    del self._failures[key]
            self._failures.setdefault(client, deque(maxlen=self.limit)).append(now)


def route_path(scope: Scope) -> str:
    """The request's path inside the dashboard (without the mount prefix)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


class AuthMiddleware:
    """401 without valid credentials, 403 for a read-only user's action, 429 for a client
    address after too many failed logins; ``/health`` is open (load balancers probe it without
    credentials).

    A user already in the scope (set by a host application's own auth) is trusted as is.
    """

    def __init__(self, app: ASGIApp, security: Security, open_paths: tuple[str, ...] = ("/health",)):
        self.app = app
        self.security = security
        self.open_paths = open_paths
        self.failures = FailedLogins()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or route_path(scope) in self.open_paths:
            await self.app(scope, receive, send)
            return
        user = scope.get(USER_KEY)
        if user is None:
            headers = dict(scope["headers"])
            raw = headers.get(b"authorization")
            # Behind a reverse proxy this is the proxy's address unless uvicorn is told to
            # trust its X-Forwarded-For (conveyor dashboard trusts one on 127.0.0.1).
            client = str((scope.get("client") or ("unknown",))[0])
            wait = self.failures.retry_after(client) if self.security.enabled else 0
            if wait:
                await plain_response(
                    send,
                    429,
                    f"too many failed logins from {client}: try again in {wait} s",
                    [(b"retry-after", str(wait).encode())],
                    scope,
                )
                return
            # In the thread pool: a first check of a scrypt hash takes tens of milliseconds,
            # which must not stall every other request on the event loop.
            header = raw.decode("latin-1") if raw is not None else None
            user = await run_in_threadpool(self.security.authenticate, header)
            if user is None:
                if header:  # a browser's first request carries no credentials: no failure
                    self.failures.failed(client)
                await plain_response(
                    send,
                    401,
                    "authentication required",
                    [(b"www-authenticate", b'Basic realm="Conveyor"')],
                    scope,
                )
                return
            scope[USER_KEY] = user
        if scope["method"] not in SAFE_METHODS and not user.can_act:
            await plain_response(send, 403, f"user {user.name!r} is read-only: it cannot act", scope=scope)
            return
        await self.app(scope, receive, send)


def is_api(scope: Scope) -> bool:
    """A request to the JSON API (``/api/...`` under the dashboard's root path)."""
    path, root = str(scope.get("path", "")), str(scope.get("root_path", ""))
    relative = path[len(root) :] if root and path.startswith(root) else path
    return relative == "/api" or relative.startswith("/api/")


async def plain_response(
    send: Send,
    status: int,
    text: str,
    headers: list[tuple[bytes, bytes]] | None = None,
    scope: Scope | None = None,
) -> None:
    """A refusal in one line: plain text for pages, ``{"error": text}`` for the JSON API (whose
    every answer is JSON, http-api.md), told apart by ``scope``'s path."""
    api = scope is not None and is_api(scope)
    body = (json.dumps({"error": text}) if api else text).encode() + b"\n"
    kind = b"application/json" if api else b"text/plain; charset=utf-8"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", kind),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

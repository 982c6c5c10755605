"""What only this dashboard can have made: CSRF tokens and the notes shown after an action,
each carrying an HMAC under the dashboard's secret.

The secret is ``--secret`` / ``$CONVEYOR_DASHBOARD_SECRET`` when given (several replicas behind
a load balancer must share one, or a token minted by one is refused by the next), else 32
random bytes made when the process starts: a restart then invalidates the tokens in open pages
(the next page load mints a fresh one; a form sent meanwhile gets "reload the page").

Every MAC also covers a purpose ("csrf", "note") and the user it was made for, so a token
made for one user or purpose is worth nothing for another.

>>> signer = Signer(b"k" * 32)
>>> token = signer.csrf_token("ops")
>>> signer.valid_csrf(token, "ops"), signer.valid_csrf(token, "eve")
(True, False)
>>> signer.valid_note("purged 3 tasks", signer.note_mac("purged 3 tasks", "ops"), "ops")
True
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time

SECRET_ENV = "CONVEYOR_DASHBOARD_SECRET"
NOTE_TTL = 300.0  # seconds a note stays showable: long enough for a redirect, not for a link


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Signer:
    """HMAC-SHA256 under one secret (``secret`` None: the environment's, else a random one)."""

    def __init__(self, secret: str | bytes | None = None) -> None:
        if secret is None:
            secret = os.environ.get(SECRET_ENV) or None
        if isinstance(secret, str):
            secret = secret.encode()
        if secret is not None and len(secret) < 16:
            raise ValueError("a dashboard secret must be at least 16 characters (use a long random string)")
        self._key = secret if secret is not None else secrets.token_bytes(32)

    def _mac(self, *parts: str) -> str:
        return _b64(hmac.new(self._key, "\0".join(parts).encode(), hashlib.sha256).digest())

    def csrf_token(self, user: str) -> str:
        """A fresh token for ``user``: ``nonce.mac``."""
        nonce = secrets.token_urlsafe(24)
        return f"{nonce}.{self._mac('csrf', user, nonce)}"

    def valid_csrf(self, token: str, user: str) -> bool:
        nonce, _, mac = token.partition(".")
        return bool(nonce and mac) and hmac.compare_digest(mac, self._mac("csrf", user, nonce))

    def note_mac(self, note: str, user: str, now: float | None = None) -> str:
        """The ``sig`` query parameter that makes ``note`` showable to ``user``: ``time.mac``."""
        issued = str(int(now if now is not None else time.time()))
        return f"{issued}.{self._mac('note', user, issued, note)}"

    def valid_note(self, note: str, sig: str, user: str) -> bool:
        issued, _, mac = sig.partition(".")
        try:
            age = time.time() - int(issued)
        except ValueError:
            return False
        fresh = -60 < age < NOTE_TTL  # a minute of clock skew between replicas
        return fresh and hmac.compare_digest(mac, self._mac("note", user, issued, note))

"""The web dashboard: ``conveyor -A proj dashboard``, or ``asgi_app(app)`` mounted inside
another ASGI application. See docs/dashboard.md."""

from .auth import Account, WebUser, hash_line, hash_password, parse_plain
from .site import asgi_app

__all__ = ["Account", "WebUser", "asgi_app", "hash_line", "hash_password", "parse_plain"]

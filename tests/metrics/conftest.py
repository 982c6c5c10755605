"""The metrics tests use the HTTP API tests' app (tests.apps.api_app over a real SQLite or Redis
broker)."""

from ..httpapi.conftest import app

__all__ = ["app"]

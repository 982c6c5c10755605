"""The SQLite broker (``sqlite:///path.db``), the embedded default. See broker.py and docs/brokers.md."""

from __future__ import annotations

from .broker import SQLiteBroker
from .url import parse_sqlite_url

__all__ = ["SQLiteBroker", "parse_sqlite_url"]

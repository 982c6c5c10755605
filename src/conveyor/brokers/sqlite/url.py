"""SQLite broker URLs: ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``, with options."""

from __future__ import annotations

import os
from urllib.parse import parse_qs, urlsplit

from ...exceptions import ConfigurationError

SYNCHRONOUS_MODES = frozenset({"OFF", "NORMAL", "FULL", "EXTRA"})


def parse_sqlite_url(url: str) -> tuple[str, dict[str, str]]:
    """``sqlite:///rel.db`` -> ``rel.db``; ``sqlite:////abs.db`` -> ``/abs.db``."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite":
        raise ConfigurationError(f"not a sqlite URL: {url!r}")
    if parts.netloc:
        raise ConfigurationError(
            f"bad sqlite URL {url!r}: use sqlite:///relative/path.db or sqlite:////absolute/path.db"
        )
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not path:
        raise ConfigurationError(f"bad sqlite URL {url!r}: no database file path")
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    return path, options


def absolute_sqlite_url(url: str, base_dir: str) -> str:
    """The URL with a relative database path made absolute against ``base_dir``; an absolute
    path is returned unchanged (options kept).

    A relative path left to SQLite would start from each process's working directory, so a
    producer started elsewhere than the worker would silently open a second, empty broker.

    >>> absolute_sqlite_url("sqlite:///data/q.db?synchronous=full", "/srv/proj")
    'sqlite:////srv/proj/data/q.db?synchronous=full'
    >>> absolute_sqlite_url("sqlite:////var/q.db", "/srv/proj")
    'sqlite:////var/q.db'
    """
    path, _ = parse_sqlite_url(url)
    if os.path.isabs(path):
        return url
    query = urlsplit(url).query
    absolute = os.path.normpath(os.path.join(os.path.abspath(base_dir), path))
    return f"sqlite:///{absolute}" + (f"?{query}" if query else "")


def synchronous_mode(options: dict[str, str]) -> str:
    """The ``?synchronous=`` option, checked: NORMAL unless the URL says otherwise.

    >>> synchronous_mode({"synchronous": "full"})
    'FULL'
    """
    mode = options.get("synchronous", "NORMAL").upper()
    if mode not in SYNCHRONOUS_MODES:
        raise ConfigurationError(f"bad sqlite URL option synchronous={mode!r}")
    return mode

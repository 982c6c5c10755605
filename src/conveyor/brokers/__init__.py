"""Brokers: where tasks, leases, results, revokes and dead letters live.

The contract is in base.py (``JobLifecycle``, ``BrokerAdmin``, ``KeyValueStore``; ``Broker`` is all
three), the records it exchanges in records.py. ``broker_from_url`` picks the implementation from
the URL scheme: ``sqlite:///path.db`` (embedded default, ``sqlite/``), ``redis://host:port/db`` /
``rediss://`` / ``unix://`` (``redis/``), ``memory://`` (``memory/``).
"""

from __future__ import annotations

import threading
from urllib.parse import urlsplit, urlunsplit

from ..exceptions import ConfigurationError
from .base import Broker, BrokerAdmin, JobLifecycle, KeyValueStore, TaskHistory
from .records import (
    DeadLetter,
    Delivery,
    HistoryEntry,
    HistoryQuery,
    HistoryRow,
    JobSpec,
    KVEntry,
    MinuteCounts,
    Outcome,
    PendingJob,
    QueueStats,
    ReclaimReport,
    SettleKind,
    StatusRecord,
    WorkerRecord,
)

__all__ = [
    "Broker",
    "BrokerAdmin",
    "DeadLetter",
    "Delivery",
    "HistoryEntry",
    "HistoryQuery",
    "HistoryRow",
    "JobLifecycle",
    "JobSpec",
    "KVEntry",
    "KeyValueStore",
    "MinuteCounts",
    "Outcome",
    "PendingJob",
    "QueueStats",
    "ReclaimReport",
    "SettleKind",
    "StatusRecord",
    "TaskHistory",
    "WorkerRecord",
    "broker_from_url",
    "redacted_url",
    "resolve_broker_url",
]

_memory_brokers: dict[str, Broker] = {}
_memory_lock = threading.Lock()


def broker_from_url(url: str) -> Broker:
    """Create the broker for ``url``; raises ``ConfigurationError`` with the accepted forms.

    >>> broker_from_url("memory://").url
    'memory://'
    """
    scheme = urlsplit(url).scheme if "://" in url else ""
    if scheme == "sqlite":
        from .sqlite import SQLiteBroker

        return SQLiteBroker(url)
    if scheme in {"redis", "rediss", "unix"}:
        try:
            from .redis import RedisBroker  # type: ignore[import-not-found, attr-defined, unused-ignore]
        except ImportError as exc:  # pragma: no cover - arrives with the Redis broker
            raise ConfigurationError(f"the Redis broker is not available: {exc}") from exc
        broker: Broker = RedisBroker(url)
        return broker
    if scheme == "memory":
        from .memory import MemoryBroker

        with _memory_lock:
            if url not in _memory_brokers:
                _memory_brokers[url] = MemoryBroker(url)
            return _memory_brokers[url]
    raise ConfigurationError(
        f"unsupported broker URL {url!r}: use sqlite:///path.db, redis://host:6379/0, or memory://"
    )


def resolve_broker_url(url: str, base_dir: str) -> str:
    """The URL every process of an app opens: a relative SQLite path is made absolute against
    ``base_dir`` (the app's directory); other URLs are returned unchanged.

    >>> resolve_broker_url("sqlite:///conveyor.db", "/srv/proj")
    'sqlite:////srv/proj/conveyor.db'
    """
    if urlsplit(url).scheme == "sqlite":
        from .sqlite.url import absolute_sqlite_url

        return absolute_sqlite_url(url, base_dir)
    return url


def redacted_url(url: str) -> str:
    """The URL with its password replaced by ``***``, for banners and logs.

    >>> redacted_url("redis://:s3cret@cache:6379/0")
    'redis://:***@cache:6379/0'
    """
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.netloc.rpartition("@")[2]
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
    except ValueError:  # unparsable: show what follows the credentials, never the credentials
        return url.rpartition("@")[2]

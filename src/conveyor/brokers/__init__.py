"""Brokers: where tasks, leases, results, revokes and dead letters live.

The contract is in base.py (``JobLifecycle``, ``BrokerAdmin``, ``KeyValueStore``; ``Broker`` is all
three), the records it exchanges in records.py. ``broker_from_url`` picks the implementation from
the URL scheme: ``sqlite:///path.db`` (embedded default, ``sqlite/``), ``redis://host:port/db`` /
``rediss://`` / ``unix://`` (``redis/``), ``memory://`` (``memory/``).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..exceptions import ConfigurationError
from .base import (
    Broker,
    BrokerAdmin,
    JobLifecycle,
    KeyValueStore,
    LostContinuation,
    TaskHistory,
    WorkflowStore,
)
from .records import (
    Continuation,
    DeadLetter,
    Delivery,
    GroupJoin,
    GroupState,
    HeldJob,
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
    SearchReach,
    SettleKind,
    StatusRecord,
    StoredResult,
    WorkerRecord,
)

__all__ = [
    "Broker",
    "BrokerAdmin",
    "Continuation",
    "DeadLetter",
    "Delivery",
    "GroupJoin",
    "GroupState",
    "HeldJob",
    "HistoryEntry",
    "HistoryQuery",
    "HistoryRow",
    "JobLifecycle",
    "JobSpec",
    "KVEntry",
    "KeyValueStore",
    "LostContinuation",
    "MinuteCounts",
    "Outcome",
    "PendingJob",
    "QueueStats",
    "ReclaimReport",
    "SearchReach",
    "SettleKind",
    "StatusRecord",
    "StoredResult",
    "TaskHistory",
    "WorkerRecord",
    "WorkflowStore",
    "broker_from_url",
    "redacted_url",
    "resolve_broker_url",
]

REDIS_SCHEMES = frozenset(
    {
        "redis",
        "rediss",
        "unix",
        "sentinel",
        "redis+sentinel",
        "rediss+sentinel",
        "redis+cluster",
        "rediss+cluster",
    }
)
#: The ``broker_transport_options`` keys the Redis broker reads (see redis/url.py).
REDIS_TRANSPORT_OPTIONS = frozenset({"master_name", "sentinel_kwargs", "wait_replicas", "wait_timeout_ms"})
_memory_brokers: dict[str, Broker] = {}
_memory_lock = threading.Lock()


def broker_from_url(url: str, transport_options: Mapping[str, Any] | None = None) -> Broker:
    """Create the broker for ``url``; raises ``ConfigurationError`` with the accepted forms.

    ``transport_options`` is Celery's ``broker_transport_options``: the Redis broker reads
    ``master_name``, ``sentinel_kwargs``, ``wait_replicas`` and ``wait_timeout_ms`` (docs/redis.md);
    other brokers refuse those keys rather than ignore them.

    >>> broker_from_url("memory://").url
    'memory://'
    """
    scheme = urlsplit(url).scheme if "://" in url else ""
    if scheme in REDIS_SCHEMES:
        try:
            from .redis import RedisBroker  # type: ignore[import-not-found, attr-defined, unused-ignore]
        except ImportError as exc:  # pragma: no cover - arrives with the Redis broker
            raise ConfigurationError(f"the Redis broker is not available: {exc}") from exc
        broker: Broker = RedisBroker(url, transport_options)
        return broker
    redis_only = sorted(set(transport_options or ()) & REDIS_TRANSPORT_OPTIONS)
    if redis_only:
        raise ConfigurationError(
            f"broker_transport_options {', '.join(redis_only)} apply to the Redis broker only, not {url!r}"
        )
    if scheme == "sqlite":
        from .sqlite import SQLiteBroker

        return SQLiteBroker(url)
    if scheme == "memory":
        from .memory import MemoryBroker

        with _memory_lock:
            if url not in _memory_brokers:
                _memory_brokers[url] = MemoryBroker(url)
            return _memory_brokers[url]
    raise ConfigurationError(
        f"unsupported broker URL {redacted_url(url)!r}: use sqlite:///path.db, redis://host:6379/0, "
        "redis+sentinel://host:26379/mymaster/0, redis+cluster://host:7000/, or memory://"
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


_PASSWORD_OPTION = re.compile(r"((?:^|[?&])(?:sentinel_)?password=)[^&]*")


def redacted_url(url: str) -> str:
    """The URL with its password replaced by ``***``, for banners and logs.

    >>> redacted_url("redis://:s3cret@cache:6379/0")
    'redis://:***@cache:6379/0'
    >>> redacted_url("sentinel://:a@s1;sentinel://:b@s2?sentinel_password=c")
    'sentinel://:***@s1;sentinel://:***@s2?sentinel_password=***'
    """
    if ";" in url:  # Celery's sentinel://a;sentinel://b: each part may carry a password
        return ";".join(redacted_url(part) for part in url.split(";"))
    url = _PASSWORD_OPTION.sub(r"\1***", url)
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.netloc.rpartition("@")[2]
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
    except ValueError:  # unparsable: show what follows the credentials, never the credentials
        return url.rpartition("@")[2]

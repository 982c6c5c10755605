"""Connections for Sentinel and Cluster topologies (the URLs are parsed by ha_url.py).

Sentinel: the pool's connections ask the sentinels for the current primary each time they
connect (redis-py's ``SentinelConnectionPool``). A failover breaks the open connections; the
caller's next attempt (the worker's fetch loop, settler and keeper retry with backoff) connects
to whichever server the sentinels now name. A server that answers READONLY (an old primary that
came back as a replica) counts as a broken connection too, so nobody keeps writing to it.

Cluster: ``RedisCluster`` follows MOVED and ASK replies itself (resharding, a failover that moved
a slot) and refreshes its slot map after a connection error. Its own resend after a connection
error is off, as for a single server (see connection.py): a script whose reply was lost may have
run, and only the caller knows whether sending it again is safe.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

from ...exceptions import ConfigurationError
from .url import RedisURL


def sentinel_pool(url: RedisURL, options: dict[str, Any]) -> redis.ConnectionPool:
    """A pool whose connections go to the primary that the sentinels name at connect time."""
    # No retries with backoff per sentinel (redis-py's default): a sentinel that is down or
    # refuses the password is skipped at once for the next one, and a caller asking while no
    # sentinel answers gets an error within a connect timeout, not after a growing backoff.
    sentinel_options = {"retry": Retry(NoBackoff(), 0), **url.sentinel_options}
    # redis-py leaves these constructors untyped.
    sentinel = Sentinel(list(url.nodes), sentinel_kwargs=sentinel_options)  # type: ignore[no-untyped-call]
    try:
        return SentinelConnectionPool(url.master_name, sentinel, **options)  # type: ignore[no-untyped-call]
    except TypeError as exc:
        raise ConfigurationError(f"bad Redis URL option: {exc}") from None


def cluster_client(url: RedisURL) -> RedisCluster:
    """A cluster client that follows MOVED/ASK but reports connection errors to the caller."""
    options = dict(url.options)
    options.pop("retry", None)
    nodes = [ClusterNode(host, port) for host, port in url.nodes]  # type: ignore[no-untyped-call]
    try:
        return RedisCluster(startup_nodes=nodes, retry=Retry(NoBackoff(), 0), **options)
    except TypeError as exc:
        raise ConfigurationError(f"bad Redis URL option: {exc}") from None

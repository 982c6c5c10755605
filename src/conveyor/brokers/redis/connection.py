"""The broker's connection to Redis: one pool, the registered scripts, and error mapping.

Every redis-py failure becomes ``conveyor.exceptions.BrokerError`` naming the server (never
the password) and the cause, so callers never see raw redis exceptions.

Reconnection: the pool checks a connection before lending it (a socket the server closed,
e.g. by restarting, is replaced on the spot) and PINGs connections idle for longer than
``health_check_interval``. redis-py's own command retries are off: a command that fails
mid-way raises at once, and the caller (the worker's fetch loop, settler and keeper) retries
with backoff. Resending a script blindly could lease a batch twice; every script is safe to
send again *by the caller*, who knows what it asked for (see ``fetch`` in broker.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.retry import Retry

from ...exceptions import BrokerError, ConfigurationError
from .keys import Keys
from .scripts import Scripts
from .url import RedisURL

Arg = str | bytes | int | float


class Connection:
    """A pool and a client for one Redis URL; thread-safe (each call borrows a connection)."""

    def __init__(self, url: RedisURL) -> None:
        options: dict[str, Any] = dict(url.options)
        options["retry"] = Retry(NoBackoff(), 0)
        if not url.pool_url.startswith("unix:"):
            options["socket_keepalive"] = True
        try:
            self.pool = redis.ConnectionPool.from_url(url.pool_url, **options)
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(f"bad Redis URL option: {exc}") from None
        self.client = redis.Redis(connection_pool=self.pool)
        self.scripts = Scripts(self.client)
        self.where = url.where
        self.socket_timeout = url.socket_timeout

    def run(self, script: Script, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        """Run a registered script; redis failures become ``BrokerError``."""
        try:
            return script(keys, args)
        except redis.RedisError as exc:
            raise self.error(exc) from exc

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        """``with conn.errors(): conn.client.get(...)``: redis failures become ``BrokerError``."""
        try:
            yield
        except redis.RedisError as exc:
            raise self.error(exc) from exc

    def error(self, exc: redis.RedisError) -> BrokerError:
        if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
            return BrokerError(f"Redis at {self.where} is unreachable: {exc}")
        return BrokerError(f"Redis at {self.where} failed: {exc}")

    def close(self) -> None:
        self.pool.disconnect()


class RedisParts:
    """What the broker's mixins share: the connection and the key names."""

    _conn: Connection
    _keys: Keys

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
import os
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import redis
from hiredis import pack_command
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.exceptions import NoScriptError
from redis.retry import Retry

from ...exceptions import BrokerError, ConfigurationError
from .keys import Keys
from .scripts import Scripts
from .url import RedisURL

Arg = str | bytes | int | float
IDLE_CHECK_AFTER = 0.25  # seconds a thread's connection may sit unused before it is checked


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
        self._local = threading.local()
        self.socket_timeout = url.socket_timeout

    def run_idempotent(self, script: Script, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        """``run`` for a script that is safe to send twice (a read): a connection that turns out
        dead (the server restarted) is replaced and the call made once more, so a producer
        polling a task's status does not see an error for every connection a restart closed."""
        try:
            return self.run(script, keys, args)
        except BrokerError as exc:
            if not isinstance(exc.__cause__, (redis.ConnectionError, redis.TimeoutError)):
                raise
            return self.run(script, keys, args)

    def run(self, script: Script, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        """Run a registered script; redis failures become ``BrokerError``.

        This is the hot path of every producer and worker, so it uses the thread's own pooled
        connection and sends one EVALSHA packed by hiredis, skipping redis-py's generic command
        layer (about a quarter of a call's cost here). The pool still does everything that matters:
        connecting, TLS, AUTH/SELECT, health checks. A connection that failed mid-command is
        disconnected before it goes back to the pool, so it is never reused half-read.
        """
        try:
            conn: Any = self._own_connection()
        except redis.RedisError as exc:
            raise self.error(exc) from exc
        try:
            command = ("EVALSHA", script.sha, len(keys), *keys, *args)
            # hiredis' stub types the tuple as having exactly one element.
            conn.send_packed_command([pack_command(command)])  # type: ignore[arg-type]
            return conn.read_response()
        except NoScriptError:
            # The server lost its script cache (a restart, SCRIPT FLUSH): load and run again.
            pass
        except redis.RedisError as exc:
            if not isinstance(exc, redis.ResponseError):
                conn.disconnect()  # reconnects on next use
            raise self.error(exc) from exc
        except BaseException:
            conn.disconnect()  # interrupted mid-command: the reply may still be on the socket
            raise
        try:
            return script(keys, args)
        except redis.RedisError as exc:
            raise self.error(exc) from exc

    def _own_connection(self) -> Any:
        """This thread's own connection, taken from the pool once and kept.

        Borrowing and returning per call costs a readability poll() and pool bookkeeping each
        time; a producer or worker thread sends its scripts one after another anyway. After a
        fork the child gets a fresh one (the parent's socket must not be shared).
        """
        local = self._local
        conn = getattr(local, "conn", None)
        now = time.monotonic()
        if conn is None or local.pid != os.getpid():
            conn = self.pool.get_connection()
            local.conn, local.pid = conn, os.getpid()
        elif now - local.used > IDLE_CHECK_AFTER:
            # Idle for a while: the server may have closed it meanwhile (a restart, a failover,
            # a timeout). Find out before sending, when a new connection is still safe to use,
            # rather than fail a call whose script may or may not have run. Busy connections
            # skip this poll(); a failure on them is reported (their caller retries).
            try:
                if conn.can_read(timeout=0):
                    conn.disconnect()  # EOF or stray bytes: not a connection to send on
            except (redis.ConnectionError, OSError):
                conn.disconnect()  # the next send connects again
        local.used = now
        return conn

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
        self._local = threading.local()
        self.pool.disconnect()


class RedisParts:
    """What the broker's mixins share: the connection and the key names."""

    _conn: Connection
    _keys: Keys

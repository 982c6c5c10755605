"""The broker's connection to Redis: one pool, the registered scripts, and error mapping.

Every redis-py failure becomes ``conveyor.exceptions.BrokerError`` naming the server (never
the password) and the cause, so callers never see raw redis exceptions.

Reconnection: the pool checks a connection before lending it (a socket the server closed,
e.g. by restarting, is replaced on the spot) and PINGs connections idle for longer than
``health_check_interval``. redis-py's own command retries are off: a command that fails
mid-way raises at once, and the caller (the worker's fetch loop, settler and keeper) retries
with backoff. Resending a script blindly could lease a batch twice; every script is safe to
send again *by the caller*, who knows what it asked for (see ``fetch`` in broker.py).

Sentinel and Cluster (ha.py): a Sentinel pool is a drop-in for the single-server pool; a
cluster has no single pool, so ``ClusterConnection`` (cluster.py) runs scripts through
redis-py's cluster client, which routes each to the shard of its keys (one tag per app).

Durability (``wait_replicas``): ``run_confirmed`` sends ``WAIT`` on the connection that ran
the script, so it waits for that write; fewer replicas than asked within ``wait_timeout_ms``
is a ``BrokerError`` (the write is on the primary, but a failover now could lose it).

Eviction: the first script a ``Connection`` runs is followed by one ``CONFIG GET
maxmemory-policy``; an evicting policy is logged as a warning (eviction silently drops tasks).
A server that refuses CONFIG (managed Redis) is not checked.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import redis
from hiredis import pack_command
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.exceptions import NoScriptError, RedisClusterException
from redis.retry import Retry

from ...exceptions import BrokerError, ConfigurationError
from .keys import Keys
from .scripts import Scripts
from .url import RedisURL

Arg = str | bytes | int | float
IDLE_CHECK_AFTER = 0.25  # seconds a thread's connection may sit unused before it is checked
SAFE_POLICIES = frozenset({"noeviction", ""})
logger = logging.getLogger("conveyor.brokers.redis")


def connect(url: RedisURL) -> Connection:
    """The connection for ``url``'s topology (single server or Sentinel; Cluster)."""
    if url.topology == "cluster":
        from .cluster import ClusterConnection

        return ClusterConnection(url)
    return Connection(url)


def warn_if_evicting(where: str, policy: str) -> None:
    """An evicting ``maxmemory-policy`` silently drops tasks, leases and results when Redis is
    full: say so in the log (a worker's log shows it at start-up, a producer's where it logs)."""
    if policy not in SAFE_POLICIES:
        message = (
            f"Redis at {where} has maxmemory-policy {policy}: it may evict tasks, leases and "
            "results when full; set maxmemory-policy noeviction (docs/redis.md)"
        )
        logger.warning(message)


class Connection:
    """A pool and a client for one Redis URL; thread-safe (each call borrows a connection)."""

    client: redis.Redis

    def __init__(self, url: RedisURL) -> None:
        self.where = url.where
        self._local = threading.local()
        self.socket_timeout = url.socket_timeout
        self.wait_replicas = url.wait_replicas
        self.wait_timeout_ms = url.wait_timeout_ms
        self._policy_checked = False
        self._connect(url)

    def _connect(self, url: RedisURL) -> None:
        options: dict[str, Any] = dict(url.options)
        options["retry"] = Retry(NoBackoff(), 0)
        if not url.pool_url.startswith("unix:"):
            options["socket_keepalive"] = True
        if url.topology == "sentinel":
            from .ha import sentinel_pool

            self.pool = sentinel_pool(url, options)
        else:
            try:
                self.pool = redis.ConnectionPool.from_url(url.pool_url, **options)
            except (ValueError, TypeError) as exc:
                raise ConfigurationError(f"bad Redis URL option: {exc}") from None
        self.client = redis.Redis(connection_pool=self.pool)
        self.scripts = Scripts(self.client)

    def run_confirmed(self, script: Script, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        """``run`` for a write the caller confirms to someone (enqueue, settle): with
        ``wait_replicas`` it returns only once that many replicas have the write."""
        reply = self.run(script, keys, args)
        if self.wait_replicas:
            self._wait_for_replicas()
        return reply

    def _wait_for_replicas(self) -> None:
        # WAIT counts the replicas that have this client's writes: it must go on the connection
        # that ran the script. One that was closed since would confirm nothing.
        conn: Any = getattr(self._local, "conn", None)
        if conn is None or conn._sock is None:
            raise BrokerError(f"Redis at {self.where}: the connection closed before WAIT (wait_replicas)")
        try:
            conn.send_command("WAIT", self.wait_replicas, self.wait_timeout_ms)
            acked = int(conn.read_response())
        except redis.RedisError as exc:
            if not isinstance(exc, redis.ResponseError):
                conn.disconnect()
            raise self.error(exc) from exc
        self._check_acked(acked)

    def _check_acked(self, acked: int) -> None:
        if acked < self.wait_replicas:
            raise BrokerError(
                f"Redis at {self.where}: only {acked} of {self.wait_replicas} replica(s) confirmed "
                f"the write within {self.wait_timeout_ms} ms (wait_replicas); it is on the primary "
                "but a failover now could lose it"
            )

    def check_eviction_policy(self) -> None:
        """Warn once if the server may evict keys (a lost task, a lost lease)."""
        try:
            policy = str(self.client.config_get("maxmemory-policy").get("maxmemory-policy", ""))
        except (redis.ConnectionError, redis.TimeoutError):
            return  # gone again since the call that reached it: checked next time
        except redis.RedisError:
            policy = ""  # CONFIG renamed or refused (managed Redis): nothing to check with
        self._policy_checked = True
        warn_if_evicting(self.where, policy)

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
        reply = self._run(script, keys, args)
        if not self._policy_checked:  # once, after a call that reached the server
            self.check_eviction_policy()
        return reply

    def _run(self, script: Script, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        try:
            conn: Any = self._own_connection()
        except redis.RedisError as exc:
            raise self.error(exc) from exc
        try:
            return self._send(conn, script, keys, args)
        except NoScriptError:
            # The server lost its script cache (a restart, SCRIPT FLUSH, a failover to a replica
            # that never loaded it): load it and run again on the same connection, so that a
            # WAIT that follows waits for this write.
            pass
        try:
            conn.send_command("SCRIPT", "LOAD", script.script)
            conn.read_response()
            return self._send(conn, script, keys, args)
        except NoScriptError as exc:
            raise self.error(exc) from exc

    def _send(self, conn: Any, script: Script, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        try:
            command = ("EVALSHA", script.sha, len(keys), *keys, *args)
            # hiredis' stub types the tuple as having exactly one element.
            conn.send_packed_command([pack_command(command)])  # type: ignore[arg-type]
            return conn.read_response()
        except NoScriptError:
            raise
        except redis.RedisError as exc:
            if not isinstance(exc, redis.ResponseError):
                conn.disconnect()  # reconnects on next use
            raise self.error(exc) from exc
        except BaseException:
            conn.disconnect()  # interrupted mid-command: the reply may still be on the socket
            raise

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
        if conn._sock is None:
            # Connect here, not implicitly in send: redis-py's implicit connect reuses the last
            # address, while connect() asks the sentinels for the primary (after a failover).
            conn.connect()
        return conn

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        """``with conn.errors(): conn.client.get(...)``: redis failures become ``BrokerError``."""
        try:
            yield
        except redis.RedisError as exc:
            raise self.error(exc) from exc

    def error(self, exc: Exception) -> BrokerError:
        # RedisClusterException: the cluster client found no reachable node for a slot.
        if isinstance(exc, (redis.ConnectionError, redis.TimeoutError, RedisClusterException)):
            return BrokerError(f"Redis at {self.where} is unreachable: {exc}")
        return BrokerError(f"Redis at {self.where} failed: {exc}")

    def close(self) -> None:
        self._local = threading.local()
        self.pool.disconnect()


class RedisParts:
    """What the broker's mixins share: the connection and the key names."""

    _conn: Connection
    _keys: Keys

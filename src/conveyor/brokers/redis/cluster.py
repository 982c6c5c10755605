"""The broker's connection to a Redis Cluster: scripts through redis-py's cluster client.

A cluster has no single pool, so the single-server fast path (a thread's own connection, one
packed EVALSHA) does not apply: each script goes through ``RedisCluster``, which routes it to
the shard that owns its keys (one hash tag per app: keys.py) and follows MOVED/ASK. Built by
ha.py with its own resend after a connection error turned off (see connection.py for why).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import redis
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.exceptions import AskError, MovedError, NoScriptError, RedisClusterException, TryAgainError

from ...exceptions import BrokerError
from .connection import Arg, Connection, warn_if_evicting
from .ha import cluster_client
from .scripts import Scripts
from .url import RedisURL

REDIRECTS = 5  # MOVED/ASK/TRYAGAIN replies followed per confirmed write before giving up


class ClusterConnection(Connection):
    """Scripts through redis-py's cluster client, which routes each to the shard of its keys
    and follows MOVED/ASK. Created lazily: the client reads the slot map when it is built."""

    def _connect(self, url: RedisURL) -> None:
        self._url = url
        self._client: Any = None
        self._client_lock = threading.Lock()
        self.scripts = Scripts(_ScriptHost(self))  # type: ignore[arg-type]

    @property
    def client(self) -> Any:  # type: ignore[override]
        client = self._client
        if client is None:
            with self._client_lock:
                if self._client is None:
                    with self.errors():
                        self._client = cluster_client(self._url)
                client = self._client
        return client

    def run(self, script: Script, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        try:
            reply = script(keys, args)
        except (redis.RedisError, RedisClusterException) as exc:
            raise self.error(exc) from exc
        if not self._policy_checked:  # once, after a call that reached the cluster
            self.check_eviction_policy()
        return reply

    def run_confirmed(self, script: Script, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        """``run`` for a write confirmed to someone; with ``wait_replicas``, per shard: the
        script and ``WAIT`` go on one connection to the primary of the keys' slot (WAIT counts
        the replicas that have *this connection's* writes), following MOVED and ASK by hand,
        since the cluster client would pick the connection for each command on its own."""
        if not self.wait_replicas:
            return self.run(script, keys, args)
        node = self.client.get_node_from_key(keys[0])
        asking = False
        for _ in range(REDIRECTS):
            try:
                reply = self._run_on(node, asking, script, keys, args)
            except BrokerError as exc:
                cause = exc.__cause__
                if isinstance(cause, AskError):  # the slot is migrating: the keys are there now
                    node, asking = self._node(cause.host, cause.port), True
                    continue
                if isinstance(cause, MovedError):  # the slot moved: read the new slot map
                    with self.errors():
                        self.client.nodes_manager.initialize()
                    node, asking = self.client.get_node_from_key(keys[0]), False
                    continue
                if isinstance(cause, TryAgainError):  # some keys moved, some not yet: wait
                    time.sleep(0.05)
                    node, asking = self.client.get_node_from_key(keys[0]), False
                    continue
                if isinstance(cause, (redis.ConnectionError, redis.TimeoutError)):
                    self._refresh_slots()  # a failover, maybe: the caller's retry goes to the new primary
                raise
            if not self._policy_checked:
                self.check_eviction_policy()
            return reply
        raise BrokerError(f"Redis at {self.where}: still redirected after {REDIRECTS} tries (resharding?)")

    def _refresh_slots(self) -> None:
        """Read the slot map again after a connection error, as the cluster client does for
        the calls it routes itself; a cluster still electing a new primary answers later."""
        with contextlib.suppress(redis.RedisError, RedisClusterException):
            self.client.nodes_manager.initialize()

    def _node(self, host: str, port: int) -> Any:
        node = self.client.nodes_manager.get_node(host, port)
        if node is None:  # a node the slot map does not know yet
            with self.errors():
                self.client.nodes_manager.initialize()
            node = self.client.nodes_manager.get_node(host, port)
        if node is None:
            raise BrokerError(f"Redis at {self.where}: redirected to unknown node {host}:{port}")
        return node

    def _run_on(
        self, node: Any, asking: bool, script: Script, keys: Sequence[str], args: Sequence[Arg]
    ) -> Any:
        pool = node.redis_connection.connection_pool
        try:
            conn: Any = pool.get_connection()
        except redis.RedisError as exc:
            raise self.error(exc) from exc
        try:
            if asking:
                self._command(conn, "ASKING")
            try:
                reply = self._send(conn, script, keys, args)
            except NoScriptError:  # a primary that never ran it (new, or promoted): load it here
                self._command(conn, "SCRIPT", "LOAD", script.script)
                if asking:
                    self._command(conn, "ASKING")
                reply = self._send(conn, script, keys, args)
            self._check_acked(int(self._command(conn, "WAIT", self.wait_replicas, self.wait_timeout_ms)))
            return reply
        finally:
            pool.release(conn)

    def _command(self, conn: Any, *command: Any) -> Any:
        try:
            conn.send_command(*command)
            return conn.read_response()
        except redis.RedisError as exc:
            if not isinstance(exc, redis.ResponseError):
                conn.disconnect()
            raise self.error(exc) from exc

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        try:
            yield
        except (redis.RedisError, RedisClusterException) as exc:
            raise self.error(exc) from exc

    def check_eviction_policy(self) -> None:
        try:
            replies = self.client.config_get("maxmemory-policy", target_nodes=RedisCluster.PRIMARIES)
        except (redis.ConnectionError, redis.TimeoutError, RedisClusterException):
            return  # gone again since the call that reached it: checked next time
        except redis.RedisError:
            replies = {}  # CONFIG refused (managed Redis): nothing to check with
        self._policy_checked = True
        # One reply per primary ({node: {...}}), or a single {...} when they all agree.
        first = next(iter(replies.values()), None) if isinstance(replies, dict) else None
        per_node = replies.values() if isinstance(first, dict) else [replies]
        for policy in sorted({str(reply.get("maxmemory-policy", "")) for reply in per_node}):
            warn_if_evicting(self.where, policy)

    def close(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None


class _ScriptHost:
    """Stands in for the cluster client in the ``Script`` objects, which are made before the
    client is (it reads the slot map when built): the encoder is known without it, everything
    else (``evalsha``, ``script_load``) is the real client's."""

    def __init__(self, connection: ClusterConnection) -> None:
        self._connection = connection

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection.client, name)

    def get_encoder(self) -> Any:
        from redis._parsers.encoders import Encoder

        return Encoder("utf-8", "strict", False)  # type: ignore[no-untyped-call]

    def register_script(self, script: str) -> Script:
        return Script(self, script)  # type: ignore[arg-type]

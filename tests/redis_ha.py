"""Throwaway Redis topologies for the test suite: Sentinel (a primary, a replica, three
sentinels) and Cluster (three primaries, optionally a replica each). Real redis-server
processes on free ports (never 6379), in temp dirs, stopped afterwards.

Timings are short so that a failover happens within seconds: a sentinel counts a primary down
after 1 s without a reply; a cluster node after 1 s (cluster-node-timeout).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis

from .redis_server import RedisServer, free_port

MASTER_NAME = "mymaster"
CUT_PASSWORD = "replication-cut"  # see SentinelTopology.cut_replication
DOWN_AFTER_MS = 1000


def cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too and below 65536."""
    import socket

    for _ in range(1000):
        port = free_port()
        if port > 55000:
            continue
        with socket.socket() as a, socket.socket() as b:
            try:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (redis.RedisError, OSError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not happen within {timeout}s")


class SentinelProcess:
    """``redis-server sentinel.conf --sentinel`` watching ``MASTER_NAME``."""

    def __init__(
        self, primary_port: int, password: str | None = None, sentinel_password: str | None = None
    ) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="conveyor-sentinel-"))
        conf = self.dir / "sentinel.conf"  # a sentinel rewrites its config: it must be a file
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\nlogfile {self.dir / 'sentinel.log'}\n"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {primary_port} 2\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {MASTER_NAME} 10000\n"
            f"sentinel parallel-syncs {MASTER_NAME} 1\n"
            + (f"sentinel auth-pass {MASTER_NAME} {password}\n" if password else "")
            + (
                f"requirepass {sentinel_password}\nsentinel sentinel-pass {sentinel_password}\n"
                if sentinel_password
                else ""
            )
        )
        binary = shutil.which("redis-server") or "redis-server"
        self.proc = subprocess.Popen(
            [binary, str(conf), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        client = redis.Redis(port=self.port, socket_timeout=1, password=sentinel_password)
        wait_until(client.ping, 10, f"sentinel on port {self.port} answering")
        client.close()

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


class SentinelTopology:
    """A primary, ``replicas`` replicas and three sentinels, with a Redis ``password`` and a
    ``sentinel_password`` if given. ``url`` is the single-URL form;
    ``celery_url`` Celery's ``sentinel://a;sentinel://b`` form (master name as a transport option)."""

    def __init__(
        self, replicas: int = 1, password: str | None = None, sentinel_password: str | None = None
    ) -> None:
        self.password, self.sentinel_password = password, sentinel_password
        self.cut = False
        auth = ["--requirepass", password, "--masterauth", password] if password else []
        self.primary = RedisServer(extra=auth).start()
        self.replicas = [
            RedisServer(extra=[*auth, "--replicaof", "127.0.0.1", str(self.primary.port)]).start()
            for _ in range(replicas)
        ]
        self.sentinels = [SentinelProcess(self.primary.port, password, sentinel_password) for _ in range(3)]
        self.wait_until_healthy()

    @property
    def servers(self) -> list[RedisServer]:
        return [self.primary, *self.replicas]

    def url(self, query: str = "") -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        auth = f":{self.password}@" if self.password else ""
        options = [f"sentinel_password={self.sentinel_password}"] if self.sentinel_password else []
        options += [query] if query else []
        return f"redis+sentinel://{auth}{hosts}/{MASTER_NAME}/0" + (
            f"?{'&'.join(options)}" if options else ""
        )

    def client(self, port: int) -> redis.Redis:
        """A client of one of the Redis servers (not a sentinel)."""
        return redis.Redis(port=port, socket_timeout=1, decode_responses=True, password=self.password)

    def sentinel_client(self, port: int) -> redis.Redis:
        return redis.Redis(
            port=port, socket_timeout=1, decode_responses=True, password=self.sentinel_password
        )

    @property
    def celery_url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return ";".join(f"sentinel://{auth}127.0.0.1:{s.port}" for s in self.sentinels)

    def primary_port(self) -> int:
        """The primary's port as the sentinels report it now."""
        client = self.sentinel_client(self.sentinels[0].port)
        try:
            _host, port = client.sentinel_get_master_addr_by_name(MASTER_NAME)
            return int(port)
        finally:
            client.close()

    def server(self, port: int) -> RedisServer:
        return next(s for s in self.servers if s.port == port)

    def wait_until_healthy(self, timeout: float = 30) -> None:
        """Every sentinel knows the primary, the replicas and the other two sentinels, and the
        replicas are in sync (a failover before that would promote an empty replica)."""

        def healthy() -> bool:
            for sentinel in self.sentinels:
                client = self.sentinel_client(sentinel.port)
                try:
                    info = client.sentinel_master(MASTER_NAME)
                    ok = info["num-other-sentinels"] == 2 and info["num-slaves"] >= len(self.replicas)
                    ok = ok and "s_down" not in info["flags"] and "o_down" not in info["flags"]
                finally:
                    client.close()
                if not ok:
                    return False
            primary = self.client(self.primary_port())
            try:
                replication = primary.info("replication")
                online = [
                    replication.get(f"slave{i}", {}).get("state") == "online"
                    for i in range(len(self.replicas))
                ]
                return replication["role"] == "master" and all(online)
            finally:
                primary.close()

        wait_until(healthy, timeout, "a healthy sentinel topology")

    def cut_replication(self) -> int:
        """Cut every replica off the primary and keep them off; returns the primary's
        replication offset at the cut: whatever it writes past it, no replica has.

        How: the primary gets a password the replicas do not know, then drops their links; they
        cannot log in again. Clients already connected stay logged in (Redis keeps them), and
        the sentinels, connected too, still see a healthy primary. (Cutting the links with a
        proxy does not work: the sentinels point replicas back at the primary's own address.)
        """
        client = self.client(self.primary_port())
        try:
            client.config_set("requirepass", CUT_PASSWORD)
            self.cut = True
            client.client_kill_filter(_type="replica")
            return int(client.info("replication")["master_repl_offset"])
        finally:
            client.close()

    def primary_offset(self) -> int:
        """The primary's replication offset (after ``cut_replication``, too)."""
        client = self.client(self.primary_port())
        if self.cut:
            client = redis.Redis(port=self.primary_port(), socket_timeout=1, password=CUT_PASSWORD)
        try:
            return int(client.info("replication")["master_repl_offset"])
        finally:
            client.close()

    def kill_primary(self) -> RedisServer:
        """SIGKILL the current primary; returns it (``start()`` brings it back as a replica)."""
        victim = self.server(self.primary_port())
        victim.stop(kill=True)
        return victim

    def wait_for_failover(self, old_port: int, timeout: float = 30) -> int:
        wait_until(lambda: self.primary_port() != old_port, timeout, "a sentinel failover")
        new_port = self.primary_port()
        client = self.client(new_port)
        wait_until(lambda: client.info("replication")["role"] == "master", timeout, "the promotion")
        client.close()
        return new_port

    def cleanup(self) -> None:
        for sentinel in self.sentinels:
            sentinel.cleanup()
        for server in self.servers:
            server.cleanup()


class ClusterTopology:
    """Three primaries (and ``replicas`` replicas each) made a cluster by ``redis-cli --cluster
    create``; ``url`` names two of the nodes (the client discovers the rest)."""

    def __init__(self, replicas: int = 0) -> None:
        extra = ["--cluster-enabled", "yes", "--cluster-node-timeout", str(DOWN_AFTER_MS)]
        extra += ["--repl-ping-replica-period", "1"]
        self.nodes = []
        for _ in range(3 * (1 + replicas)):
            node = RedisServer(port=cluster_port(), extra=extra)
            node.extra += ["--cluster-config-file", str(node.dir / "nodes.conf")]
            self.nodes.append(node.start())
        binary = shutil.which("redis-cli") or "redis-cli"
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            [binary, "--cluster", "create", *addresses, "--cluster-replicas", str(replicas), "--cluster-yes"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )
        self.replicas = replicas
        wait_until(self._ok, 30, "cluster_state:ok on every node")
        wait_until(self._replicas_in_sync, 30, "every replica in sync")

    def _replicas_in_sync(self) -> bool:
        """A replica that never synced refuses to take over (cluster-replica-validity-factor)."""
        for node in self.nodes:
            client = redis.Redis(port=node.port, socket_timeout=1, decode_responses=True)
            try:
                info = client.info("replication")
            finally:
                client.close()
            if info["role"] == "master" and info["connected_slaves"] < self.replicas:
                return False
            if info["role"] == "slave" and info["master_link_status"] != "up":
                return False
        return True

    def _ok(self) -> bool:
        for node in self.nodes:
            if node.proc is None:
                continue
            client = redis.Redis(port=node.port, socket_timeout=1, decode_responses=True)
            try:
                if client.cluster("info")["cluster_state"] != "ok":
                    return False
            finally:
                client.close()
        return True

    def url(self, query: str = "") -> str:
        hosts = ",".join(f"127.0.0.1:{node.port}" for node in self.nodes[:2])
        return f"redis+cluster://{hosts}/" + (f"?{query}" if query else "")

    def primary_for(self, key: str) -> RedisServer:
        live = next(node for node in self.nodes if node.proc is not None)
        client = redis.RedisCluster(host="127.0.0.1", port=live.port)
        try:
            node = client.get_node_from_key(key)
            return next(n for n in self.nodes if n.port == node.port)
        finally:
            client.close()

    def move_slot_of(self, key: str) -> int:
        """Reshard: move ``key``'s slot, keys and all, to another primary (what ``redis-cli
        --cluster reshard`` does, one slot); returns the new owner's port."""
        source = self.primary_for(key)
        src = redis.Redis(port=source.port, decode_responses=True)
        slot = int(src.cluster("keyslot", key))
        primaries = [n for n in self.nodes if n.proc is not None and n is not source and self._is_primary(n)]
        target = primaries[0]
        dst = redis.Redis(port=target.port, decode_responses=True)
        try:
            src_id, dst_id = src.cluster("myid"), dst.cluster("myid")
            dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
            src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
            while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
                src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
            for node in self.nodes:
                if node.proc is not None and self._is_primary(node):  # replicas learn it from them
                    client = redis.Redis(port=node.port)
                    client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
                    client.close()
        finally:
            src.close()
            dst.close()
        return target.port

    def _is_primary(self, node: RedisServer) -> bool:
        client = redis.Redis(port=node.port, decode_responses=True)
        try:
            return client.info("replication")["role"] == "master"
        finally:
            client.close()

    def kill_primary_of(self, key: str) -> RedisServer:
        """SIGKILL the primary serving ``key``'s slot; its replica takes over."""
        victim = self.primary_for(key)
        victim.stop(kill=True)
        return victim

    def wait_for_failover(self, key: str, old_port: int, timeout: float = 30) -> int:
        def moved() -> bool:
            if not self._ok():  # every live node agrees the cluster is whole again
                return False
            node = next(n for n in self.nodes if n.proc is not None)
            client = redis.Redis(port=node.port, socket_timeout=1, decode_responses=True)
            try:
                slot = client.cluster("keyslot", key)
                owner = next(r for r in client.cluster("slots") if r[0] <= slot <= r[1])
                return int(owner[2][1]) != old_port
            finally:
                client.close()

        wait_until(moved, timeout, f"a cluster failover of {key!r}")
        return self.primary_for(key).port

    def cleanup(self) -> None:
        for node in self.nodes:
            node.cleanup()

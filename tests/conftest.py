"""Shared fixtures: a throwaway redis-server, broker URLs for every broker, apps, in-process workers."""

from __future__ import annotations

import importlib.util
import signal
import threading
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from conveyor import Conveyor
from conveyor.worker import Worker

from . import procs
from .redis_ha import ClusterTopology, SentinelTopology
from .redis_server import RedisServer

BROKERS = ["memory", "sqlite", "redis"]

# The property tests draw the same cases on every run, so `make test` (and CI) passes or fails
# on the code, not on the draw. `PYTEST_ARGS=--hypothesis-profile=explore make test` draws new
# cases; a failure it finds becomes a pinned example or its own test.
# No per-example deadline either: on a loaded machine a slow example is the machine, not the code.
settings.register_profile("repeatable", derandomize=True, deadline=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile("repeatable")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def sentinel_topology() -> Iterator[SentinelTopology]:
    """A primary, a replica and three sentinels, shared by the session (not for failover tests,
    which start their own). Password-protected, Redis and sentinels each with their own."""
    topology = SentinelTopology(password="redis-pw", sentinel_password="sentinel-pw")
    try:
        yield topology
    finally:
        topology.cleanup()


@pytest.fixture(scope="session")
def cluster_topology() -> Iterator[ClusterTopology]:
    """A three-primary Redis Cluster, shared by the session."""
    topology = ClusterTopology()
    try:
        yield topology
    finally:
        topology.cleanup()


def _redis_available() -> bool:
    return importlib.util.find_spec("conveyor.brokers.redis") is not None


def make_broker_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "memory":
        return f"memory://test-{uuid.uuid4().hex}"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'broker.db'}"
    if not _redis_available():
        pytest.skip("Redis broker not built yet")
    server: RedisServer = request.getfixturevalue("redis_server")
    import redis

    client = redis.Redis.from_url(server.url)
    client.flushall()
    client.close()
    return server.url


@pytest.fixture(params=BROKERS)
def broker_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One URL per broker kind: every test using it runs against every broker."""
    return make_broker_url(request.param, tmp_path, request)


@pytest.fixture(params=["sqlite", "redis"])
def process_broker_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Brokers that several processes can share (for tests with real worker processes)."""
    return make_broker_url(request.param, tmp_path, request)


@pytest.fixture
def app(broker_url: str) -> Iterator[Conveyor]:
    application = Conveyor("test", broker=broker_url)
    try:
        yield application
    finally:
        application.close()


class ThreadWorker:
    """A real ``Worker`` running in a background thread of the test process."""

    def __init__(self, app: Conveyor, **options: object) -> None:
        options.setdefault("install_signal_handlers", False)
        options.setdefault("shutdown_timeout", 5.0)
        self.worker = Worker(app, **options)  # type: ignore[arg-type]
        self.thread = threading.Thread(target=self.worker.run, daemon=True)

    def __enter__(self) -> Worker:
        self.thread.start()
        return self.worker

    def __exit__(self, *exc: object) -> None:
        self.worker.stop()
        self.thread.join(timeout=15)
        assert not self.thread.is_alive(), "worker did not stop"


@pytest.fixture
def run_worker() -> type[ThreadWorker]:
    """``with run_worker(app, queues=[...]) as worker: ...``"""
    return ThreadWorker


@pytest.fixture(autouse=True)
def ctrl_c_is_left_as_found(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that leaves SIGINT ignored or blocked in this process hands that on to every
    subprocess started after it (both survive exec), and a ``conveyor monitor`` started then
    never sees Ctrl-C: the disposition and the mask are put back, and the test is named in the
    warnings summary."""
    handler = signal.getsignal(signal.SIGINT)
    yield
    changed = []
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN and handler is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, handler if handler is not None else signal.default_int_handler)
        changed.append("ignored")
    if signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, set()):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        changed.append("blocked")
    if changed:
        warnings.warn(f"{request.node.nodeid} left SIGINT {' and '.join(changed)}", stacklevel=1)


@pytest.fixture(autouse=True)
def no_process_outlives_its_test() -> Iterator[None]:
    """A worker (or other ``conveyor`` process) a test started and did not stop — because the
    test failed before its ``stop()`` — is killed when the test ends: left running, it would take
    the next tests' tasks from the broker this xdist worker shares, and one failure would become
    ten. Processes of module-scoped fixtures start before this snapshot and are left alone."""
    first = len(procs.STARTED)
    yield
    for process in procs.STARTED[first:]:
        if process.proc.poll() is None:
            # Said in the warnings summary: a test that leaves a process behind even when it
            # passes should stop it itself.
            warnings.warn(f"killed {process.name} (pid {process.pid}), left running", stacklevel=1)
            process.kill()
    del procs.STARTED[first:]

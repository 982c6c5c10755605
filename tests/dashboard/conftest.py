"""Fixtures: per module, one SQLite broker, one real worker process and one real dashboard
server (started once: each test uses its own queue names and task tokens)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import Conveyor

from ..procs import WorkerProcess
from .server import APP, DashboardServer

QUEUES = "default,dash-a,dash-b"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dashboard")


@pytest.fixture(scope="module")
def dash_broker(workdir: Path) -> str:
    return f"sqlite:///{workdir / 'broker.db'}"


@pytest.fixture(scope="module")
def worker(dash_broker: str, workdir: Path) -> Iterator[WorkerProcess]:
    proc = WorkerProcess(dash_broker, workdir, "-Q", QUEUES, "-c", "2", app=APP, name="dash")
    try:
        yield proc.wait_ready()
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def server(dash_broker: str, workdir: Path, worker: WorkerProcess) -> Iterator[DashboardServer]:
    proc = DashboardServer(dash_broker, workdir)
    try:
        yield proc.wait_serving()
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def producer(dash_broker: str) -> Iterator[Conveyor]:
    """A second app object on the module's broker, to send tasks and read the admin API."""
    from conveyor import Conveyor

    app = Conveyor("dashboard-producer", broker=dash_broker)
    try:
        yield app
    finally:
        app.close()

"""How the operator commands reach the broker: ``health -A app`` asks the app's own broker (not
only $CONVEYOR_BROKER_URL / ``-b``), ``Admin.queues()`` reads the workers' heartbeats once, and
every admin command closes its broker connections when it ends."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import redis
from click.testing import CliRunner

from conveyor import Conveyor
from conveyor.cli.main import cli

from ..conftest import ThreadWorker
from ..procs import ROOT, WorkerProcess, wait_for
from ..redis_server import RedisServer


def _health(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "conveyor", *args]
    return subprocess.run(
        cmd, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=60, check=False
    )


def test_health_with_an_app_asks_the_apps_configured_broker_not_the_environments(tmp_path: Path) -> None:
    app_broker = f"sqlite:///{tmp_path / 'app.db'}"
    elsewhere = f"sqlite:///{tmp_path / 'elsewhere.db'}"  # what $CONVEYOR_BROKER_URL says
    env = {"HEALTH_APP_BROKER": app_broker, "CONVEYOR_BROKER_URL": elsewhere}
    worker = WorkerProcess(app_broker, tmp_path, app="tests.apps.health_app", env=env, name="hw").wait_ready()
    try:
        wait_for(
            lambda: _health("-A", "tests.apps.health_app", "health", "--local", env=env).returncode == 0, 20
        )
        ok = _health("-A", "tests.apps.health_app", "health", "--local", env=env)
        assert ok.stdout.startswith("ok: hw@"), ok
        # Without the app (or with -b pointing elsewhere) it is that other broker that answers.
        assert _health("health", "--local", env=env).returncode == 1
        other = _health("-A", "tests.apps.health_app", "-b", elsewhere, "health", "--local", env=env)
        assert other.returncode == 1 and "no worker on this host" in other.stderr
    finally:
        worker.stop()


def test_queues_reads_the_workers_heartbeats_once(run_worker: type[ThreadWorker]) -> None:
    app = Conveyor("once", broker_url="memory://once")
    admin = app.admin
    reads = 0
    real = admin.broker.workers

    def counted() -> list:  # type: ignore[type-arg]
        nonlocal reads
        reads += 1
        return real()

    admin.broker.workers = counted  # type: ignore[method-assign]
    with run_worker(app):
        wait_for(real, 20)
        reads = 0
        assert [q.name for q in admin.queues()] == ["default"]
        assert reads == 1
        workers = admin.workers()
        reads = 0
        admin.queues(workers)  # a refresh that just read them (the monitor) reads none again
        assert reads == 0
    app.close()


def _clients(server: RedisServer) -> int:
    probe = redis.Redis.from_url(server.url)
    try:
        return len(probe.client_list()) - 1  # not this probe itself
    finally:
        probe.close()


def test_admin_commands_close_their_broker_connections_when_they_end(redis_server: RedisServer) -> None:
    redis.Redis.from_url(redis_server.url).flushall()
    before = _clients(redis_server)
    runner = CliRunner()
    for args in (["queues"], ["status"], ["tasks", "--json"], ["dead", "list"]):
        result = runner.invoke(cli, ["-b", redis_server.url, *args])
        assert result.exit_code in (0, 1), result.output  # status: 1 when no worker is alive
        assert _clients(redis_server) == before, args

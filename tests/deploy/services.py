"""Running the command lines of the files in ``deploy/`` for real: each as a subprocess with the
environment the file gives it, against a throwaway broker, with tests.deploy.app as the app."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from conveyor import states
from conveyor.admin import Admin
from conveyor.brokers import broker_from_url
from conveyor.dashboard.auth import hash_line

from ..procs import ROOT, wait_for
from ..webserver import free_port
from . import app as deploy_app

DEPLOY = ROOT / "deploy"
APP = "tests.deploy.app"
# The `conveyor` script of this virtualenv: what /opt/proj/venv/bin/conveyor is in the files.
CONVEYOR_BIN = str(Path(sys.executable).with_name("conveyor"))


def local_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` with its ``conveyor`` (bare or a path) replaced by this virtualenv's."""
    assert Path(argv[0]).name == "conveyor", argv
    return [CONVEYOR_BIN, *argv[1:]]


def deploy_env(broker_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    drop = ("CONVEYOR_APP", "CONVEYOR_BROKER_URL", "COLUMNS")
    base = {k: v for k, v in os.environ.items() if k not in drop}
    return {
        **base,
        "PYTHONUNBUFFERED": "1",
        **(extra or {}),
        "CONVEYOR_APP": APP,
        "CONVEYOR_BROKER_URL": broker_url,
    }


class Service:
    """One command line of a deployment file, running; its output goes to a log file."""

    def __init__(
        self, name: str, argv: Sequence[str], env: dict[str, str], logs: Path, ready_text: str = " ready: "
    ) -> None:
        self.name = name
        self.ready_text = ready_text  # the log line that says it serves (workers, beat: " ready: ")
        self.log_path = logs / f"{name}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                local_argv(argv),
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, as under a service manager
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def ready(self) -> bool:
        assert self.proc.poll() is None, f"{self.name} exited early:\n{self.log()}"
        return self.ready_text in self.log()

    def wait(self, signalled: float, within: float) -> int:
        """The exit code, which must come within ``within`` seconds of ``signalled``."""
        try:
            code = self.proc.wait(timeout=max(0.0, signalled + within - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} did not stop within {within}s:\n{self.log()}") from None
        return code

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            # The whole group: a worker with --processes N leaves no child behind.
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


@contextmanager
def running(services: list[Service]) -> Iterator[list[Service]]:
    """Wait until every service logged its ready line; kill what is left on the way out."""
    try:
        wait_for(lambda: all(s.ready() for s in services), 60)
        yield services
    finally:
        for service in services:
            service.kill()


def stop_all(services: list[Service], how: dict[str, tuple[int, float]]) -> dict[str, int]:
    """Stop every service at once as its service manager would: ``how[name]`` is the signal,
    sent to the main process only, and the seconds it has to exit. Returns the exit codes."""
    signalled = time.monotonic()
    for service in services:
        service.proc.send_signal(how[service.name][0])
    return {s.name: s.wait(signalled, how[s.name][1]) for s in services}


def health(argv: Sequence[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a health-probe command line as Docker or the kubelet would."""
    return subprocess.run(
        local_argv(argv), cwd=ROOT, env=env, capture_output=True, text=True, timeout=30, check=False
    )


class Drain:
    """A ``hold`` task running on a worker while it is told to stop: it must finish (SUCCESS),
    not be cut off, before the worker exits 0."""

    def __init__(self, broker_url: str, seconds: float = 2.0) -> None:
        self.broker_url = broker_url
        deploy_app.app.conf.broker_url = broker_url
        self.result = deploy_app.hold.delay(seconds)
        self.admin = Admin(broker_from_url(broker_url))

    def wait_running(self) -> None:
        wait_for(lambda: any(t.id == self.result.id for t in self.admin.running()), 30)

    def finished(self) -> bool:
        return self.result.state == states.SUCCESS and self.result.result == "held"

    def close(self) -> None:
        self.admin.broker.close()
        deploy_app.app.close()
        deploy_app.app.conf.broker_url = None


def worker_names(broker_url: str) -> list[str]:
    admin = Admin(broker_from_url(broker_url))
    try:
        return sorted(w.hostname.partition("@")[0] for w in admin.workers())
    finally:
        admin.broker.close()


# -- the dashboard ------------------------------------------------------------------------------
DASHBOARD_USER, DASHBOARD_PASSWORD = "ops", "a long test password"
DASHBOARD_TOKEN = "test-token-0123456789abcdef"
DASHBOARD_READY = "dashboard: http://"  # what `conveyor dashboard` prints once it listens
# How the dashboard and the exporter stop on SIGTERM: uvicorn closes its connections, then
# re-raises the signal, so the process ends "terminated by SIGTERM" (every service manager takes
# that as a clean stop).
SERVER_STOPPED = (0, -signal.SIGTERM)


def dashboard_users(directory: Path) -> Path:
    """An auth file, as ``conveyor dashboard --hash-password`` makes it, with one user."""
    path = directory / "dashboard-users"
    path.write_text(f"# made by the test\n{hash_line(DASHBOARD_USER, DASHBOARD_PASSWORD)}\n")
    return path


def local_dashboard_argv(argv: Sequence[str], users: Path) -> tuple[list[str], int]:
    """A file's dashboard command line with a free port and the test's auth file; the rest (the
    host the file binds, no --insecure-no-auth) is left as the file has it."""
    argv = list(argv)
    assert argv[1] == "dashboard" and "--insecure-no-auth" not in argv, argv
    port = free_port()
    argv[argv.index("--port") + 1] = str(port)
    argv[argv.index("--auth-file") + 1] = str(users)
    return argv, port


def dashboard_answers(port: int, token: str | None = None) -> None:
    """The dashboard on ``port`` refuses a request without credentials (401) or with a wrong
    password, serves a page to its user (basic auth) and to the bearer ``token`` if given,
    and answers ``/health`` with 200 and no credentials."""
    base = f"http://127.0.0.1:{port}"

    def health() -> bool:
        try:
            return httpx.get(f"{base}/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(health, 30)
    assert httpx.get(f"{base}/queues", timeout=10).status_code == 401
    wrong = httpx.get(f"{base}/queues", auth=(DASHBOARD_USER, "wrong"), timeout=10)
    assert wrong.status_code == 401
    page = httpx.get(f"{base}/queues", auth=(DASHBOARD_USER, DASHBOARD_PASSWORD), timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"], page
    if token is not None:
        api = httpx.get(f"{base}/api/queues", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert api.status_code == 200, api
        assert (
            httpx.get(f"{base}/api/queues", headers={"Authorization": "Bearer nope"}, timeout=10).status_code
            == 401
        )


# -- the Prometheus exporter --------------------------------------------------------------------
METRICS_READY = "conveyor metrics: serving http://"


def local_metrics_argv(argv: Sequence[str]) -> tuple[list[str], int]:
    """A file's ``conveyor metrics`` command line with a free port (the host as the file has it)."""
    argv = list(argv)
    assert argv[1] == "metrics", argv
    port = free_port()
    argv[argv.index("--port") + 1] = str(port)
    return argv, port


def metrics_answer(port: int) -> None:
    """The exporter on ``port`` serves the cluster's metrics, read from a broker that answers."""

    def scraped() -> bool:
        try:
            return "conveyor_broker_up 1.0" in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        except httpx.HTTPError:
            return False

    wait_for(scraped, 30)

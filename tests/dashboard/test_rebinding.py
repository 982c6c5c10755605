"""A dashboard on a loopback address without authentication answers only requests made to a
loopback host name: a web page the operator visits cannot rebind its own domain name to
127.0.0.1 and then read the dashboard or purge a queue as a same-origin page (DNS rebinding)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ..procs import ConveyorProcess, wait_for
from ..redis_server import free_port
from .server import APP


class OpenDashboard(ConveyorProcess):
    """``conveyor dashboard`` on 127.0.0.1 with no credentials at all."""

    def __init__(self, broker_url: str, workdir: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = ["dashboard", "--port", str(self.port), *extra]
        super().__init__(broker_url, workdir, command, APP, f"open-dashboard-{self.port}")

    def wait_serving(self) -> OpenDashboard:
        def answers() -> bool:
            assert self.proc.poll() is None, f"dashboard exited:\n{self.log()}"
            try:
                httpx.get(self.url + "/health", timeout=2)
            except httpx.HTTPError:
                return False
            return True

        wait_for(answers, 30, interval=0.1)
        return self


@pytest.fixture
def open_dashboard(tmp_path: Path) -> Iterator[OpenDashboard]:
    server = OpenDashboard(f"sqlite:///{tmp_path / 'broker.db'}", tmp_path, "--allow-host", "ops.internal")
    try:
        yield server.wait_serving()
    finally:
        server.stop()


def test_an_unauthenticated_loopback_dashboard_refuses_a_foreign_host_name(
    open_dashboard: OpenDashboard,
) -> None:
    port = open_dashboard.port
    for host in (f"attacker.example:{port}", "attacker.example", f"127.0.0.1.attacker.example:{port}"):
        refused = httpx.get(open_dashboard.url + "/queues", headers={"Host": host}, timeout=30)
        assert refused.status_code == 403, host
        assert "--allow-host" in refused.text
        post = httpx.post(open_dashboard.url + "/queues/default/pause", headers={"Host": host}, timeout=30)
        assert post.status_code == 403, host
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}", "ops.internal:80"):
        page = httpx.get(open_dashboard.url + "/queues", headers={"Host": host}, timeout=30)
        assert page.status_code == 200, host


def test_an_authenticated_dashboard_answers_any_host_name(tmp_path: Path) -> None:
    """With credentials the Host header does not matter: a rebound page has no password."""
    server = OpenDashboard(f"sqlite:///{tmp_path / 'broker.db'}", tmp_path, "--token", "t-0123456789")
    try:
        server.wait_serving()
        page = httpx.get(
            server.url + "/queues",
            headers={"Host": "dashboard.example", "Authorization": "Bearer t-0123456789"},
            timeout=30,
        )
        assert page.status_code == 200
    finally:
        server.stop()

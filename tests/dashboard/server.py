"""A real dashboard server (``conveyor dashboard`` in a subprocess) for the dashboard tests."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from ..procs import ConveyorProcess, wait_for
from ..redis_server import free_port

APP = "tests.apps.dashboard_app"
ADMIN = ("admin", "admin-pw")
VIEWER = ("viewer", "viewer-pw")
TOKEN = "test-token-0123456789"


class DashboardServer(ConveyorProcess):
    """``conveyor dashboard`` with an acting user, a read-only user and a bearer token."""

    def __init__(self, broker_url: str, workdir: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = ["dashboard", "--port", str(self.port), "--auth", ":".join(ADMIN)]
        command += ["--read-only-user", ":".join(VIEWER), "--token", TOKEN, *extra]
        super().__init__(broker_url, workdir, command, APP, f"dashboard-{self.port}")

    def wait_serving(self, timeout: float = 30.0) -> DashboardServer:
        def answers() -> bool:
            assert self.proc.poll() is None, f"dashboard exited:\n{self.log()}"
            try:
                return httpx.get(self.url + "/", timeout=2).status_code in (200, 401)
            except httpx.HTTPError:
                return False

        wait_for(answers, timeout, interval=0.1)
        return self

    @contextlib.contextmanager
    def client(self, user: tuple[str, str] | None = ADMIN) -> Iterator[httpx.Client]:
        """An HTTP client logged in as ``user`` that has picked up its CSRF cookie."""
        with httpx.Client(base_url=self.url, auth=user, timeout=30, follow_redirects=False) as client:
            client.get("/")
            yield client


def csrf_post(client: httpx.Client, path: str, data: dict[str, str] | None = None) -> httpx.Response:
    """A POST as the dashboard's own forms make it: the cookie's token in the form field."""
    token = client.cookies.get("conveyor_csrf")
    assert token, "no CSRF cookie yet"
    return client.post(path, data={"csrf_token": token, **(data or {})})


def wait_until(predicate: Callable[[], object], timeout: float = 30.0) -> None:
    wait_for(predicate, timeout, interval=0.1)

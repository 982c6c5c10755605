"""The HTTP API served by a real uvicorn server over a real SQLite or Redis broker.

The dashboard's auth middleware puts the user in ``scope["conveyor.user"]``; here a stand-in
middleware does the same from an ``X-Test-User: name[:read-only]`` header, so the API's side
of that contract (403 for a read-only user, the actor in the action log) is tested on its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from conveyor import Conveyor
from conveyor.httpapi import asgi_app

from ..apps.api_app import make_app
from ..procs import WorkerProcess
from ..webserver import serving


@dataclass(frozen=True)
class TestUser:
    name: str
    can_act: bool


class HeaderUser:
    """Sets ``scope["conveyor.user"]`` from the X-Test-User header (absent: no user at all)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for key, value in scope["headers"]:
                if key == b"x-test-user":
                    name, _, role = value.decode().partition(":")
                    scope["conveyor.user"] = TestUser(name, role != "read-only")
        await self.app(scope, receive, send)


@pytest.fixture
def app(process_broker_url: str) -> Iterator[Conveyor]:
    application = make_app(process_broker_url)
    try:
        yield application
    finally:
        application.close()


@pytest.fixture
def api(app: Conveyor) -> Iterator[httpx.Client]:
    served: Starlette = asgi_app(app)
    with serving(HeaderUser(served)) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


@pytest.fixture
def worker(process_broker_url: str, tmp_path: Path) -> Iterator[WorkerProcess]:
    proc = WorkerProcess(process_broker_url, tmp_path, "-c", "2", app="tests.apps.api_app").wait_ready()
    try:
        yield proc
    finally:
        proc.stop()

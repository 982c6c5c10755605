"""Fixtures for the workflow tests: the canvas app on each broker, and worker processes of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import Conveyor

from ..apps import canvas_app
from ..procs import WorkerProcess


@pytest.fixture
def canvas(broker_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Conveyor]:
    """The canvas app on every broker (memory too: run it with ``run_worker``)."""
    monkeypatch.setenv("CONVEYOR_TEST_DIR", str(tmp_path))
    canvas_app.app.conf.broker_url = broker_url
    yield canvas_app.app
    canvas_app.app.close()


@pytest.fixture
def process_canvas(
    process_broker_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Conveyor]:
    """The canvas app on the brokers worker processes can share (SQLite, Redis)."""
    monkeypatch.setenv("CONVEYOR_TEST_DIR", str(tmp_path))
    canvas_app.app.conf.broker_url = process_broker_url
    yield canvas_app.app
    canvas_app.app.close()


def worker(app: Conveyor, tmp_path: Path, name: str, *args: str) -> WorkerProcess:
    return WorkerProcess(app.conf.broker_url, tmp_path, *args, app="tests.apps.canvas_app", name=name)

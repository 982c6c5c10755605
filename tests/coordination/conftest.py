"""The coordination tests' app: ``tests.apps.coord_tasks`` on the broker under test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import Conveyor

from ..apps import coord_tasks


@pytest.fixture
def coord(broker_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Conveyor]:
    """The coord app on every broker, recording into this test's directory."""
    monkeypatch.setenv("CONVEYOR_TEST_DIR", str(tmp_path))
    coord_tasks.app.conf.broker_url = broker_url
    yield coord_tasks.app
    coord_tasks.app.close()


@pytest.fixture
def coord_shared(
    process_broker_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Conveyor]:
    """The coord app on a broker that worker processes can share (SQLite, Redis)."""
    monkeypatch.setenv("CONVEYOR_TEST_DIR", str(tmp_path))
    coord_tasks.app.conf.broker_url = process_broker_url
    yield coord_tasks.app
    coord_tasks.app.close()

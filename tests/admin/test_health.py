"""The health rules: alive and fetching, or busy/paused on purpose."""

from __future__ import annotations

import dataclasses
import time

from conveyor.admin import WorkerInfo
from conveyor.admin.health import problem

NOW = time.time()
HEALTHY = WorkerInfo(
    "w1@h/1-a", "w1@h", "h", 1, ("q",), "threads", 8, NOW - 60, NOW - 0.5, fetched_at=NOW - 1
)


def test_a_live_worker_whose_fetches_are_answered_is_healthy() -> None:
    assert problem(HEALTHY, NOW) is None


def test_a_live_worker_whose_fetches_fail_is_unhealthy() -> None:
    failing = dataclasses.replace(HEALTHY, fetch_state="failing", fetched_at=NOW - 30)
    assert "fetches fail" in (problem(failing, NOW) or "")


def test_a_worker_whose_fetch_loop_stalled_is_unhealthy_unless_busy_or_paused() -> None:
    stalled = dataclasses.replace(HEALTHY, fetched_at=NOW - 60)
    assert "stalled" in (problem(stalled, NOW) or "")
    assert problem(dataclasses.replace(stalled, fetch_state="full"), NOW) is None
    assert problem(dataclasses.replace(stalled, fetch_state="paused"), NOW) is None


def test_a_gone_worker_is_unhealthy() -> None:
    assert "gone" in (problem(dataclasses.replace(HEALTHY, gone=True), NOW) or "")

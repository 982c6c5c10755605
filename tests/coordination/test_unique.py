"""Unique enqueue: a duplicate of a pending job returns the existing job, until it has executed."""

from __future__ import annotations

import time
from pathlib import Path

from conveyor import Conveyor, states

from ..apps import coord_tasks as t
from ..conftest import ThreadWorker
from ..procs import wait_for


def test_a_duplicate_while_pending_returns_the_existing_task_id(coord: Conveyor) -> None:
    first = t.refresh.delay(7)
    second = t.refresh.delay(7)
    third = t.refresh.apply_async((7,))
    assert second.id == first.id == third.id
    assert t.refresh.delay(8).id != first.id, "other arguments are another job"
    assert coord.broker.queue_stats()["default"].ready == 2


def test_once_the_job_has_executed_the_same_call_enqueues_again(
    coord: Conveyor, run_worker: type[ThreadWorker]
) -> None:
    first = t.refresh.delay(1)
    with run_worker(coord):
        assert first.get(timeout=10) == 1
        again = t.refresh.delay(1)
        assert again.id != first.id
        assert again.get(timeout=10) == 1


def test_unique_key_template_ignores_other_arguments(coord: Conveyor) -> None:
    first = t.refresh_city.delay(3)
    assert t.refresh_city.delay(3, force=True).id == first.id
    assert t.refresh_city.delay(4).id != first.id


def test_per_call_unique_key_and_unique_for(coord: Conveyor) -> None:
    first = t.unlimited.apply_async(("a",), unique_key="nightly", unique_for=60)
    assert t.unlimited.apply_async(("b",), unique_key="nightly", unique_for=60).id == first.id
    # Same arguments without a unique option: a plain enqueue, never deduplicated.
    assert t.unlimited.apply_async(("a",)).id != first.id
    by_args = t.unlimited.apply_async(("z",), unique_for=60)
    assert t.unlimited.apply_async(("z",), unique_for=60).id == by_args.id


def test_a_revoked_pending_job_no_longer_blocks_its_key(coord: Conveyor) -> None:
    first = t.refresh.delay(9)
    first.revoke()
    assert first.state == states.REVOKED
    assert t.refresh.delay(9).id != first.id


def test_a_failed_job_no_longer_blocks_its_key(coord: Conveyor, run_worker: type[ThreadWorker]) -> None:
    first = t.fails.apply_async(("a",), unique_key="bad", unique_for=60)
    with run_worker(coord):
        first.get(timeout=10, propagate=False)
    assert first.state == states.FAILURE
    second = t.fails.apply_async(("a",), unique_key="bad", unique_for=60)
    assert second.id != first.id


def test_the_claim_expires_after_unique_for(coord: Conveyor) -> None:
    first = t.unlimited.apply_async(("x",), unique_key="short", unique_for=0.3)
    time.sleep(0.5)
    assert t.unlimited.apply_async(("x",), unique_key="short", unique_for=0.3).id != first.id


def test_unique_keys_are_scoped_per_task(coord: Conveyor) -> None:
    a = t.unlimited.apply_async(("x",), unique_key="same", unique_for=60)
    b = t.refresh.apply_async((1,), unique_key="same", unique_for=60)
    assert a.id != b.id


def test_eager_mode_runs_every_call(coord: Conveyor) -> None:
    coord.conf.task_always_eager = True
    try:
        assert t.refresh.delay(5).get() == 5
        assert t.refresh.delay(5).get() == 5
    finally:
        coord.conf.task_always_eager = False


def test_a_running_job_still_counts_as_pending_until_it_has_executed(
    coord: Conveyor, run_worker: type[ThreadWorker], tmp_path: Path
) -> None:
    with run_worker(coord):
        running = t.revocable.apply_async(("u",), unique_key="k", unique_for=60)
        wait_for(lambda: running.state == states.STARTED, 10)
        assert t.revocable.apply_async(("u",), unique_key="k", unique_for=60).id == running.id
        running.revoke(terminate=True)
        wait_for(lambda: running.state == states.REVOKED, 10)
        assert t.revocable.apply_async(("u",), unique_key="k", unique_for=60).id != running.id


def test_a_job_waiting_for_its_retry_still_counts_as_pending(
    coord: Conveyor, run_worker: type[ThreadWorker]
) -> None:
    with run_worker(coord):
        first = t.retry_later.delay(1)
        wait_for(lambda: first.state == states.RETRY, 10)
        assert t.retry_later.delay(1).id == first.id

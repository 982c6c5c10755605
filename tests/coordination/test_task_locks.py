"""``@app.task(lock=...)``: one run per key at a time; skip, retry or wait; released on every ending."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conveyor import Conveyor, TaskRevokedError, TimeLimitExceeded, states
from conveyor.brokers import JobSpec
from conveyor.message import Envelope, encode_envelope

from ..apps import coord_tasks as t
from ..conftest import ThreadWorker
from ..procs import lines, wait_for


def test_skip_policy_settles_the_run_as_revoked_skipped_without_running_it(
    coord: Conveyor, run_worker: type[ThreadWorker], tmp_path: Path
) -> None:
    with coord.lock("scrape:nasa", timeout=30), run_worker(coord):
        result = t.manual_refresh.delay("nasa")
        with pytest.raises(TaskRevokedError, match=r"skipped: lock 'scrape:nasa' is held by .* pid "):
            result.get(timeout=10)
    assert result.state == states.REVOKED
    assert lines(tmp_path / "scrapes") == []
    # In the task history like any revoked task: named, with its queue and why.
    info = coord.admin.task(result.id)
    assert (info.state, info.name, info.queue) == ("revoked", t.manual_refresh.name, "default")
    assert "skipped: lock 'scrape:nasa' is held" in (info.error or "")
    assert [r.id for r in coord.admin.tasks(state="revoked").items] == [result.id]


def test_a_chain_step_skipped_by_its_lock_ends_the_chain_as_a_revoke_would(
    coord: Conveyor, run_worker: type[ThreadWorker], tmp_path: Path
) -> None:
    from conveyor import chain

    with coord.lock("scrape:esa", timeout=30), run_worker(coord):
        result = chain(t.manual_refresh.si("esa"), t.unlimited.si("after")).delay()
        with pytest.raises(TaskRevokedError, match="skipped: lock 'scrape:esa' is held"):
            result.get(timeout=15)  # the last step, never run: not PENDING for ever
    assert lines(tmp_path / "unlimited") == []


def test_wait_policy_waits_in_the_broker_not_in_a_worker_slot(
    coord: Conveyor, run_worker: type[ThreadWorker], tmp_path: Path
) -> None:
    with run_worker(coord, concurrency=1, prefetch_multiplier=1):
        with coord.lock("scrape:nasa", timeout=30):
            waiting = t.scrape.delay("nasa")
            # The only worker slot stays free for other work while the scrape waits for the lock.
            for i in range(5):
                assert t.unlimited.delay(f"u{i}").get(timeout=10) == f"u{i}"
            assert waiting.state == states.PENDING and waiting.retries == 0
            assert lines(tmp_path / "scrapes") == []
        assert waiting.get(timeout=10) == "nasa"
    assert waiting.retries == 0, "waiting for a lock must not count as a retry"


def test_retry_policy_runs_once_the_lock_is_free(
    coord: Conveyor, run_worker: type[ThreadWorker], tmp_path: Path
) -> None:
    with run_worker(coord):
        with coord.lock("scrape:esa", timeout=30):
            result = t.polite_scrape.delay("esa")
            time.sleep(1.0)
            assert lines(tmp_path / "polite") == []
        assert result.get(timeout=20) == "esa"
        assert result.retries == 0


def test_different_keys_do_not_exclude_each_other(
    coord: Conveyor, run_worker: type[ThreadWorker], tmp_path: Path
) -> None:
    with run_worker(coord):
        results = [t.scrape.delay(src, 0.5) for src in ("a", "b", "c")]
        assert [r.get(timeout=10) for r in results] == ["a", "b", "c"]
    assert not (tmp_path / "overlaps").exists()


def test_a_run_longer_than_lock_timeout_keeps_its_lock(
    coord: Conveyor, run_worker: type[ThreadWorker], tmp_path: Path
) -> None:
    """lock_timeout is 3 s; the scrape runs 5 s: renewal must keep the second run out meanwhile."""
    with run_worker(coord):
        long = t.scrape.delay("slow", 5.0)
        wait_for(lambda: lines(tmp_path / "scrapes"), 10)
        short = t.scrape.delay("slow", 0.1)
        assert long.get(timeout=20) == "slow" and short.get(timeout=20) == "slow"
    assert not (tmp_path / "overlaps").exists(), "the lock expired while its task still ran"


def test_lock_is_released_when_the_task_fails(coord: Conveyor, run_worker: type[ThreadWorker]) -> None:
    with run_worker(coord):
        with pytest.raises(ValueError, match="a failed"):
            t.fails.delay("a").get(timeout=10)
        wait_for(lambda: coord.locks() == [], 5)


def test_lock_is_released_when_the_task_hits_its_hard_time_limit(
    coord: Conveyor, run_worker: type[ThreadWorker], tmp_path: Path
) -> None:
    with run_worker(coord):
        result = t.too_slow.delay("b")
        wait_for(lambda: lines(tmp_path / "too_slow"), 10)
        assert [i.name for i in coord.locks()] == ["slow:b"]
        with pytest.raises(TimeLimitExceeded):
            result.get(timeout=10)
        wait_for(lambda: coord.locks() == [], 5)


def test_lock_is_released_when_the_task_is_revoked_and_terminated(
    coord: Conveyor, run_worker: type[ThreadWorker], tmp_path: Path
) -> None:
    with run_worker(coord):
        result = t.revocable.delay("c")
        wait_for(lambda: lines(tmp_path / "revocable"), 10)
        [held] = coord.locks()
        assert held.name == "revocable:c" and held.task_id == result.id
        result.revoke(terminate=True)
        wait_for(lambda: result.state == states.REVOKED, 10)
        wait_for(lambda: coord.locks() == [], 5)


def test_the_task_lock_is_the_same_lock_as_app_lock(
    coord: Conveyor, run_worker: type[ThreadWorker], tmp_path: Path
) -> None:
    """A management command can hold ``app.lock("scrape:x")`` to keep the task from running."""
    with run_worker(coord):
        result = t.revocable.delay("shared")
        wait_for(lambda: lines(tmp_path / "revocable"), 10)
        assert not coord.lock("revocable:shared").acquire(blocking=False)
        result.revoke(terminate=True)
        wait_for(lambda: coord.lock("revocable:shared").locked() is False, 10)


def test_a_message_that_cannot_fill_the_lock_key_is_dead_lettered_with_the_reason(
    coord: Conveyor, run_worker: type[ThreadWorker]
) -> None:
    """A message from elsewhere (an older producer, a hand-made one) that lacks the argument."""
    env = Envelope(id="no-source", task=t.scrape.name, args=[], kwargs={})
    coord.broker.enqueue([JobSpec(env.id, "default", encode_envelope(env))])
    with run_worker(coord):
        result = coord.AsyncResult("no-source")
        with pytest.raises(TypeError, match="called with wrong arguments"):
            result.get(timeout=10)
    [letter] = coord.broker.dead_letters()
    assert letter.id == "no-source" and "missing a required argument: 'source'" in letter.reason
    # Recorded like any dead letter: in the task history, named, as failed and dead.
    info = coord.admin.task("no-source")
    assert (info.state, info.name, info.dead) == ("failed", t.scrape.name, True)

"""``app.lock(...)``: mutual exclusion, holder tokens, expiry, renewal and fencing, on every broker."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from conveyor import Conveyor
from conveyor.exceptions import LockError, LockNotOwnedError, LockTimeout


def test_a_held_lock_excludes_every_other_holder(app: Conveyor) -> None:
    first = app.lock("report", timeout=30)
    second = app.lock("report", timeout=30)
    assert first.acquire()
    assert not second.acquire(blocking=False)
    assert not second.acquire(blocking_timeout=0.2)
    assert first.locked() and first.owned() and not second.owned()
    first.release()
    assert second.acquire(blocking=False)
    second.release()
    assert not first.locked()


def test_with_block_gives_up_after_blocking_timeout_with_a_clear_error(app: Conveyor) -> None:
    with app.lock("scrape", timeout=30):
        started = time.monotonic()
        with (
            pytest.raises(LockTimeout, match=r"could not acquire lock 'scrape' within 0.3s \(held by "),
            app.lock("scrape", blocking_timeout=0.3),
        ):
            pass
        assert time.monotonic() - started < 5


def test_a_blocking_waiter_gets_the_lock_once_it_is_released(app: Conveyor) -> None:
    holder = app.lock("job", timeout=30)
    holder.acquire()
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(app.lock("job", blocking_timeout=10).acquire()))
    waiter.start()
    time.sleep(0.3)
    assert got == []
    holder.release()
    waiter.join(10)
    assert got == [True]


def test_only_the_holder_can_release(app: Conveyor) -> None:
    holder = app.lock("res", timeout=30)
    other = app.lock("res", timeout=30)
    holder.acquire()
    with pytest.raises(LockNotOwnedError, match="does not hold it"):
        other.release()
    assert holder.owned()
    holder.release()
    with pytest.raises(LockNotOwnedError):
        holder.release()


def test_an_expired_holder_cannot_release_the_next_holders_lock(app: Conveyor) -> None:
    stale = app.lock("res", timeout=0.3)
    stale.acquire()
    time.sleep(0.6)  # a holder that paused past its timeout
    fresh = app.lock("res", timeout=30)
    assert fresh.acquire(blocking=False), "an expired lock must be free"
    with pytest.raises(LockNotOwnedError, match="expired"):
        stale.release()
    assert fresh.owned(), "the stale holder's release must not touch the new holder's lock"
    assert fresh.fence > stale.fence
    fresh.release()


def test_a_holder_that_never_releases_blocks_no_one_past_its_timeout(app: Conveyor) -> None:
    app.lock("abandoned", timeout=0.5).acquire()  # never released
    started = time.monotonic()
    with app.lock("abandoned", timeout=30, blocking_timeout=5.5):
        waited = time.monotonic() - started
    assert waited <= 0.5 + 5


def test_fencing_numbers_increase_with_every_acquisition(app: Conveyor) -> None:
    fences = []
    for _ in range(5):
        with app.lock("fenced", timeout=30) as lock:
            fences.append(lock.fence)
    with app.lock("another", timeout=30) as lock:
        fences.append(lock.fence)
    with app.lock("fenced", timeout=30) as lock:
        fences.append(lock.fence)
    assert fences == sorted(fences) and len(set(fences)) == len(fences)
    assert [info.fence for info in app.locks()] == []


def test_fence_of_a_lock_never_acquired_is_an_error(app: Conveyor) -> None:
    with pytest.raises(LockError, match="has not been acquired"):
        _ = app.lock("never").fence


def test_auto_renew_keeps_the_lock_past_its_timeout_and_stops_on_release(app: Conveyor) -> None:
    # A 2 s timeout, renewed every third of it: a renewal late by a busy machine's second still
    # keeps the lock (a 0.6 s one was lost by a 0.4 s stall).
    renewed = app.lock("long", timeout=2.0, auto_renew=True)
    plain = app.lock("short", timeout=2.0)
    renewed.acquire()
    plain.acquire()
    time.sleep(4.0)
    assert renewed.owned() and not renewed.lost
    assert not plain.owned()
    renewed.release()
    assert not renewed.locked()
    time.sleep(0.5)
    assert not renewed.locked(), "a released lock must not be renewed back into existence"


def test_extend_adds_time_or_replaces_it(app: Conveyor) -> None:
    lock = app.lock("ext", timeout=1)
    lock.acquire()
    lock.extend(20)
    info = app.locks()[0]
    assert info.expires_at is not None and 19 < info.expires_at - time.time() <= 21.5
    lock.extend(5, replace_ttl=True)
    info = app.locks()[0]
    assert info.expires_at is not None and info.expires_at - time.time() <= 5.5
    lock.extend()  # back to the full timeout
    info = app.locks()[0]
    assert info.expires_at is not None and info.expires_at - time.time() <= 1.5
    lock.release()
    with pytest.raises(LockNotOwnedError):
        lock.extend()


def test_the_body_of_a_with_block_that_outlived_its_lock_is_reported(app: Conveyor) -> None:
    with pytest.raises(LockNotOwnedError, match="expired"), app.lock("brief", timeout=0.2):
        time.sleep(0.5)


def test_an_exception_in_the_block_releases_the_lock_and_propagates(app: Conveyor) -> None:
    with pytest.raises(KeyError), app.lock("oops", timeout=30):
        raise KeyError("body failed")
    assert not app.lock("oops").locked()


def test_lock_is_not_reentrant(app: Conveyor) -> None:
    lock = app.lock("once", timeout=30)
    lock.acquire()
    with pytest.raises(LockError, match="not re-entrant"):
        lock.acquire()
    lock.release()


def test_async_context_manager_excludes_and_keeps_the_loop_running(app: Conveyor) -> None:
    async def scenario() -> list[str]:
        events: list[str] = []

        async def holder() -> None:
            async with app.lock("async", timeout=30) as lock:
                events.append(f"holder in {lock.fence}")
                await asyncio.sleep(0.5)
                events.append("holder out")

        async def waiter() -> None:
            await asyncio.sleep(0.1)
            async with app.lock("async", timeout=30, blocking_timeout=10):
                events.append("waiter in")

        async def ticker() -> None:  # proves waiting does not block the event loop
            for _ in range(5):
                await asyncio.sleep(0.05)
                events.append("tick")

        await asyncio.gather(holder(), waiter(), ticker())
        return events

    events = asyncio.run(scenario())
    assert events.index("holder out") < events.index("waiter in")
    assert events.count("tick") == 5 and events.index("tick") < events.index("holder out")


def test_async_blocking_timeout_raises_lock_timeout(app: Conveyor) -> None:
    async def scenario() -> None:
        async with app.lock("async-held", timeout=30):
            with pytest.raises(LockTimeout):
                async with app.lock("async-held", blocking_timeout=0.2):
                    pass

    asyncio.run(scenario())


def test_a_cancelled_async_waiter_never_ends_up_holding_the_lock(app: Conveyor) -> None:
    async def scenario() -> None:
        holder = app.lock("cancel", timeout=30)
        await holder.aacquire()
        waiter = app.lock("cancel", timeout=30, blocking_timeout=None)
        attempt = asyncio.create_task(waiter.aacquire())
        await asyncio.sleep(0.2)
        attempt.cancel()
        with pytest.raises(asyncio.CancelledError):
            await attempt
        await holder.arelease()
        await asyncio.sleep(0.3)

    asyncio.run(scenario())
    assert not app.lock("cancel").locked()


def test_locks_lists_holders_and_release_lock_breaks_a_stuck_one(app: Conveyor) -> None:
    stuck = app.lock("scraping_task_lock", timeout=3600)
    stuck.acquire()
    [info] = app.locks()
    assert info.name == "scraping_task_lock" and info.fence == stuck.fence
    assert info.token == stuck.token and " pid " in info.holder and info.age < 5
    assert info.expires_at is not None and 3590 < info.expires_at - time.time() <= 3600
    assert app.release_lock("scraping_task_lock")
    assert app.locks() == []
    assert not app.release_lock("scraping_task_lock")
    with pytest.raises(LockNotOwnedError, match="force-released"):
        stuck.release()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timeout": 0}, "timeout must be a positive number of seconds, got 0"),
        ({"timeout": -5}, "timeout must be a positive number"),
        ({"timeout": None}, "timeout must be a positive number"),
        ({"blocking_timeout": -1}, "blocking_timeout must be None"),
    ],
)
def test_bad_lock_settings_are_clear_errors(app: Conveyor, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        app.lock("x", **kwargs)  # type: ignore[arg-type]


def test_empty_lock_name_is_an_error(app: Conveyor) -> None:
    with pytest.raises(ValueError, match="lock name must be a non-empty string"):
        app.lock("")

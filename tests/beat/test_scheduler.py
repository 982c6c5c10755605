"""The scheduler's slot logic, driven by an injected clock: one enqueue per (entry, slot)."""

from __future__ import annotations

import itertools
import json
import random
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from conveyor import Conveyor, crontab
from conveyor.beat.claims import PENDING_STALE, slot_task_id, take_claim
from conveyor.beat.lease import LeaderLease, current_leader
from conveyor.beat.scheduler import BUSY_RETRY, Scheduler
from conveyor.beat.store import slot_key
from conveyor.brokers import Outcome

from .helpers import drain, duplicates, make_app, slots_of, utc

T0 = utc(2026, 11, 21, 8, 0, 0)
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def app(broker_url: str) -> Iterator[Conveyor]:
    application = make_app(broker_url)
    try:
        yield application
    finally:
        application.close()


def scheduler(app: Conveyor, name: str = "s1") -> Scheduler:
    """A scheduler driven step by step: each test passes ``now`` to ``tick`` (the injected clock)."""
    return Scheduler(app, owner=name)


def test_interval_slots_are_sent_once_each_however_often_the_scheduler_ticks(app: Conveyor) -> None:
    app.schedules.add("poll", "t.ping", 2.0, catch_up="all")
    s = scheduler(app)
    now = T0
    while now < T0 + 20:
        s.tick(now)
        now += random.choice([0.1, 0.5, 0.7, 1.3, 2.0])
    slots = slots_of(drain(app.broker), "poll")
    assert slots == [T0 + 2 * k for k in range(len(slots))]  # anchored grid, no gap, no double
    assert slots[-1] >= T0 + 16
    assert app.schedules.get("poll").total_runs == len(slots)  # type: ignore[union-attr]


def test_tick_returns_the_exact_next_slot_so_the_loop_can_sleep_until_it(app: Conveyor) -> None:
    app.schedules.add("poll", "t.ping", 2.0)
    app.schedules.add("hourly", "t.ping", crontab(minute=5))
    s = scheduler(app)
    assert s.tick(T0 + 0.3) == T0 + 2.0
    assert s.tick(T0 + 2.0) == T0 + 4.0
    app.schedules.disable("poll")
    assert s.tick(T0 + 2.5) == T0 + 300.0  # the edit is seen at once (beat:version)


def test_three_schedulers_ticking_in_any_order_send_each_slot_exactly_once(broker_url: str) -> None:
    apps = [make_app(broker_url) for _ in range(3)]
    try:
        apps[0].schedules.add("tick", "t.ping", 1.0, catch_up="all")
        apps[0].schedules.add("poll", "t.ping", 2.0, options={"expires": 2})
        schedulers = [scheduler(a, f"s{i}") for i, a in enumerate(apps)]
        rng = random.Random(7)
        now = T0
        while now < T0 + 30:
            for s in rng.sample(schedulers, 3):
                s.tick(now + rng.uniform(0, 0.3))
            now += rng.uniform(0.2, 1.5)
        jobs = drain(apps[0].broker)
        for entry in ("tick", "poll"):
            slots = slots_of(jobs, entry)
            assert not duplicates(slots), entry
            step = 1.0 if entry == "tick" else 2.0
            assert slots == [T0 + step * k for k in range(len(slots))], entry
            assert apps[0].schedules.get(entry).total_runs == len(slots)  # type: ignore[union-attr]
        assert sum(s.sent for s in schedulers) == len(jobs)
    finally:
        for a in apps:
            a.close()


@pytest.mark.parametrize(
    ("policy", "down_for", "expected"),
    [
        ("once", 100.0, [T0 + 100]),  # ten missed slots: one run, as the latest
        ("all", 100.0, [T0 + 10 * k for k in range(1, 11)]),
        ("skip", 100.0, [T0 + 100]),  # the latest slot is on time (within the 60 s grace)
        ("skip", 105.0, [T0 + 100]),
        ("once", 3600.0, [T0 + 3600]),
    ],
)
def test_missed_slots_follow_the_entrys_catch_up_policy(
    app: Conveyor, policy: str, down_for: float, expected: list[float]
) -> None:
    app.schedules.add("e", "t.ping", 10.0, catch_up=policy)
    s = scheduler(app)
    s.tick(T0)
    drain(app.broker)
    s.tick(T0 + down_for)  # the scheduler was down in between
    assert slots_of(drain(app.broker), "e") == expected


def test_skip_drops_a_slot_that_is_later_than_the_grace(app: Conveyor) -> None:
    app.schedules.add("daily", "t.ping", crontab(minute=0, hour=4), catch_up="skip")
    s = scheduler(app)
    s.tick(utc(2026, 11, 21, 3, 0))
    s.tick(utc(2026, 11, 21, 4, 2))  # two minutes late: more than the 60 s grace
    s.tick(utc(2026, 11, 22, 4, 0, 30))  # 30 s late: on time
    assert slots_of(drain(app.broker), "daily") == [utc(2026, 11, 22, 4, 0)]


def test_a_new_interval_runs_at_once_but_a_new_crontab_waits_for_its_next_match(app: Conveyor) -> None:
    wednesday = utc(2026, 11, 18, 12, 0, 1)
    app.schedules.add("poll", "t.ping", 30.0)
    app.schedules.add("vacuum", "t.ping", crontab(minute=0, hour=4, day_of_week="sun"))
    s = scheduler(app)
    s.tick(wednesday)
    assert slots_of(drain(app.broker), "poll") == [utc(2026, 11, 18, 12, 0, 0)]
    assert s.tick(wednesday + 60) == utc(2026, 11, 18, 12, 1, 30)  # poll's next slot
    assert slots_of(drain(app.broker), "vacuum") == []
    s.tick(utc(2026, 11, 22, 4, 0))
    assert slots_of(drain(app.broker), "vacuum") == [utc(2026, 11, 22, 4, 0)]


def test_a_disabled_entry_is_not_sent_and_reenabling_does_not_catch_up(app: Conveyor) -> None:
    # Enabling stamps the entry with the real time, so this test runs on the real clock.
    start = time.time() - 60
    app.schedules.add("tick", "t.ping", 1.0, catch_up="all")
    s = scheduler(app)
    s.tick(start)
    app.schedules.disable("tick")
    for k in range(1, 30):
        s.tick(start + k)
    enabled_at = time.time()
    app.schedules.enable("tick")
    s.tick(time.time() + 0.5)
    slots = slots_of(drain(app.broker), "tick")
    assert slots[0] <= start and len(slots) <= 2
    assert all(slot >= enabled_at - 1 for slot in slots[1:]), "the disabled stretch was caught up"


def test_changing_the_schedule_does_not_run_the_new_schedules_past_slots(app: Conveyor) -> None:
    # The change is stamped with the real time, so this test runs on the real clock.
    app.schedules.add("report", "t.ping", 86400.0)  # daily, at 00:00 UTC
    s = scheduler(app)
    now = time.time()
    s.tick(now)
    assert slots_of(drain(app.broker), "report") == [now // 86400 * 86400]  # first run
    app.schedules.update("report", schedule=crontab())  # every minute from now on
    s.tick(time.time() + 0.01)  # minutes since 00:00 are not "missed" slots of the new schedule
    assert slots_of(drain(app.broker), "report") == []
    next_minute = (time.time() // 60 + 1) * 60
    s.tick(next_minute + 0.5)
    assert slots_of(drain(app.broker), "report") == [next_minute]


@pytest.mark.parametrize(
    ("first_day", "transition"),
    [((2026, 3, 27), "spring-forward on 2026-03-29"), ((2026, 10, 23), "fall-back on 2026-10-25")],
)
def test_a_daily_0230_berlin_entry_runs_once_per_local_day_across_dst(
    app: Conveyor, first_day: tuple[int, int, int], transition: str
) -> None:
    app.schedules.add("nightly", "t.ping", crontab(minute=30, hour=2, tz="Europe/Berlin"))
    s = scheduler(app)
    start = datetime(*first_day, 0, 0, tzinfo=BERLIN).timestamp()
    now, end = start, start + 5 * 86400
    rng = random.Random(1)
    while now < end:
        wake = s.tick(now)
        # Wake exactly when asked, or earlier/later at random, like a real loop under load.
        now = min(wake, now + rng.choice([60.0, 600.0, 3600.0, 7200.0]))
    local = [datetime.fromtimestamp(t, BERLIN) for t in slots_of(drain(app.broker), "nightly")]
    days = Counter(d.date() for d in local)
    assert len(days) == 5 and set(days.values()) == {1}, (transition, local)
    times = {d.strftime("%H:%M %Z") for d in local}
    assert times <= {"02:30 CET", "02:30 CEST", "03:00 CEST"}, times  # 03:00 CEST: 02:30 did not exist


def test_an_hourly_entry_runs_23_and_25_times_on_dst_days(app: Conveyor) -> None:
    app.schedules.add("hourly", "t.ping", crontab(minute=5, tz="Europe/Berlin"))
    s = scheduler(app)
    for day in ((2026, 3, 29), (2026, 10, 25)):
        start = datetime(*day, 0, 0, tzinfo=BERLIN).timestamp()
        end = datetime(day[0], day[1], day[2] + 1, 0, 0, tzinfo=BERLIN).timestamp()
        now = start
        while now < end:
            now = min(s.tick(now), end)
    slots = slots_of(drain(app.broker), "hourly")
    per_day = Counter(datetime.fromtimestamp(t, BERLIN).date() for t in slots)
    assert per_day[datetime(2026, 3, 29).date()] == 23  # 02:05 does not exist
    assert per_day[datetime(2026, 10, 25).date()] == 25  # 02:05 happens twice, in real time


def test_a_wall_clock_jump_back_does_not_fire_a_slot_again(app: Conveyor) -> None:
    app.schedules.add("nightly", "t.ping", crontab(minute=30, hour=2, tz="Europe/Berlin"))
    app.schedules.add("poll", "t.ping", 2.0)
    s = scheduler(app)
    night = datetime(2026, 10, 25, 2, 31, tzinfo=BERLIN).timestamp()
    s.tick(night - 3600)
    s.tick(night)
    for back in (0.5, 1.9, 3600.0, 86400.0):  # a naive clock set back, NTP stepping back
        s.tick(night - back)
    s.tick(night)
    s.tick(night + 3600)  # 02:31 again on the wall clock (CET now): not a new 02:30 slot
    jobs = drain(app.broker)
    assert len(slots_of(jobs, "nightly")) == 1
    assert not duplicates(slots_of(jobs, "poll"))


def test_a_scheduler_killed_after_enqueueing_before_recording_sends_nothing_twice(app: Conveyor) -> None:
    """Even when the job already ran and left no result, the slot claim stops a second run."""
    app.schedules.add("vacuum", "t.ping", 60.0)
    a, b = scheduler(app, "a"), scheduler(app, "b")
    a.tick(T0)
    stored = app.schedules.store.get("vacuum")
    assert stored is not None
    slot = T0 + 60
    assert a._send_slot(stored.entry, slot, slot) == "sent"  # ...and "a" dies before writing the state
    # A worker runs it with ignore_result: the broker forgets the job entirely.
    for d in app.broker.fetch(["default"], "w", 10, 30, 0):
        app.broker.settle([Outcome("ack", d.id, d.delivery, state=None)], 60)
    assert app.broker.status(slot_task_id("vacuum", slot)) is None
    b.tick(slot + 0.1)
    assert a.sent == 2 and b.sent == 0
    assert app.schedules.get("vacuum").total_runs == 2  # type: ignore[union-attr]


def test_a_slot_claimed_by_a_scheduler_that_died_before_enqueueing_is_sent_by_another(app: Conveyor) -> None:
    app.schedules.add("vacuum", "t.ping", 60.0)
    b = scheduler(app, "b")
    b.tick(T0)
    drain(app.broker)
    slot = T0 + 60
    # "a" took the claim PENDING_STALE + 1 seconds ago, then was SIGKILLed before enqueueing.
    take_claim(app.broker, "vacuum", slot, "a", b.claim_ttl - PENDING_STALE - 1, time.time())
    b.tick(slot + 4)
    assert slots_of(drain(app.broker), "vacuum") == [slot]


def test_a_stale_claim_whose_job_exists_is_not_sent_again(app: Conveyor) -> None:
    app.schedules.add("vacuum", "t.ping", 60.0)
    b = scheduler(app, "b")
    b.tick(T0)
    drain(app.broker)
    slot = T0 + 60
    take_claim(app.broker, "vacuum", slot, "a", b.claim_ttl - PENDING_STALE - 1, time.time())
    app.send_task("t.ping", task_id=slot_task_id("vacuum", slot))  # "a" enqueued, then died
    b.tick(slot + 4)
    assert b.sent == 1  # only the first run, at T0
    assert len(drain(app.broker)) == 1
    assert app.schedules.get("vacuum").total_runs == 2  # type: ignore[union-attr]


def test_a_slot_another_live_scheduler_is_sending_is_looked_at_again_shortly(app: Conveyor) -> None:
    app.schedules.add("vacuum", "t.ping", 60.0)
    b = scheduler(app, "b")
    b.tick(T0)
    slot = T0 + 60
    take_claim(app.broker, "vacuum", slot, "a", b.claim_ttl, time.time())  # "a" is mid-enqueue
    before = app.schedules.get("vacuum")
    assert b.tick(slot) == slot + BUSY_RETRY
    assert app.schedules.get("vacuum").state == before.state  # type: ignore[union-attr]


def test_arguments_that_do_not_fit_are_recorded_and_the_scheduler_goes_on(app: Conveyor) -> None:
    app.schedules.add("broken", "t.add", 10.0, args=[1], check_task=False)
    app.schedules.add("fine", "t.ping", 10.0)
    s = scheduler(app)
    s.tick(T0)
    s.tick(T0 + 10)
    broken = app.schedules.get("broken")
    assert broken is not None and broken.total_runs == 0
    assert broken.last_error is not None and "wrong arguments" in broken.last_error
    assert broken.state is not None and broken.state.last_slot == T0 + 10
    assert slots_of(drain(app.broker), "fine") == [T0, T0 + 10]


def test_a_removed_and_readded_entry_starts_fresh(app: Conveyor) -> None:
    app.schedules.add("vacuum", "t.ping", crontab(minute=0, hour=4))
    s = scheduler(app)
    s.tick(utc(2026, 11, 20, 5, 0))
    s.tick(utc(2026, 11, 21, 4, 0))
    app.schedules.remove("vacuum")
    app.schedules.add("vacuum", "t.ping", crontab(minute=0, hour=4))
    assert app.schedules.get("vacuum").total_runs == 0  # type: ignore[union-attr]
    s.tick(utc(2026, 11, 23, 5, 0))  # the new entry waits for its next match; no catch-up
    assert slots_of(drain(app.broker), "vacuum") == [utc(2026, 11, 21, 4, 0)]


def test_the_leader_lease_has_one_holder_and_passes_on_release_or_expiry(app: Conveyor) -> None:
    a = LeaderLease(app.broker, "a", ttl=0.5)
    b = LeaderLease(app.broker, "b", ttl=0.5)
    assert a.keep(T0) and not b.keep(T0)
    assert (current_leader(app.broker) or {})["owner"] == "a"
    a.release()
    assert b.keep(T0) and not a.keep(T0)
    time.sleep(0.7)  # b stops renewing (SIGKILL): its lease expires
    assert a.keep(T0)
    assert not b.keep(T0) and not b.held  # b notices it lost the lease


def test_slots_are_enqueued_within_50_ms_of_their_time_without_drift(app: Conveyor) -> None:
    """Measured on the enqueued messages' creation times; the median absorbs machine load."""
    app.schedules.add("fast", "t.ping", 0.5, catch_up="all")
    s = Scheduler(app, owner="timer")
    thread = threading.Thread(target=s.run, daemon=True)
    thread.start()
    time.sleep(6)
    s.stop()
    thread.join(10)
    jobs = [e for e in drain(app.broker) if e.headers.get("beat_entry") == "fast"]
    slots = [e.headers["beat_slot"] for e in jobs]
    assert len(jobs) >= 8 and not duplicates(slots)
    assert slots == sorted(slots) and all(b - a == 0.5 for a, b in itertools.pairwise(slots))
    lateness = [e.created - e.headers["beat_slot"] for e in jobs[1:]]  # the first is a first run
    assert statistics.median(lateness) < 0.050, lateness
    assert min(lateness) >= 0, "sent before its slot"


def test_the_slot_claim_key_and_task_id_are_deterministic() -> None:
    assert slot_key("poll", T0 + 0.5) == f"beat:slot:poll:{int(T0 * 1000) + 500}"
    assert slot_task_id("poll", T0) == "beat:poll:2026-11-21T08:00:00.000Z"
    record = json.dumps({"owner": "x", "state": "done"})
    assert json.loads(record)["state"] == "done"


def test_the_sent_log_line_calls_a_new_entrys_first_run_so_and_says_lateness_in_a_readable_unit(
    app: Conveyor, caplog: pytest.LogCaptureFixture
) -> None:
    app.schedules.add("hourly", "t.ping", 3600.0)
    s = scheduler(app)
    with caplog.at_level("INFO", logger="conveyor.beat"):
        s.tick(T0 + 3281.7)  # a new interval entry runs at once, in the slot of 08:00
        s.tick(T0 + 3600 + 4.5)  # the 09:00 slot, 4.5 s late
    sent = [r.getMessage() for r in caplog.records if r.getMessage().startswith("beat: sent hourly")]
    assert len(sent) == 2, sent
    assert sent[0].endswith("(first run of a new entry)"), sent
    assert sent[1].endswith("(4.5 s late)"), sent

"""Declaring entries, validating them, the declaration sync rule, and the runtime API."""

from __future__ import annotations

import doctest
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

import conveyor.beat.claims
import conveyor.beat.display
import conveyor.beat.entry
from conveyor import Conveyor, crontab, every
from conveyor.beat.entry import EntryError, build_entry
from conveyor.beat.scheduler import Scheduler

from .helpers import drain, make_app, slots_of, utc

T0 = utc(2026, 11, 21, 8, 0, 0)
SEEDS: dict[str, dict[str, Any]] = {
    "poll-aircraft": {
        "task": "t.ping",
        "schedule": 2.0,
        "args": ("EU",),
        "options": {"queue": "polling", "expires": 2},
    },
    "weekly-vacuum": {"task": "t.ping", "schedule": crontab(minute=0, hour=4, day_of_week="sun")},
    "hourly-aggregate": {"task": "t.ping", "schedule": crontab(minute=5)},
    "scrape": {"task": "t.ping", "schedule": "0 */6 * * *"},
    "cleanup-sessions": {
        "task": "t.ping",
        "schedule": timedelta(minutes=5),
        "options": {"queue": "database"},
    },
}


@pytest.fixture
def app(broker_url: str) -> Iterator[Conveyor]:
    application = make_app(broker_url)
    try:
        yield application
    finally:
        application.close()


def names(app: Conveyor) -> list[str]:
    return [e.name for e in app.schedules.entries()]


@pytest.mark.parametrize("module", [conveyor.beat.entry, conveyor.beat.claims, conveyor.beat.display])
def test_docstring_examples(module: object) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)  # type: ignore[arg-type]
    assert result.failed == 0


def test_the_seeds_schedules_declared_as_celery_users_write_them_are_synced(app: Conveyor) -> None:
    app.conf.beat_schedule = dict(SEEDS)
    report = Scheduler(app).prepare()
    assert sorted(report.created) == sorted(SEEDS)
    described = {e.name: e.schedule.describe() for e in app.schedules.entries()}
    assert described == {
        "cleanup-sessions": "every 5m",
        "hourly-aggregate": "at 5 minutes past every hour (UTC)",
        "poll-aircraft": "every 2s",
        "scrape": "cron '0 */6 * * *' (UTC)",
        "weekly-vacuum": "at 04:00 on Sunday (UTC)",
    }
    poll = app.schedules.get("poll-aircraft")
    assert poll is not None and poll.entry.options == {"queue": "polling", "expires": 2.0}


def test_the_apps_timezone_applies_to_crontabs_without_one(app: Conveyor) -> None:
    app.conf.timezone = "Europe/Berlin"
    app.conf.beat_schedule = {"nightly": {"task": "t.ping", "schedule": crontab(minute=30, hour=2)}}
    Scheduler(app).prepare()
    assert app.schedules.get("nightly").schedule.describe() == "at 02:30 (Europe/Berlin)"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"task": "t.ping", "schedule": "61 * * * *"}, "invalid cron expression '61 * * * *'"),
        ({"task": "t.ping", "schedule": "*/0 * * * *"}, "invalid cron expression"),
        ({"task": "t.ping", "schedule": 0}, "interval must be at least 1 ms"),
        ({"task": "t.ping", "schedule": -5.0}, "interval must be at least 1 ms"),
        ({"task": "t.ping", "schedule": timedelta(0)}, "interval must be at least 1 ms"),
        ({"task": "t.ping", "schedule": "hourly"}, "is not a cron expression"),
        ({"task": "t.nope", "schedule": 10}, "unknown task 't.nope'"),
        ({"task": "t.add", "schedule": 10, "args": [1]}, "wrong arguments"),
        ({"task": "t.ping", "schedule": 10, "options": {"priority": 11}}, "from 0 to 9"),
        ({"task": "t.ping", "schedule": 10, "options": {"expires": -1}}, "'expires' must be > 0"),
        ({"task": "t.ping", "schedule": 10, "options": {"exchange": "x"}}, "unknown option(s) ['exchange']"),
        ({"task": "t.ping", "schedule": 10, "args": [object()]}, "JSON-serialisable"),
        ({"task": "t.ping", "schedule": 10, "catch_up": "twice"}, "invalid catch-up policy 'twice'"),
        ({"task": "t.ping", "schedule": 10, "relative": True}, "unknown key(s) ['relative']"),
        ({"schedule": 10}, "missing 'task'"),
    ],
)
def test_a_bad_declaration_is_refused_in_one_line_and_nothing_is_saved(
    app: Conveyor, item: dict[str, Any], message: str
) -> None:
    app.conf.beat_schedule = {"a-good-one": {"task": "t.ping", "schedule": 10}, "bad": item}
    with pytest.raises(EntryError) as info:
        Scheduler(app).prepare()
    text = str(info.value)
    assert message in text and "\n" not in text and "'bad'" in text
    assert names(app) == []


def test_an_unknown_timezone_is_refused(app: Conveyor) -> None:
    app.conf.timezone = "Mars/Olympus_Mons"
    app.conf.beat_schedule = {"x": {"task": "t.ping", "schedule": "0 4 * * *"}}
    with pytest.raises(EntryError, match="unknown timezone 'Mars/Olympus_Mons'"):
        Scheduler(app).prepare()
    with pytest.raises(EntryError, match="unknown timezone"):
        app.schedules.add("y", "t.ping", "0 4 * * *")  # the app's zone applies
    assert names(app) == []


def test_add_periodic_task_and_the_decorator_declare_entries(app: Conveyor) -> None:
    ping = app.tasks["t.ping"]
    assert app.add_periodic_task(10.0, ping, args=(1,), name="ten", queue="polling", expires=10) == "ten"
    assert app.add_periodic_task(10.0, ping, args=(1,), name="ten", queue="polling", expires=10) == "ten"
    with pytest.raises(EntryError, match="already declared differently"):
        app.add_periodic_task(20.0, ping, name="ten")
    with pytest.raises(EntryError, match="invalid cron"):
        app.add_periodic_task("99 * * * *", "t.ping", name="bad")

    @app.periodic_task(crontab(minute=0, hour=4, day_of_week="sun"), options={"queue": "database"})
    def vacuum() -> str:
        return "done"

    assert vacuum() == "done" and vacuum.name in app.tasks
    assert set(app.conf.beat_schedule) == {"ten", vacuum.name}
    assert Conveyor("other", broker="memory://other").conf.beat_schedule == {}  # not shared
    Scheduler(app).prepare()
    stored = app.schedules.get(vacuum.name)
    assert stored is not None and stored.entry.options == {"queue": "database"}
    assert app.schedules.get("ten").entry.options == {"queue": "polling", "expires": 10.0}  # type: ignore[union-attr]


def test_sync_keeps_runtime_changes_while_the_declaration_is_unchanged(app: Conveyor) -> None:
    app.conf.beat_schedule = {"poll": {"task": "t.ping", "schedule": 2.0}}
    Scheduler(app).prepare()
    app.schedules.disable("poll")
    app.schedules.update("poll", options={"expires": 2})
    report = Scheduler(app).prepare()  # a restart with the same code
    assert report.unchanged == ["poll"]
    poll = app.schedules.get("poll")
    assert poll is not None and not poll.enabled and poll.entry.options == {"expires": 2.0}


def test_sync_applies_a_changed_declaration_but_keeps_enabled_and_state(app: Conveyor) -> None:
    app.conf.beat_schedule = {"poll": {"task": "t.ping", "schedule": 2.0}}
    s = Scheduler(app)
    s.prepare()
    s.tick(T0)
    s.tick(T0 + 2)
    app.schedules.disable("poll")
    app.conf.beat_schedule = {"poll": {"task": "t.ping", "schedule": 5.0, "options": {"queue": "polling"}}}
    report = Scheduler(app).prepare()  # a deploy with a new declaration
    assert report.updated == ["poll"]
    poll = app.schedules.get("poll")
    assert poll is not None and poll.schedule == every(5) and poll.entry.options == {"queue": "polling"}
    assert not poll.enabled and poll.total_runs == 2 and poll.entry.source == "declared"


def test_sync_removes_only_entries_this_app_declared_and_no_longer_declares(app: Conveyor) -> None:
    app.conf.beat_schedule = {
        "old": {"task": "t.ping", "schedule": 60.0},
        "kept": {"task": "t.ping", "schedule": 60.0},
    }
    Scheduler(app).prepare()
    app.schedules.add("runtime", "t.ping", 30.0)
    other = make_app(app.conf.broker(), name="other-app")
    other.conf.beat_schedule = {"theirs": {"task": "t.ping", "schedule": 60.0}}
    Scheduler(other).prepare()
    app.conf.beat_schedule = {"kept": {"task": "t.ping", "schedule": 60.0}}
    report = Scheduler(app).prepare()
    assert report.removed == ["old"]
    assert names(app) == ["kept", "runtime", "theirs"]


def test_runtime_api_add_update_enable_disable_remove(app: Conveyor) -> None:
    added = app.schedules.add("scrape", "t.ping", "0 */6 * * *", options={"queue": "database"})
    assert added.enabled and added.entry.source == "runtime" and added.next_run is not None
    with pytest.raises(EntryError, match="already exists"):
        app.schedules.add("scrape", "t.ping", 60.0)
    with pytest.raises(EntryError, match="unknown task"):
        app.schedules.add("nope", "t.nope", 60.0)
    assert app.schedules.add("nope", "t.nope", 60.0, check_task=False).task == "t.nope"
    replaced = app.schedules.add("scrape", "t.ping", 60.0, replace=True)
    assert replaced.schedule == every(60) and replaced.entry.id == added.entry.id
    assert app.schedules.update("scrape", args=["x"]).entry.args == ("x",)
    assert app.schedules.disable("scrape").next_run is None
    assert app.schedules.enable("scrape").enabled
    with pytest.raises(EntryError, match="interval must be"):
        app.schedules.update("scrape", schedule=0)
    assert app.schedules.get("scrape").schedule == every(60)  # type: ignore[union-attr]
    assert app.schedules.remove("scrape") and not app.schedules.remove("scrape")
    with pytest.raises(EntryError, match="no periodic entry named 'scrape'"):
        app.schedules.enable("scrape")
    assert names(app) == ["nope"]


def test_run_now_sends_once_and_counts_without_moving_the_cursor(app: Conveyor) -> None:
    app.schedules.add("vacuum", "t.ping", crontab(minute=0, hour=4), args=["full"])
    s = Scheduler(app)
    s.tick(T0)
    cursor = app.schedules.get("vacuum").state.last_slot  # type: ignore[union-attr]
    result = app.schedules.run_now("vacuum")
    assert result.id.startswith("beat:vacuum:run:")
    jobs = drain(app.broker)
    assert [(j.id, j.args) for j in jobs] == [(result.id, ["full"])]
    after = app.schedules.get("vacuum")
    assert after is not None and after.total_runs == 1 and after.state.last_slot == cursor  # type: ignore[union-attr]
    s.tick(utc(2026, 11, 22, 4, 0))
    assert slots_of(drain(app.broker), "vacuum") == [utc(2026, 11, 22, 4, 0)]


def test_entries_and_their_state_survive_a_restart(broker_url: str) -> None:
    declared = {"poll": {"task": "t.ping", "schedule": 10.0}}
    first = make_app(broker_url)
    first.conf.beat_schedule = dict(declared)
    s = Scheduler(first)
    s.prepare()
    s.tick(T0)
    s.tick(T0 + 10)
    first.schedules.add("runtime", "t.ping", 30.0)
    first.schedules.disable("runtime")
    drain(first.broker)
    first.close()

    second = make_app(broker_url)  # a new process: everything comes from the broker
    second.conf.beat_schedule = dict(declared)
    s2 = Scheduler(second)
    assert s2.prepare().unchanged == ["poll"]
    poll, runtime = second.schedules.get("poll"), second.schedules.get("runtime")
    assert poll is not None and poll.total_runs == 2 and poll.state.last_slot == T0 + 10  # type: ignore[union-attr]
    assert runtime is not None and not runtime.enabled
    s2.tick(T0 + 35)  # down for 25 s: the default policy runs the missed slots once
    assert slots_of(drain(second.broker), "poll") == [T0 + 30]
    second.close()


def test_bad_names_and_values_are_refused_before_anything_is_stored(app: Conveyor) -> None:
    for bad in ("", " padded ", "two\nlines", "x" * 201):
        with pytest.raises(EntryError, match="name"):
            app.schedules.add(bad, "t.ping", 10.0)
    with pytest.raises(EntryError, match="'args' must be a list or tuple"):
        build_entry("x", "t.ping", 10.0, args="abc")
    with pytest.raises(EntryError, match="'countdown' must be >= 0"):
        build_entry("x", "t.ping", 10.0, options={"countdown": -1})
    assert names(app) == []


def test_a_scheduler_may_skip_the_task_check_and_send_by_name(app: Conveyor) -> None:
    app.conf.beat_schedule = {"remote": {"task": "elsewhere.tasks.crunch", "schedule": 60.0}}
    with pytest.raises(EntryError, match=r"unknown task 'elsewhere\.tasks\.crunch'"):
        Scheduler(app).prepare()
    s = Scheduler(app)
    s.prepare(check_tasks=False)  # conveyor beat --no-task-check
    s.tick(T0)
    assert [job.task for job in drain(app.broker)] == ["elsewhere.tasks.crunch"]

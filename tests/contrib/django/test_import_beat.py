"""``manage.py conveyor_import_beat``: django_celery_beat's rows become Conveyor schedule entries."""

from __future__ import annotations

from tests.procs import wait_for

from .project import DjangoProject

ROWS = """
import json
from datetime import timedelta
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask, SolarSchedule

every_10s = IntervalSchedule.objects.create(every=10, period=IntervalSchedule.SECONDS)
every_2h = IntervalSchedule.objects.create(every=2, period=IntervalSchedule.HOURS)
nightly = CrontabSchedule.objects.create(
    minute="30", hour="2", day_of_week="mon-fri", timezone="Europe/Berlin"
)
PeriodicTask.objects.create(
    name="count every 10s", task="orders.tasks.count_orders", interval=every_10s,
    queue="default", expire_seconds=5,
)
PeriodicTask.objects.create(
    name="invoice nightly", task="billing.tasks.invoice_total", crontab=nightly,
    args=json.dumps([25]), queue="billing", priority=7,
)
PeriodicTask.objects.create(
    name="paid check", task="orders.tasks.mark_paid", interval=every_2h,
    kwargs=json.dumps({"order_id": 1}), enabled=False,
)
PeriodicTask.objects.create(
    name="expired", task="orders.tasks.count_orders", interval=every_2h,
    expires=timezone.now() - timedelta(days=1),
)
PeriodicTask.objects.create(name="once", task="orders.tasks.count_orders", interval=every_2h, one_off=True)
PeriodicTask.objects.create(
    name="sunrise", task="orders.tasks.count_orders",
    solar=SolarSchedule.objects.create(event="sunrise", latitude=52.5, longitude=13.4),
)
PeriodicTask.objects.create(name="celery.backend_cleanup", task="celery.backend_cleanup", crontab=nightly)
"""

ENTRIES = """
report({
    e.name: {
        "task": e.task, "schedule": e.schedule.describe(), "args": list(e.entry.args),
        "kwargs": dict(e.entry.kwargs), "options": dict(e.entry.options), "enabled": e.enabled,
    }
    for e in app.schedules.entries() if e.entry.source == "runtime"
})
"""


def test_import_beat_turns_interval_and_crontab_rows_into_schedule_entries(project: DjangoProject) -> None:
    project.run(ROWS + "report(PeriodicTask.objects.count())")
    done = project.manage("conveyor_import_beat")
    assert done.returncode == 0, done.stderr
    assert "imported 4 entries, 1 one-off, skipped 2, failed 0" in done.stdout
    entries = project.run(ENTRIES)
    count, invoice = entries["count every 10s"], entries["invoice nightly"]
    assert count["task"] == "orders.tasks.count_orders" and count["enabled"] is True
    assert count["options"] == {"queue": "default", "expires": 5.0}
    assert "10" in count["schedule"]
    assert invoice["args"] == [25] and invoice["options"] == {"queue": "billing", "priority": 7}
    assert "02:30" in invoice["schedule"] and "Europe/Berlin" in invoice["schedule"]
    assert entries["paid check"]["kwargs"] == {"order_id": 1} and entries["paid check"]["enabled"] is False
    assert entries["expired"]["enabled"] is False  # its django_celery_beat expiry date has passed
    assert sorted(entries) == ["count every 10s", "expired", "invoice nightly", "paid check"]
    assert "skipped  sunrise: solar schedules are not supported" in done.stdout
    assert "skipped  celery.backend_cleanup" in done.stdout
    once = project.run("report(app.AsyncResult('beat-import:once').state)")
    assert once == "PENDING"  # a one-off row: one task, waiting for its slot


def test_importing_again_updates_the_entries_and_keeps_the_rows_enabled_flag(project: DjangoProject) -> None:
    project.run(ROWS + "report(0)")
    assert project.manage("conveyor_import_beat").returncode == 0
    project.run(
        """
        from django_celery_beat.models import PeriodicTask
        PeriodicTask.objects.filter(name="count every 10s").update(enabled=False, queue="other")
        PeriodicTask.objects.filter(name="paid check").update(enabled=True)
        report(0)
        """
    )
    again = project.manage("conveyor_import_beat")
    assert again.returncode == 0, again.stderr
    entries = project.run(ENTRIES)
    assert entries["count every 10s"]["enabled"] is False
    assert entries["count every 10s"]["options"]["queue"] == "other"
    assert entries["paid check"]["enabled"] is True
    assert project.run("report(sum(s.ready + s.delayed for s in app.broker.queue_stats().values()))") == 1


def test_a_row_that_cannot_be_imported_is_reported_and_the_others_are_imported(
    project: DjangoProject,
) -> None:
    project.run(
        """
        from django_celery_beat.models import IntervalSchedule, PeriodicTask
        every = IntervalSchedule.objects.create(every=5, period=IntervalSchedule.MINUTES)
        PeriodicTask.objects.create(
            name="bad json", task="orders.tasks.count_orders", interval=every, args="[1,"
        )
        PeriodicTask.objects.create(name="gone", task="orders.tasks.removed_long_ago", interval=every)
        PeriodicTask.objects.create(name="good", task="orders.tasks.count_orders", interval=every)
        report(0)
        """
    )
    dry = project.manage("conveyor_import_beat", "--dry-run")
    assert "would import 1 entry" in dry.stdout and project.run(ENTRIES) == {}
    done = project.manage("conveyor_import_beat")
    assert done.returncode == 1
    assert "failed   bad json: args is not valid JSON" in done.stdout
    assert "failed   gone:" in done.stdout and "removed_long_ago" in done.stdout
    assert "2 periodic task(s) not imported: bad json, gone" in done.stderr
    assert sorted(project.run(ENTRIES)) == ["good"]


def test_an_imported_entry_runs_on_a_worker_with_beat(project: DjangoProject) -> None:
    project.run(
        """
        from django_celery_beat.models import IntervalSchedule, PeriodicTask
        every = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.SECONDS)
        PeriodicTask.objects.create(name="tick", task="orders.tasks.count_orders", interval=every)
        report(0)
        """
    )
    assert project.manage("conveyor_import_beat").returncode == 0
    worker = project.worker("--beat").wait_ready()
    try:

        def ran() -> bool:
            entry = project.run("e = app.schedules.get('tick'); report(e.total_runs if e else 0)")
            return bool(entry)

        wait_for(ran, timeout=30, interval=0.5)
        result = project.run(
            """
            e = app.schedules.get("tick")
            report(app.AsyncResult(e.state.last_task_id).get(timeout=30))
            """
        )
        assert result == 0
    finally:
        worker.stop()


def test_import_beat_without_django_celery_beat_installed_says_so(project: DjangoProject) -> None:
    project.env["PROJ_WITHOUT_BEAT"] = "1"
    done = project.manage("conveyor_import_beat")
    assert done.returncode == 1
    assert "django_celery_beat is not in INSTALLED_APPS" in done.stderr
    assert "Traceback" not in done.stderr

"""``conveyor -A proj`` commands other than the worker, in a Django project."""

from __future__ import annotations

from .project import DjangoProject


def test_call_and_schedule_add_know_the_autodiscovered_tasks(project: DjangoProject) -> None:
    called = project.command("call", "billing.tasks.invoice_total", "--args", "[3]")
    assert called.returncode == 0, called.stderr
    task_id = called.stdout.strip()
    added = project.command("schedule", "add", "hourly-count", "orders.tasks.count_orders", "1h")
    assert added.returncode == 0, added.stderr
    got = project.run(
        f"""
        stats = app.broker.queue_stats()
        report([app.AsyncResult("{task_id}").state, sorted(stats), app.schedules.get("hourly-count").task])
        """
    )
    assert got == ["PENDING", ["billing"], "orders.tasks.count_orders"]  # routed by CELERY_TASK_ROUTES

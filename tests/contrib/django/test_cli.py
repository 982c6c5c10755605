"""``conveyor -A proj`` commands other than the worker, in a Django project."""

from __future__ import annotations

import subprocess
import sys

from .project import PROJECT, DjangoProject


def conveyor(project: DjangoProject, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conveyor", "-A", "proj", *args],
        check=False,
        cwd=PROJECT,
        env=project.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_call_and_schedule_add_know_the_autodiscovered_tasks(project: DjangoProject) -> None:
    called = conveyor(project, "call", "billing.tasks.invoice_total", "--args", "[3]")
    assert called.returncode == 0, called.stderr
    task_id = called.stdout.strip()
    added = conveyor(project, "schedule", "add", "hourly-count", "orders.tasks.count_orders", "1h")
    assert added.returncode == 0, added.stderr
    got = project.run(
        f"""
        stats = app.broker.queue_stats()
        report([app.AsyncResult("{task_id}").state, sorted(stats), app.schedules.get("hourly-count").task])
        """
    )
    assert got == ["PENDING", ["billing"], "orders.tasks.count_orders"]  # routed by CELERY_TASK_ROUTES

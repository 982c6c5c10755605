"""A real worker of the test Django project: ``conveyor -A proj worker`` from the project's directory."""

from __future__ import annotations

import json

import pytest

from tests.procs import wait_for

from . import postgres
from .project import DjangoProject


def test_the_worker_runs_tasks_of_two_installed_apps_found_by_autodiscover(project: DjangoProject) -> None:
    worker = project.worker("-Q", "default,billing", "-c", "2").wait_ready()
    try:
        got = project.run(
            """
            from orders.models import Order
            from orders.tasks import mark_paid
            from billing.tasks import invoice_total

            order = Order.objects.create(number="C-1")
            paid = mark_paid.delay(order.pk).get(timeout=30)
            invoice = invoice_total.delay(25)
            report({
                "paid": paid,
                "is_paid": Order.objects.get(pk=order.pk).paid,
                "invoice": invoice.get(timeout=30),
                "ping": app.send_task("orders.tasks.ping").get(timeout=30),
            })
            """
        )
        assert got == {"paid": "C-1", "is_paid": True, "invoice": 25, "ping": "pong"}
        log = worker.log()
        assert "orders.tasks.mark_paid" in log and "billing.tasks.invoice_total" in log
        assert "raised" not in log  # no signal handler of the fix-up failed, async task included
    finally:
        worker.stop()


@pytest.mark.parametrize(
    "pool",
    ["solo", "threads", "processes", "processes --pool-start-method spawn"],
    ids=["solo", "threads", "processes-fork", "processes-spawn"],
)
def test_an_orm_task_keeps_working_after_its_database_connection_broke(
    project: DjangoProject, pool: str
) -> None:
    # break_connection closes the worker thread's connection behind Django's back, as a database
    # restart does. The fix-up closes it after the task, so the next task connects afresh
    # instead of failing on the dead connection (and so would every task after it).
    worker = project.worker("-P", *pool.split(), "-c", "1").wait_ready()
    try:
        got = project.run(
            """
            from orders.models import Order
            from orders.tasks import break_connection, count_orders

            Order.objects.create(number="D-1")
            counts = []
            for _ in range(3):
                break_connection.delay().get(timeout=30)
                counts.append(count_orders.delay().get(timeout=30))
            report(counts)
            """
        )
        assert got == [1, 1, 1]
    finally:
        worker.stop()


def test_worker_processes_do_not_use_the_database_connection_of_the_process_they_forked_from(
    project: DjangoProject,
) -> None:
    # probes.py opens a connection in the supervisor before it forks the two worker processes;
    # a child using it would share the parent's socket (with PostgreSQL: break it on close).
    project.env["PROBE_DIR"] = str(project.workdir)
    worker = project.conveyor(
        "worker", "-l", "info", "-n", "p@%h", "--processes", "2", name="p", app="probes"
    ).wait_ready()
    try:
        wait_for(lambda: len(list(project.workdir.glob("child-*.json"))) == 2, timeout=30)
        children = [json.loads(p.read_text()) for p in project.workdir.glob("child-*.json")]
        assert children == [{"forked": True, "inherited": False}] * 2
        got = project.run(
            """
            from orders.tasks import count_orders
            report([count_orders.delay().get(timeout=30) for _ in range(4)])
            """
        )
        assert got == [0, 0, 0, 0]
    finally:
        worker.stop()


def test_a_postgresql_restart_fails_at_most_one_task_per_connection(
    pg_project: DjangoProject, postgres_server: postgres.PostgresServer
) -> None:
    # Persistent connections (CONN_MAX_AGE=None): after a restart the worker's connection is
    # dead. Without the fix-up every later task fails on it; with it, the first task to meet it
    # fails and the connection is closed after it, so the next ones reconnect.
    worker = pg_project.worker("-P", "solo").wait_ready()
    try:
        assert (
            pg_project.run(
                "from orders.tasks import count_orders\nreport(count_orders.delay().get(timeout=30))"
            )
            == 0
        )
        postgres_server.restart()
        outcomes = pg_project.run(
            """
            from orders.tasks import count_orders
            outcomes = []
            for _ in range(4):
                try:
                    outcomes.append(count_orders.delay().get(timeout=30))
                except Exception as exc:
                    outcomes.append(type(exc).__name__)
            report(outcomes)
            """
        )
        assert outcomes[1:] == [0, 0, 0], outcomes
        assert outcomes[0] in (0, "OperationalError", "InterfaceError"), outcomes
    finally:
        worker.stop()

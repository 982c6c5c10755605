"""delay_on_commit / apply_async_on_commit: a task is sent when its transaction commits, never on rollback."""

from __future__ import annotations

from .project import DjangoProject


def test_a_task_enqueued_on_commit_is_sent_after_commit_and_never_on_rollback(project: DjangoProject) -> None:
    got = project.run(
        """
        from django.db import transaction
        from orders.models import Order
        from orders.tasks import mark_paid

        def state(result):
            return app.AsyncResult(result.id).state

        with transaction.atomic():
            order = Order.objects.create(number="A-1")
            committed = mark_paid.delay_on_commit(order.pk)
            inside = state(committed)
        after_commit = state(committed)

        rolled_back = None
        try:
            with transaction.atomic():
                order = Order.objects.create(number="A-2")
                rolled_back = mark_paid.apply_async_on_commit((order.pk,), queue="default", countdown=0)
                raise RuntimeError("rollback")
        except RuntimeError:
            pass

        outside = mark_paid.delay_on_commit(order.pk)  # autocommit: sent at once, as Django does
        report({
            "inside": inside,
            "after_commit": after_commit,
            "rolled_back": state(rolled_back),
            "outside": state(outside),
            "ready": sum(s.ready for s in app.broker.queue_stats().values()),
        })
        """
    )
    assert got == {
        "inside": "UNKNOWN",
        "after_commit": "PENDING",
        "rolled_back": "UNKNOWN",
        "outside": "PENDING",
        "ready": 2,
    }


def test_apply_async_on_commit_waits_for_the_transaction_of_the_database_named_by_using(
    project: DjangoProject,
) -> None:
    got = project.run(
        """
        from django.db import transaction
        from orders.tasks import count_orders

        with transaction.atomic(using="archive"):
            on_archive = count_orders.apply_async_on_commit(using="archive")
            on_default = count_orders.apply_async_on_commit()  # default has no transaction open
            during = [app.AsyncResult(r.id).state for r in (on_archive, on_default)]
        after = [app.AsyncResult(r.id).state for r in (on_archive, on_default)]
        report({"during": during, "after": after})
        """
    )
    assert got == {"during": ["UNKNOWN", "PENDING"], "after": ["PENDING", "PENDING"]}


def test_bad_arguments_fail_in_the_caller_not_at_commit(project: DjangoProject) -> None:
    got = project.run(
        """
        from django.db import transaction
        from orders.tasks import mark_paid

        errors = []
        with transaction.atomic():
            for call in (lambda: mark_paid.delay_on_commit(), lambda: mark_paid.delay_on_commit(object())):
                try:
                    call()
                except Exception as exc:
                    errors.append(type(exc).__name__)
        report({"errors": errors, "ready": sum(s.ready for s in app.broker.queue_stats().values())})
        """
    )
    assert got["ready"] == 0
    assert got["errors"][0] == "TypeError" and len(got["errors"]) == 2


def test_a_view_whose_transaction_rolls_back_enqueues_nothing(project: DjangoProject) -> None:
    got = project.run(
        """
        from django.test import Client
        from orders.models import Order

        client = Client(raise_request_exception=False)
        failed = client.get("/orders/", {"number": "B-1", "fail": "1"})
        ready_after_failure = sum(s.ready for s in app.broker.queue_stats().values())
        ok = client.get("/orders/", {"number": "B-2"})
        report({
            "failed": failed.status_code,
            "ready_after_failure": ready_after_failure,
            "ok": ok.status_code,
            "state": app.AsyncResult(ok.json()["task_id"]).state,
            "orders": list(Order.objects.values_list("number", flat=True)),
        })
        """
    )
    assert got == {"failed": 500, "ready_after_failure": 0, "ok": 200, "state": "PENDING", "orders": ["B-2"]}

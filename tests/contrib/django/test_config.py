"""A Django project's settings under CELERY_ are the app's settings; its apps' tasks are found."""

from __future__ import annotations

from .project import DjangoProject


def test_celery_namespaced_django_settings_are_the_apps_settings(project: DjangoProject) -> None:
    got = project.run(
        """
        import os
        import warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            conf = app.conf
        report({
            "broker": conf.broker_url,
            "routes": conf.task_routes,
            "time_limit": conf.task_time_limit,
            "soft_time_limit": conf.task_soft_time_limit,
            "prefetch": conf.worker_prefetch_multiplier,
            "beat": sorted(conf.beat_schedule),
            "warnings": [str(w.message) for w in caught],
            "where": [
                (os.path.basename(w.filename), open(w.filename).read().splitlines()[w.lineno - 1])
                for w in caught
            ],
        })
        """,
        setup=False,
    )
    assert got["broker"] == project.broker_url
    assert got["routes"] == {"billing.tasks.*": {"queue": "billing"}}
    assert got["time_limit"] == 1800.0 and got["soft_time_limit"] == 1680.0
    assert got["prefetch"] == 2
    assert got["beat"] == ["count-orders"]
    # CELERY_RESULT_BACKEND = None is accepted silently; a setting Conveyor does not read is not.
    assert got["warnings"] == [
        "Celery setting 'result_extended' has no effect in Conveyor; it is kept, but not read "
        "(docs/migrating-from-celery.md) (set as CELERY_RESULT_EXTENDED)"
    ]
    # The settings are read lazily, from wherever app.conf is first used: the warning still
    # points at the line of settings.py (Django's SETTINGS_MODULE) that sets it.
    [(file, line)] = got["where"]
    assert file == "settings.py" and line.startswith("CELERY_RESULT_EXTENDED ="), got["where"]


def test_autodiscover_registers_the_tasks_of_every_installed_app(project: DjangoProject) -> None:
    names = project.run("report(sorted(n for n in app.tasks if not n.startswith('conveyor.')))")
    assert names == [
        "billing.tasks.invoice_total",
        "orders.tasks.break_connection",
        "orders.tasks.count_orders",
        "orders.tasks.mark_paid",
        "orders.tasks.ping",
        "proj.conveyor.debug_task",
    ]


def test_autodiscover_waits_until_django_is_set_up(project: DjangoProject) -> None:
    # Reading the registry before django.setup() must neither fail nor import models too early.
    got = project.run(
        """
        before = sorted(n for n in app.tasks if n.startswith("orders."))
        import django
        django.setup()
        after = sorted(n for n in app.tasks if n.startswith("orders."))
        report([before, after])
        """,
        setup=False,
    )
    orders = [
        "orders.tasks.break_connection",
        "orders.tasks.count_orders",
        "orders.tasks.mark_paid",
        "orders.tasks.ping",
    ]
    assert got == [[], orders]

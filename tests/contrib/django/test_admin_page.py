"""The staff page for Conveyor's periodic entries inside the Django admin (contrib/django/views.py)."""

from __future__ import annotations

from .project import DjangoProject

PAGE = "/admin/conveyor/schedules/"


def test_staff_list_disable_enable_and_run_an_entry_from_the_admin_page(project: DjangoProject) -> None:
    got = project.run(
        f"""
        from django.contrib.auth.models import User
        from django.test import Client

        app.schedules.add("count", "orders.tasks.count_orders", 3600.0, options={{"queue": "default"}})
        client = Client()
        client.force_login(User.objects.create_user("ops", is_staff=True))
        listed = client.get("{PAGE}").content.decode()
        disabled = client.post("{PAGE}", {{"action": "disable", "name": "count"}})
        after_disable = app.schedules.get("count").enabled
        client.post("{PAGE}", {{"action": "enable", "name": "count"}})
        after_enable = app.schedules.get("count").enabled
        ran = client.post("{PAGE}", {{"action": "run", "name": "count"}}, follow=True).content.decode()
        missing = client.post("{PAGE}", {{"action": "disable", "name": "nope"}}, follow=True).content.decode()
        client.post("{PAGE}", {{"action": "remove", "name": "count"}})
        report({{
            "listed": "orders.tasks.count_orders" in listed and "every 1h" in listed,
            "redirect": disabled.status_code,
            "after_disable": after_disable,
            "after_enable": after_enable,
            "ran": "count: sent as task beat:count:run:" in ran.lower(),
            "missing": "no periodic entry named" in missing.lower(),
            "removed": app.schedules.get("count") is None,
        }})
        """
    )
    assert got == {
        "listed": True,
        "redirect": 302,
        "after_disable": False,
        "after_enable": True,
        "ran": True,
        "missing": True,
        "removed": True,
    }


def test_the_admin_page_is_refused_to_users_who_are_not_staff(project: DjangoProject) -> None:
    got = project.run(
        f"""
        from django.contrib.auth.models import User
        from django.test import Client

        client = Client()
        anonymous = client.get("{PAGE}").status_code
        client.force_login(User.objects.create_user("visitor"))
        visitor = client.post("{PAGE}", {{"action": "remove", "name": "x"}}).status_code
        report([anonymous, visitor])
        """
    )
    assert got == [403, 403]

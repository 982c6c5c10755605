"""A page in the Django admin for Conveyor's periodic entries: list, enable, disable, run now, remove.

    # urls.py, before admin.site.urls
    path("admin/conveyor/", include("conveyor.contrib.django.urls")),

Staff only. The entries live in the broker (``app.schedules``), so this page and
``conveyor schedule ...`` show and change the same thing; changes reach running schedulers
within a second. Adding an entry or changing its schedule is done in code or with
``conveyor schedule add`` (docs/django.md).
"""

from __future__ import annotations

import time
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import render

from ...beat.display import format_ago, format_next_run
from ...beat.entry import EntryError
from ...registry import current_app

ACTIONS = ("enable", "disable", "run", "remove")


def schedules(request: HttpRequest) -> HttpResponse:
    """The list (GET) and its actions (POST ``action`` and ``name``, then back to the list)."""
    if request.method not in ("GET", "POST"):
        return HttpResponseNotAllowed(["GET", "POST"])
    user = request.user
    if not (user.is_active and user.is_staff):
        raise PermissionDenied("Conveyor's schedules are for staff users")
    app = current_app()
    if request.method == "POST":
        _act(request, app)
        return HttpResponseRedirect(request.path)
    now = time.time()
    rows = [
        {
            "name": e.name,
            "task": e.task,
            "schedule": e.schedule.describe(),
            "enabled": e.enabled,
            "next_run": format_next_run(e.next_run, now),
            "last_run": format_ago(e.last_run_at, now),
            "total_runs": e.total_runs,
            "last_error": e.last_error or "",
        }
        for e in app.schedules.entries()
    ]
    return render(request, "conveyor/schedules.html", {**_admin_context(request), "rows": rows})


def _act(request: HttpRequest, app: Any) -> None:
    action, name = request.POST.get("action", ""), request.POST.get("name", "")
    if action not in ACTIONS or not name:
        messages.error(request, f"unknown action {action!r}")
        return
    try:
        if action == "enable":
            app.schedules.enable(name)
        elif action == "disable":
            app.schedules.disable(name)
        elif action == "run":
            messages.info(request, f"{name}: sent as task {app.schedules.run_now(name).id}")
            return
        elif not app.schedules.remove(name):
            raise EntryError(f"no periodic entry named {name!r}")
    except EntryError as exc:
        messages.error(request, str(exc))
        return
    messages.success(request, f"{name}: {action}d" if action != "remove" else f"{name}: removed")


def _admin_context(request: HttpRequest) -> dict[str, Any]:
    """The admin's page context (site header, user links), when the admin is installed."""
    from django.apps import apps

    if not apps.is_installed("django.contrib.admin"):
        return {"title": "Periodic tasks"}
    from django.contrib import admin

    return {**admin.site.each_context(request), "title": "Conveyor periodic tasks"}

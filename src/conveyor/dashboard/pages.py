"""The dashboard's pages (GET): each reads ``app.admin`` and renders one template.

Endpoints are plain functions: Starlette runs them in its thread pool, so the blocking broker
reads never stall the event loop (and a slow page never delays another).
"""

from __future__ import annotations

import time
from typing import Any

import click
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..admin import DeadFilter, TaskInfo, UnknownName
from ..admin import schedules as admin_schedules
from ..admin.history import LISTED, search_bound_note
from ..app import Conveyor
from ..cli.history import When
from . import chart
from .render import base, page, urlpart

PAGE_SIZE = 50
CHART_HOURS = 3


def conveyor(request: Request) -> Conveyor:
    found: Conveyor = request.app.state.conveyor
    return found


def _offset(request: Request) -> int:
    try:
        return max(0, int(request.query_params.get("offset", "0")))
    except ValueError:
        return 0


def _text(request: Request, name: str) -> str | None:
    value = request.query_params.get(name, "").strip()
    return value or None


def overview(request: Request) -> HTMLResponse:
    admin = conveyor(request).admin
    now = int(time.time()) // 60 * 60
    minutes = CHART_HOURS * 60
    start = now - (minutes - 1) * 60
    counts = admin.counters(since=start, until=now + 60)
    drawn = chart.per_minute(counts, start, minutes)
    return page(
        request,
        "overview.html",
        workers=admin.workers(),
        queues=admin.queues(),
        chart=chart.svg(drawn),
        last_hour=sum(drawn.processed[-60:]),
        failed_hour=sum(drawn.failed[-60:]),
        failures=admin.tasks(state="failed", limit=10).items,
    )


def queues(request: Request) -> HTMLResponse:
    return page(request, "queues.html", queues=conveyor(request).admin.queues())


def purge_confirm(request: Request) -> HTMLResponse:
    name = request.path_params["name"]
    try:
        queue = conveyor(request).admin.queue(name)
    except UnknownName as exc:
        return page(request, "error.html", status=404, message=str(exc))
    return page(request, "purge.html", queue=queue)


def workers(request: Request) -> HTMLResponse:
    return page(request, "workers.html", workers=conveyor(request).admin.workers(include_gone=True))


def tasks(request: Request) -> Response:
    task_id = _text(request, "id")
    if task_id:
        return RedirectResponse(f"{base(request)}/tasks/{urlpart(task_id)}", status_code=303)
    form = {k: _text(request, k) for k in ("name", "state", "queue", "since", "until", "search")}
    errors: list[str] = []
    bounds: dict[str, float | None] = {}
    for key in ("since", "until"):
        value = form[key]
        try:
            bounds[key] = When().convert(value, None, None) if value else None
        except click.BadParameter as exc:
            errors.append(f"{key}: {exc.message}")
            bounds[key] = None
    items: tuple[Any, ...] = ()
    next_offset = None
    bound_note: str | None = None
    offset = _offset(request)
    if form["state"] is not None and form["state"] not in LISTED:
        errors.append(f"unknown state {form['state']!r}")
    if not errors:
        found = conveyor(request).admin.tasks(
            state=form["state"],
            name=form["name"],
            queue=form["queue"],
            since=bounds["since"],
            until=bounds["until"],
            search=form["search"],
            limit=PAGE_SIZE,
            offset=offset,
        )
        items, next_offset = found.items, found.next_offset
        bound_note = search_bound_note(found)
    return page(
        request,
        "tasks.html",
        bound_note=bound_note,
        status=400 if errors else 200,
        form=form,
        states=LISTED,
        tasks=items,
        errors=errors,
        offset=offset,
        next_offset=next_offset,
        page_size=PAGE_SIZE,
    )


def task(request: Request) -> HTMLResponse:
    task_id = request.path_params["task_id"]
    try:
        info = conveyor(request).admin.task(task_id)
    except UnknownName as exc:
        return page(request, "error.html", status=404, message=str(exc))
    return page(request, "task.html", task=info, timeline=timeline(info), progress=info.progress)


def timeline(info: TaskInfo) -> list[tuple[float, str]]:
    """The task's events in time order: enqueued, each failed attempt, started, finished."""
    events: list[tuple[float, str]] = []
    if info.enqueued:
        events.append((info.enqueued, f"enqueued on {info.queue}"))
    for a in info.attempts:
        events.append((a.at, f"attempt {a.attempt} {a.state}" + (f": {a.error}" if a.error else "")))
    if info.started:
        events.append((info.started, f"attempt {info.attempts_made} started on {info.worker or '?'}"))
    if info.finished:
        events.append((info.finished, f"attempt {info.attempts_made} ended: {info.state}"))
    if info.next_attempt:
        events.append((info.next_attempt, "next attempt due"))
    return sorted(events)


def scheduled(request: Request) -> HTMLResponse:
    offset = _offset(request)
    found = conveyor(request).admin.tasks(state="scheduled", limit=PAGE_SIZE, offset=offset)
    return page(
        request,
        "scheduled.html",
        tasks=found.items,
        offset=offset,
        next_offset=found.next_offset,
        page_size=PAGE_SIZE,
    )


def dead_filter(values: Any) -> DeadFilter:
    """The dead-letter filter from a query string or a form (empty fields: no filter)."""
    get = values.get
    return DeadFilter(
        (get("queue") or "").strip() or None,
        (get("task") or "").strip() or None,
        (get("search") or "").strip() or None,
    )


def dead(request: Request) -> HTMLResponse:
    f = dead_filter(request.query_params)
    offset = _offset(request)
    found = conveyor(request).admin.dead_letters(offset, PAGE_SIZE, f.queue, f.task, f.search)
    return page(
        request,
        "dead.html",
        letters=found.items,
        total=found.total,
        filter=f,
        offset=offset,
        next_offset=found.next_offset,
        page_size=PAGE_SIZE,
    )


def periodic(request: Request) -> HTMLResponse:
    admin = conveyor(request).admin
    return page(
        request,
        "periodic.html",
        schedules=admin.schedules(),
        leader=admin_schedules.leader(admin.broker),
    )


def locks(request: Request) -> HTMLResponse:
    return page(request, "locks.html", locks=conveyor(request).locks(), now=time.time())


def actions(request: Request) -> HTMLResponse:
    offset = _offset(request)
    found = conveyor(request).admin.actions(limit=PAGE_SIZE, offset=offset)
    return page(
        request,
        "actions.html",
        actions=found.items,
        offset=offset,
        next_offset=found.next_offset,
        page_size=PAGE_SIZE,
    )

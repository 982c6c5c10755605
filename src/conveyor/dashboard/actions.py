"""The dashboard's actions (POST): each does one thing through the admin API (or
``app.schedules`` / ``app.release_lock``), writes it to the action log (who, what, on what),
and redirects back to the page it came from with a one-line note of what happened (signed for
the user: render.note shows no note the server did not make).

The auth middleware has already refused read-only users (403) and the CSRF middleware forged
requests (403) before any of this runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..admin import UnknownName
from ..beat.entry import EntryError
from ..beat.schedules import ScheduleError
from ..cli.schedule import parse_schedule
from ..exceptions import ConveyorError
from .pages import conveyor, dead_filter
from .render import base, note_query, page, urlpart, user
from .rerun import CannotRerun, rebuild_call

#: Errors an action reports to the operator as a 400 page (bad input, unknown name).
EXPECTED = (UnknownName, EntryError, ScheduleError, CannotRerun, ConveyorError, ValueError)


async def _run(request: Request, action: str, target: str, fn: Callable[[], str], back: str) -> Response:
    """Do ``fn`` in the thread pool (it blocks on the broker), log it, go ``back`` with its note."""
    try:
        note = await run_in_threadpool(fn)
    except EXPECTED as exc:
        return page(request, "error.html", status=400, message=f"{action} {target}: {exc}")
    admin = conveyor(request).admin
    await run_in_threadpool(admin.record_action, user(request).name, action, target, note)
    sep = "&" if "?" in back else "?"
    return RedirectResponse(f"{base(request)}{back}{sep}{note_query(request, note)}", status_code=303)


# -- queues ----------------------------------------------------------------------------------------
async def pause_queue(request: Request) -> Response:
    name = request.path_params["name"]
    admin = conveyor(request).admin

    def fn() -> str:
        return f"paused queue {name}" if admin.pause(name) else f"queue {name} was already paused"

    return await _run(request, "queue.pause", name, fn, "/queues")


async def resume_queue(request: Request) -> Response:
    name = request.path_params["name"]
    admin = conveyor(request).admin

    def fn() -> str:
        return f"resumed queue {name}" if admin.resume(name) else f"queue {name} was not paused"

    return await _run(request, "queue.resume", name, fn, "/queues")


async def purge_queue(request: Request) -> Response:
    name = request.path_params["name"]
    admin = conveyor(request).admin
    return await _run(
        request, "queue.purge", name, lambda: f"purged {admin.purge([name])} tasks from {name}", "/queues"
    )


# -- workers -------------------------------------------------------------------------------------
async def shutdown_worker(request: Request) -> Response:
    name = request.path_params["name"]
    admin = conveyor(request).admin

    def fn() -> str:
        replies = admin.control.shutdown(destination=[name], timeout=2.0)
        said = "; ".join(f"{r.hostname}: {r.data if r.replied else r.error}" for r in replies)
        return f"shutdown {name}: {said or 'no reply'}"

    return await _run(request, "worker.shutdown", name, fn, "/workers")


# -- tasks ---------------------------------------------------------------------------------------
async def revoke_task(request: Request) -> Response:
    task_id = request.path_params["task_id"]
    form = await request.form()
    terminate = form.get("terminate") == "1"
    admin = conveyor(request).admin

    def fn() -> str:
        admin.control.revoke([task_id], terminate=terminate, timeout=2.0)
        return f"{'terminated' if terminate else 'revoked'} task {task_id}"

    return await _run(
        request, "task.terminate" if terminate else "task.revoke", task_id, fn, f"/tasks/{urlpart(task_id)}"
    )


async def rerun_task(request: Request) -> Response:
    task_id = request.path_params["task_id"]
    app = conveyor(request)
    new_id: list[str] = []

    def fn() -> str:
        info = app.admin.task(task_id)
        args, kwargs = rebuild_call(info.args)
        sent = app.send_task(info.name, args, kwargs, queue=info.queue, priority=info.priority)
        new_id.append(sent.id)
        return f"sent {info.name} again as {sent.id}"

    response = await _run(request, "task.rerun", task_id, fn, f"/tasks/{urlpart(task_id)}")
    if new_id:  # go to the new task's page
        note = note_query(request, f"sent again from {task_id}")
        response.headers["location"] = f"{base(request)}/tasks/{urlpart(new_id[0])}?{note}"
    return response


# -- dead letters --------------------------------------------------------------------------------
def _selected(form: FormData) -> list[str]:
    return [str(v) for v in form.getlist("id") if str(v).strip()]


async def dead_bulk(request: Request) -> Response:
    """Retry or delete the selected dead letters, or every one matching the filter."""
    form = await request.form()
    what = str(form.get("action", ""))
    if what not in ("retry", "delete"):
        return page(request, "error.html", status=400, message=f"unknown dead-letter action {what!r}")
    admin = conveyor(request).admin
    f = dead_filter(form)
    back = "/dead?" + urlencode(
        {k: v for k, v in (("queue", f.queue), ("task", f.task), ("search", f.search)) if v}
    )
    if form.get("all") == "1":
        described = ", ".join(
            f"{k}={v}" for k, v in (("queue", f.queue), ("task", f.task), ("search", f.search)) if v
        )
        target = f"all matching {described}" if described else "all"
        fn: Callable[[], Any] = (
            (lambda: admin.retry_dead_matching(f.queue, f.task, f.search))
            if what == "retry"
            else (lambda: admin.delete_dead_matching(f.queue, f.task, f.search))
        )
    else:
        ids = _selected(form)
        if not ids:
            return page(request, "error.html", status=400, message="select at least one dead letter")
        target = ", ".join(ids[:5]) + (f" (+{len(ids) - 5} more)" if len(ids) > 5 else "")
        fn = (lambda: admin.retry_dead(ids)) if what == "retry" else (lambda: admin.delete_dead(ids))
    verb = "retried" if what == "retry" else "deleted"
    return await _run(request, f"dead.{what}", target, lambda: f"{verb} {fn()} dead letters", back)


# -- periodic ------------------------------------------------------------------------------------
async def schedule_action(request: Request) -> Response:
    name = request.path_params["name"]
    what = request.path_params["what"]
    form = await request.form()
    schedules = conveyor(request).schedules
    tz = str(form.get("tz", "")).strip() or None
    text = str(form.get("schedule", ""))

    def fn() -> str:
        if what == "enable":
            schedules.enable(name)
            return f"enabled {name}"
        if what == "disable":
            schedules.disable(name)
            return f"disabled {name}"
        if what == "run":
            return f"sent {name} now as {schedules.run_now(name).id}"
        if what == "edit":
            entry = schedules.update(name, schedule=parse_schedule(text, tz))
            return f"{name} now runs {entry.schedule.describe()}"
        raise ValueError(f"unknown periodic action {what!r}")

    return await _run(request, f"schedule.{what}", name, fn, "/periodic")


# -- locks ---------------------------------------------------------------------------------------
async def release_lock(request: Request) -> Response:
    name = request.path_params["name"]
    app = conveyor(request)

    def fn() -> str:
        if not app.release_lock(name):
            raise ValueError(f"lock {name!r} is not held")
        return f"released lock {name}"

    return await _run(request, "lock.release", name, fn, "/locks")

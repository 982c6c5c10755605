"""Tasks: the history listing, one task's record, sending a task by name, revoking.

Sending checks everything before anything is enqueued: the task must be registered in this
process (404 otherwise: the dashboard runs with ``-A proj``, so it knows the project's tasks),
the arguments must bind to the function's signature (``inspect.signature().bind``, also for
tasks declared with ``typing=False``), and the options must be ``apply_async``'s. Any failure
is a 400 that says what is wrong, and nothing is sent.
"""

from __future__ import annotations

import inspect
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from ..admin import TaskInfo
from ..app import Conveyor
from ..brokers import MinuteCounts
from ..exceptions import ConfigurationError, EncodeError
from ..task import Task
from . import inputs, sendoptions
from .endpoint import LISTED, PAGING, ApiError, Endpoint, Param, Reply, record

TASK_FILTERS = (
    Param("state", "string", "waiting, scheduled, running, succeeded, failed, retrying, revoked or dead"),
    Param("name", "string", "the task's name, exactly"),
    Param("queue", "string", "the queue, exactly"),
    Param("since", "string", "latest state change at or after: epoch seconds or ISO 8601"),
    Param("until", "string", "latest state change before: epoch seconds or ISO 8601"),
    Param("search", "string", "text found in the arguments or the id (case-insensitive)"),
    *PAGING,
)

COUNTER_FILTERS = (
    Param("since", "string", "minutes starting at or after (default: an hour before until)"),
    Param("until", "string", "minutes starting before (default: now)"),
    Param("name", "string", "only this task name"),
)

SEND_BODY = {
    "type": "object",
    "required": ["task"],
    "properties": {
        "task": {"type": "string", "description": "the registered task's name"},
        "args": {"type": "array", "description": "positional arguments"},
        "kwargs": {"type": "object", "description": "keyword arguments"},
        "options": {
            "type": "object",
            "description": "apply_async's options: countdown, eta (ISO 8601 or epoch seconds), expires, "
            "queue, priority (0-9, 9 first), task_id, time_limit, soft_time_limit, max_retries, "
            "headers, unique_key, unique_for",
        },
    },
}

REVOKE_BODY = {
    "type": "object",
    "properties": {
        "terminate": {"type": "boolean", "description": "also stop it if it is running now"},
        "signal": {"type": "string", "description": "SIGTERM (default) or SIGKILL, with terminate"},
    },
}


def endpoints(app: Conveyor) -> list[Endpoint]:
    admin = app.admin

    async def list_tasks(request: Request) -> Any:
        limit, offset = inputs.paging(request)
        args = (
            inputs.text(request, "state"),
            inputs.text(request, "name"),
            inputs.text(request, "queue"),
            inputs.when(request, "since"),
            inputs.when(request, "until"),
            inputs.text(request, "search"),
            limit,
            offset,
        )
        return await run_in_threadpool(admin.tasks, *args)

    async def counters(request: Request) -> Any:
        since, until = inputs.when(request, "since"), inputs.when(request, "until")
        return await run_in_threadpool(admin.counters, since, until, inputs.text(request, "name"))

    async def get_task(request: Request) -> Any:
        return await run_in_threadpool(admin.task, request.path_params["task_id"])

    async def send(request: Request) -> Any:
        data = await inputs.body(request)
        inputs.unknown_fields(data, {"task", "args", "kwargs", "options"})
        name = inputs.field(data, "task", str)
        if not name:
            raise ApiError(400, "'task' (the task's name) is required")
        task = app.tasks.get(name)
        if task is None:
            raise ApiError(404, f"unknown task {name!r}: not registered in this application")
        args = inputs.field(data, "args", list, [])
        kwargs = inputs.field(data, "kwargs", dict, {})
        options = sendoptions.parse(inputs.field(data, "options", dict, {}))
        check_signature(task, args, kwargs)
        try:
            result = await run_in_threadpool(lambda: task.apply_async(args, kwargs, **options))
        except (EncodeError, ConfigurationError, TypeError, ValueError) as exc:
            raise ApiError(400, f"not sent: {exc}") from None
        await record(request, admin, "task.send", result.id, name)
        return Reply(202, {"id": result.id, "task": name, "state": "sent"})

    async def revoke(request: Request) -> Any:
        task_id = request.path_params["task_id"]
        data = await inputs.body(request)
        inputs.unknown_fields(data, {"terminate", "signal"})
        terminate = inputs.field(data, "terminate", bool, False)
        signal = inputs.field(data, "signal", str, "SIGTERM")
        try:
            replies = await run_in_threadpool(admin.control.revoke, [task_id], terminate, signal)
        except ValueError as exc:  # a bad signal name
            raise ApiError(400, str(exc)) from None
        detail = f"terminate=True signal={signal}" if terminate else ""
        await record(request, admin, "task.revoke", task_id, detail)
        return {"id": task_id, "revoked": True, "terminate": terminate, "workers": replies}

    return [
        Endpoint(
            "GET",
            "/tasks",
            "list tasks",
            list_tasks,
            TASK_FILTERS,
            responses=LISTED,
            returns=TaskInfo,
            shape="page",
        ),
        Endpoint(
            "POST",
            "/tasks",
            "send a task",
            send,
            body=SEND_BODY,
            acts=True,
            responses={202: "sent: {id, task, state}", 400: "bad arguments or options", 404: "unknown task"},
        ),
        Endpoint(
            "GET",
            "/tasks/{task_id}",
            "get a task",
            get_task,
            responses={200: "OK", 404: "unknown id"},
            returns=TaskInfo,
        ),
        Endpoint(
            "GET",
            "/counters",
            "per-minute task counters",
            counters,
            COUNTER_FILTERS,
            responses=LISTED,
            returns=MinuteCounts,
            shape="list",
        ),
        Endpoint(
            "POST",
            "/tasks/{task_id}/revoke",
            "revoke a task",
            revoke,
            body=REVOKE_BODY,
            acts=True,
            responses={200: "revoked; each live worker's reply", 404: "unknown id"},
        ),
    ]


def check_signature(task: Task[Any, Any], args: list[Any], kwargs: dict[str, Any]) -> None:
    """400 unless the arguments bind to the task's function (``self`` left out for bound tasks)."""
    if not all(isinstance(k, str) for k in kwargs):
        raise ApiError(400, "'kwargs' keys must be strings")
    try:
        signature = inspect.signature(task.run, eval_str=True)
    except (NameError, SyntaxError):  # an annotation that does not evaluate here: show it as written
        signature = inspect.signature(task.run)
    except (TypeError, ValueError):
        return  # a callable Python cannot introspect: apply_async's own checks still run
    signature = signature.replace(return_annotation=inspect.Signature.empty)
    if task.bind:
        signature = signature.replace(parameters=list(signature.parameters.values())[1:])
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise ApiError(400, f"arguments do not fit {task.name}{signature}: {exc}") from None

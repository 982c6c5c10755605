"""Queues (list, one, pause, resume), workers, periodic schedules and the action log."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from ..admin import ActionInfo, QueueInfo, WorkerInfo
from ..app import Conveyor
from . import inputs
from .endpoint import LISTED, PAGING, Endpoint, Param, record


def endpoints(app: Conveyor) -> list[Endpoint]:
    admin = app.admin

    async def queues(request: Request) -> Any:
        return await run_in_threadpool(admin.queues)

    async def queue(request: Request) -> Any:
        return await run_in_threadpool(admin.queue, request.path_params["queue"])

    async def pause(request: Request) -> Any:
        name = request.path_params["queue"]
        changed = await run_in_threadpool(admin.pause, name)
        await record(request, admin, "queue.pause", name)
        return {"queue": name, "paused": True, "changed": changed}

    async def resume(request: Request) -> Any:
        name = request.path_params["queue"]
        changed = await run_in_threadpool(admin.resume, name)
        await record(request, admin, "queue.resume", name)
        return {"queue": name, "paused": False, "changed": changed}

    async def workers(request: Request) -> Any:
        gone = request.query_params.get("include_gone", "") in ("1", "true", "yes")
        return await run_in_threadpool(admin.workers, gone)

    async def worker(request: Request) -> Any:
        return await run_in_threadpool(admin.worker, request.path_params["worker"])

    async def schedules(request: Request) -> Any:
        entries = await run_in_threadpool(app.schedules.entries)
        return [e.to_dict() for e in entries]

    async def actions(request: Request) -> Any:
        limit, offset = inputs.paging(request)
        return await run_in_threadpool(admin.actions, limit, offset)

    changed = {200: "OK; changed says whether it was not already so", 404: "unknown queue"}
    return [
        Endpoint("GET", "/queues", "list queues", queues, returns=QueueInfo, shape="list"),
        Endpoint(
            "GET",
            "/queues/{queue}",
            "get a queue",
            queue,
            responses={200: "OK", 404: "unknown queue"},
            returns=QueueInfo,
        ),
        Endpoint("POST", "/queues/{queue}/pause", "pause a queue", pause, acts=True, responses=changed),
        Endpoint("POST", "/queues/{queue}/resume", "resume a queue", resume, acts=True, responses=changed),
        Endpoint(
            "GET",
            "/workers",
            "list workers",
            workers,
            (Param("include_gone", "boolean", "also workers silent for longer than a lease"),),
            returns=WorkerInfo,
            shape="list",
        ),
        Endpoint(
            "GET",
            "/workers/{worker}",
            "get a worker",
            worker,
            responses={200: "OK", 404: "unknown worker"},
            returns=WorkerInfo,
        ),
        Endpoint("GET", "/schedules", "list periodic schedules", schedules),
        Endpoint(
            "GET",
            "/actions",
            "list the action log",
            actions,
            PAGING,
            responses=LISTED,
            returns=ActionInfo,
            shape="page",
        ),
    ]

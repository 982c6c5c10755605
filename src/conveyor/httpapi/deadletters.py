"""Dead letters: list with filters; retry or delete by ids, or every one matching a filter.

A bulk action takes either ``ids`` or ``matching`` (an object with any of ``queue``, ``task``,
``search``; ``{}`` means every dead letter), never both, so an empty ``ids`` list can never be
mistaken for "all". Matching walks the dead letters a broker page at a time
(``Admin.retry_dead_matching``), never loading them all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from ..admin import DeadLetterInfo
from ..app import Conveyor
from . import inputs
from .endpoint import LISTED, PAGING, ApiError, Endpoint, Param, record

SHOWN_IDS = 5  # ids named in the action log's entry for one bulk action; the rest are counted

FILTERS = (
    Param("queue", "string", "the queue, exactly"),
    Param("task", "string", "the task's name, or a glob (proj.tasks.*)"),
    Param("search", "string", "text found in the arguments, the reason or the id"),
    *PAGING,
)

BULK_BODY = {
    "type": "object",
    "description": "exactly one of ids and matching",
    "properties": {
        "ids": {"type": "array", "items": {"type": "string"}},
        "matching": {
            "type": "object",
            "description": "a filter; {} matches every dead letter",
            "properties": {
                "queue": {"type": "string"},
                "task": {"type": "string"},
                "search": {"type": "string"},
            },
        },
    },
}


def endpoints(app: Conveyor) -> list[Endpoint]:
    admin = app.admin

    async def listing(request: Request) -> Any:
        limit, offset = inputs.paging(request)
        filters = (inputs.text(request, n) for n in ("queue", "task", "search"))
        return await run_in_threadpool(admin.dead_letters, offset, limit, *filters)

    def bulk(
        verb: str, by_ids: Callable[[list[str]], int], matching: Callable[..., int]
    ) -> Callable[[Request], Any]:
        async def act(request: Request) -> Any:
            data = await inputs.body(request)
            inputs.unknown_fields(data, {"ids", "matching"})
            if ("ids" in data) == ("matching" in data):
                raise ApiError(400, "give exactly one of 'ids' (a list) and 'matching' (a filter object)")
            if "ids" in data:
                ids = inputs.string_list(data, "ids")
                count = await run_in_threadpool(by_ids, ids)
                target = ",".join(ids[:SHOWN_IDS]) + (
                    f" (+{len(ids) - SHOWN_IDS} more)" if len(ids) > SHOWN_IDS else ""
                )
            else:
                f = inputs.field(data, "matching", dict, {})
                inputs.unknown_fields(f, {"queue", "task", "search"})
                filters = {k: inputs.field(f, k, str) for k in ("queue", "task", "search")}
                count = await run_in_threadpool(lambda: matching(**filters))
                target = "matching " + (" ".join(f"{k}={v}" for k, v in filters.items() if v) or "all")
            await record(request, admin, f"dead.{verb}", target, f"{count} dead letter(s)")
            return {verb.replace("retry", "retried").replace("delete", "deleted"): count}

        return act

    retry = bulk("retry", admin.retry_dead, admin.retry_dead_matching)
    delete = bulk("delete", admin.delete_dead, admin.delete_dead_matching)
    return [
        Endpoint(
            "GET",
            "/dead-letters",
            "list dead letters",
            listing,
            FILTERS,
            responses=LISTED,
            returns=DeadLetterInfo,
            shape="page",
        ),
        Endpoint(
            "POST",
            "/dead-letters/retry",
            "retry dead letters",
            retry,
            body=BULK_BODY,
            acts=True,
            responses={200: "{retried: count}: put back on their queues", 400: "bad body"},
        ),
        Endpoint(
            "POST",
            "/dead-letters/delete",
            "delete dead letters",
            delete,
            body=BULK_BODY,
            acts=True,
            responses={200: "{deleted: count}", 400: "bad body"},
        ),
    ]

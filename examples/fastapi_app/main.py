"""The example's web app: trigger a task, poll its state and progress, await its result.

Run it (with a worker running examples.fastapi_app.tasks on the same broker)::

    CONVEYOR_BROKER_URL=redis://localhost:6379/0 uvicorn examples.fastapi_app.main:api

Every broker call is awaited on the event loop (``adelay``, ``astate``/``ainfo``, ``aget``):
no request holds a thread while it waits, and enqueues from concurrent requests share round
trips to the broker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from conveyor import aio
from conveyor.exceptions import BrokerError, TimeoutError

from .tasks import add, app, build_report, fail


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    yield
    await aio.close_producers()  # this loop's broker connections


api = FastAPI(title="Conveyor FastAPI example", lifespan=lifespan)


class ReportRequest(BaseModel):
    rows: int = 10
    seconds_per_row: float = 0.05


@api.post("/reports", status_code=202)
async def start_report(request: ReportRequest) -> dict[str, str]:
    """Trigger a task: answers at once with its id, to poll."""
    result = await build_report.adelay(request.rows, request.seconds_per_row)
    return {"task_id": result.id}


@api.get("/tasks/{task_id}")
async def task_status(task_id: str) -> dict[str, Any]:
    """Poll: the state (``PROGRESS`` while the report runs) and the info (its progress meta, or
    the result once it finished, or the error if it failed)."""
    result = app.AsyncResult(task_id)
    state, info = await result.astate_and_info()  # one read: the two always agree
    if isinstance(info, BaseException):
        info = {"error": type(info).__name__, "message": str(info)}
    return {"task_id": task_id, "state": state, "info": info}


@api.get("/tasks/{task_id}/result")
async def task_result(task_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """Await the result, up to ``timeout`` seconds (504 if not ready; 500 if the task failed)."""
    try:
        value = await app.AsyncResult(task_id).aget(timeout=timeout)
    except TimeoutError as exc:
        raise HTTPException(status_code=504, detail=str(exc)) from None
    except BrokerError as exc:
        raise HTTPException(status_code=503, detail=str(exc)) from None
    except Exception as exc:  # the task's own failure
        raise HTTPException(status_code=500, detail=f"{type(exc).__name__}: {exc}") from None
    return {"task_id": task_id, "result": value}


@api.post("/add")
async def add_now(x: int, y: int, timeout: float = 10.0) -> dict[str, int]:
    """Enqueue and await in one request (a short task whose answer the client waits for)."""
    try:
        result = await add.adelay(x, y)
        return {"result": await result.aget(timeout=timeout)}
    except BrokerError as exc:
        raise HTTPException(status_code=503, detail=str(exc)) from None
    except TimeoutError as exc:
        raise HTTPException(status_code=504, detail=str(exc)) from None


@api.post("/fail")
async def start_failure(reason: str) -> dict[str, str]:
    result = await fail.adelay(reason)
    return {"task_id": result.id}

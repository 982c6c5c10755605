"""``GET /health`` for load balancers and uptime checks: 200 when the broker answers and every
queue that needs a worker has a live, fetching one; 503 with the reasons otherwise.

A queue *needs* a worker when it has ready tasks and is not paused: those tasks wait until a
worker consumes it. An idle queue without workers is not a failure (a worker group scaled to
zero), nor is a paused one. ``?queue=NAME`` (repeatable) names queues that must have a live
worker whatever they hold — what a deployment that scales workers but never to zero asks for.
A worker counts when it is alive and fetching (``admin/health.py``: the rules of ``conveyor
health``); a worker that heartbeats but whose fetches fail does not.

The broker gets ``BROKER_TIMEOUT`` seconds: a check that hangs on an unreachable broker would
make the load balancer's own timeout the error message.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..admin.health import check
from ..app import Conveyor
from .endpoint import json_response

BROKER_TIMEOUT = 2.0  # seconds


def health_route(app: Conveyor) -> Route:
    """The ``/health`` route (mount it outside any auth: load balancers carry no credentials)."""

    async def health(request: Request) -> Response:
        required = [q for q in request.query_params.getlist("queue") if q]
        try:
            report = await asyncio.wait_for(
                run_in_threadpool(check, app.admin, required), timeout=BROKER_TIMEOUT
            )
        except TimeoutError:
            report = unhealthy(f"broker did not answer within {BROKER_TIMEOUT:g}s")
        except Exception as exc:  # any failure to read the broker is "unreachable" to a prober
            report = unhealthy(f"broker unreachable: {type(exc).__name__}: {exc}")
        return json_response(report, 200 if report["status"] == "ok" else 503)

    return Route("/health", health, methods=["GET", "HEAD"], name="health")


def unhealthy(reason: str) -> dict[str, Any]:
    return {
        "status": "unhealthy",
        "broker": "unreachable",
        "problems": [reason],
        "queues": {},
        "unhealthy_workers": [],
    }

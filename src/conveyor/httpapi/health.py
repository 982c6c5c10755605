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
import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..admin import Admin
from ..admin.health import problem
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


def check(admin: Admin, required: list[str]) -> dict[str, Any]:
    """The health report: ``status`` ok or unhealthy, ``problems`` (one line each), and per
    queue its ready count, paused flag and the live fetching workers consuming it;
    ``unhealthy_workers`` lists workers alive but not fetching (they fail the report only when
    a queue is left without a worker)."""
    now = time.time()
    workers = admin.workers()
    queues = {q.name: q for q in admin.queues()}
    serving: dict[str, list[str]] = {name: [] for name in [*queues, *required]}
    problems: list[str] = []
    for worker in workers:
        why = problem(worker, now)
        if why is not None:
            problems.append(why)
            continue
        for name in worker.queues:
            serving.setdefault(name, []).append(worker.hostname)
    failing: list[str] = []
    for name, hosts in sorted(serving.items()):
        if hosts:
            continue
        info = queues.get(name)
        if name in required:
            failing.append(f"queue {name!r}: no live worker consumes it")
        elif info is not None and info.ready and not info.paused:
            failing.append(f"queue {name!r}: {info.ready} task(s) ready and no live worker consumes it")
    report_queues = {
        name: {
            "ready": queues[name].ready if name in queues else 0,
            "paused": queues[name].paused if name in queues else False,
            "workers": sorted(hosts),
        }
        for name, hosts in sorted(serving.items())
    }
    return {
        "status": "unhealthy" if failing else "ok",
        "broker": "ok",
        "problems": failing,
        "unhealthy_workers": problems,
        "queues": report_queues,
    }

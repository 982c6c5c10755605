"""Prometheus metrics for the whole cluster, computed from the broker at scrape time.

``metrics_route(app)`` is the ``/metrics`` route the dashboard mounts; ``conveyor -A proj
metrics`` serves it alone (cli/metrics.py). See docs/metrics.md for every metric.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..app import Conveyor
from .collector import ConveyorCollector

__all__ = ["ConveyorCollector", "metrics_route", "registry"]


def registry(app: Conveyor) -> CollectorRegistry:
    """A registry holding only the cluster's metrics (not this process's own: the exporter's
    CPU and memory say nothing about the cluster)."""
    found = CollectorRegistry(auto_describe=False)
    found.register(ConveyorCollector(app.admin))
    return found


def metrics_route(app: Conveyor) -> Route:
    """``GET /metrics`` in Prometheus' text format. Each route keeps its own counter totals
    (metrics/totals.py), so mount it once per process."""
    metrics = registry(app)

    async def serve(request: Request) -> Response:
        body = await run_in_threadpool(generate_latest, metrics)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return Route("/metrics", serve, methods=["GET"], name="metrics")

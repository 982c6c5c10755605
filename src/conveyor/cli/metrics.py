"""``conveyor metrics``: the Prometheus endpoint alone, for a cluster without the dashboard.

One exporter serves the whole cluster: every metric is read from the broker at scrape time
(docs/metrics.md), so run one (or two behind a Service) — not one per worker.
"""

from __future__ import annotations

import os

import click

from ..app import Conveyor
from .common import State


@click.command("metrics")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=9808, show_default=True, help="Port to listen on."
)
@click.pass_obj
def metrics(state: State, host: str, port: int) -> None:
    """Serve Prometheus metrics for the whole cluster at /metrics (and /health).

    Needs only the broker: with -b URL (or $CONVEYOR_BROKER_URL) and no -A, no task module is
    imported. Listens on 127.0.0.1 unless told otherwise (the metrics name queues and tasks).

    \b
    Example:
      conveyor -A proj metrics --host 0.0.0.0 --port 9808
      curl -s localhost:9808/metrics | grep conveyor_queue_ready_tasks
    """
    import uvicorn
    from starlette.applications import Starlette

    from ..httpapi import health_route
    from ..metrics import metrics_route

    url = state.broker or os.environ.get("CONVEYOR_BROKER_URL")
    app = state.app if state.app_spec or not url else Conveyor("conveyor-metrics", broker=url)
    server = Starlette(routes=[metrics_route(app), health_route(app)])
    from ..dashboard.serve import serving_line

    click.echo(serving_line(host, port, label="conveyor metrics: serving", page="/metrics"))
    uvicorn.run(server, host=host, port=port, log_level="warning")

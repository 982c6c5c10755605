"""The app the deployment tests run the commands of ``deploy/`` with: the example app
(examples/demo_tasks.py: its tasks, routes and beat schedule) plus ``hold``, a task a test stops
a worker in the middle of, to see it drain.

The example app pins its broker to ``demo.db`` for ``make demo``; a deployed app leaves the
broker to ``$CONVEYOR_BROKER_URL`` (what every file in ``deploy/`` sets), so this one does.
"""

from __future__ import annotations

import time

from examples.demo_tasks import app

app.conf.broker_url = None  # $CONVEYOR_BROKER_URL decides, as in a deployment

__all__ = ["app", "hold"]


@app.task(queue="default")
def hold(seconds: float) -> str:
    time.sleep(seconds)
    return "held"

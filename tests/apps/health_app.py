"""An app whose broker is set in code (from ``$HEALTH_APP_BROKER``), not by
``$CONVEYOR_BROKER_URL``: for ``conveyor -A ... health``, which must ask the app's broker."""

from __future__ import annotations

import os

from conveyor import Conveyor

app = Conveyor("health_app")
app.conf.broker_url = os.environ.get("HEALTH_APP_BROKER")
app.conf.worker_lease_timeout = 3.0
app.conf.worker_heartbeat_interval = 1.0


@app.task(name="health_app.noop")
def noop() -> None:
    return None

"""An app with the seeds' kinds of periodic entries, for scheduler process tests.

``$CONVEYOR_TEST_BAD_ENTRY`` (cron, tz, interval, task) adds one invalid declaration, to check
that ``conveyor beat`` refuses to start and writes nothing.  Runs of ``record_slot`` append
the task id to ``$CONVEYOR_TEST_DIR/<name>`` so a test can count them across processes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from conveyor import Conveyor, crontab

app = Conveyor("beat_app")
app.conf.worker_lease_timeout = 3.0
app.conf.worker_heartbeat_interval = 1.0


@app.task(bind=True)
def record_slot(self: Any, name: str) -> str:
    directory = Path(os.environ.get("CONVEYOR_TEST_DIR", "."))
    with open(directory / name, "a") as f:
        f.write(f"{self.request.id}\n")
    return str(self.request.id)


@app.task(ignore_result=True)
def vacuum() -> None:
    """Weekly maintenance; leaves no result (the slot claim alone keeps it from running twice)."""


app.conf.beat_schedule = {
    # Every slot must run exactly once, even across failovers: catch_up="all".
    "tick": {"task": "tests.apps.beat_app.record_slot", "schedule": 1.0, "args": ["tick"], "catch_up": "all"},
    # The seeds' 2-second aircraft poll: a run is worthless after 2 s.
    "poll": {
        "task": "tests.apps.beat_app.record_slot",
        "schedule": 2.0,
        "args": ["poll"],
        "options": {"queue": "polling", "expires": 2},
    },
    "weekly-vacuum": {
        "task": "tests.apps.beat_app.vacuum",
        "schedule": crontab(minute=0, hour=4, day_of_week="sun"),
    },
    "hourly-aggregate": {"task": "tests.apps.beat_app.vacuum", "schedule": crontab(minute=5)},
    "scrape": {"task": "tests.apps.beat_app.vacuum", "schedule": "0 */6 * * *"},
}

_BAD: dict[str, dict[str, Any]] = {
    "cron": {"task": "tests.apps.beat_app.vacuum", "schedule": "61 * * * *"},
    "interval": {"task": "tests.apps.beat_app.vacuum", "schedule": 0},
    "task": {"task": "tests.apps.beat_app.no_such_task", "schedule": 60.0},
    "tz": {"task": "tests.apps.beat_app.vacuum", "schedule": "0 4 * * *"},
}
_bad = os.environ.get("CONVEYOR_TEST_BAD_ENTRY")
if _bad:
    app.conf.beat_schedule["zz-bad"] = _BAD[_bad]
    if _bad == "tz":
        app.conf.timezone = "Mars/Olympus_Mons"

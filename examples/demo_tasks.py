"""Example tasks for ``make demo``: the kind of work the weather and aviation apps do.

Run a worker for them with:  conveyor -A examples.demo_tasks worker -l info
With the periodic scheduler embedded:  conveyor -A examples.demo_tasks worker --beat -l info
"""

from __future__ import annotations

import asyncio
import random
import time

from conveyor import Conveyor, SoftTimeLimitExceeded, crontab

app = Conveyor("demo", broker="sqlite:///demo.db")
app.conf.update(
    task_routes={"examples.demo_tasks.poll_*": {"queue": "polling"}},
    result_expires=3600,
    # Periodic entries (docs/beat.md), written as Celery users write them.
    beat_schedule={
        # The aviation app's 2-second poll: a poll older than 2 s is worthless, so it expires.
        "poll-aircraft": {
            "task": "examples.demo_tasks.poll_aircraft",
            "schedule": 2.0,
            "args": ("EU",),
            "options": {"expires": 2},
        },
        # A cron string: refresh the capital's weather at the start of every minute.
        "refresh-capital": {
            "task": "examples.demo_tasks.refresh_city",
            "schedule": "* * * * *",
            "args": (1,),
        },
        # A crontab: the weekly report, Sundays at 04:00 UTC.
        "weekly-report": {
            "task": "examples.demo_tasks.build_report",
            "schedule": crontab(minute=0, hour=4, day_of_week="sun"),
            "args": (7,),
        },
    },
)


@app.task(queue="default")
def refresh_city(city_id: int) -> dict[str, float | int]:
    """Fetch the weather of a city (simulated)."""
    time.sleep(random.uniform(0.05, 0.2))
    return {"city_id": city_id, "temperature": round(random.uniform(-5, 30), 1)}


@app.task
async def poll_aircraft(region: str) -> int:
    """An async poll: runs on the worker's event loop."""
    await asyncio.sleep(0.05)
    return random.randint(10, 80)


@app.task(bind=True, max_retries=4, autoretry_for=(ConnectionError,), retry_backoff=0.5, retry_backoff_max=5)
def send_notification(self, user_id: int) -> str:
    """Fails now and then, like a flaky push service: retried with exponential backoff and jitter."""
    if random.random() < 0.5:
        raise ConnectionError(f"push service unavailable (attempt {self.request.retries + 1})")
    return f"notified user {user_id}"


@app.task(soft_time_limit=1.0, time_limit=3.0)
def build_report(days: int) -> str:
    """Too slow for its soft limit: catches SoftTimeLimitExceeded and returns a partial report."""
    done = 0
    try:
        for _ in range(days):
            time.sleep(0.3)
            done += 1
    except SoftTimeLimitExceeded:
        return f"partial report: {done} of {days} days"
    return f"full report: {days} days"

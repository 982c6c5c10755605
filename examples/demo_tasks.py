"""Example tasks for ``make demo``: the kind of work the weather and aviation apps do.

Run a worker for them with:  conveyor -A examples.demo_tasks worker -l info
"""

from __future__ import annotations

import asyncio
import random
import time

from conveyor import Conveyor, SoftTimeLimitExceeded

app = Conveyor("demo", broker="sqlite:///demo.db")
app.conf.update(
    task_routes={"examples.demo_tasks.poll_*": {"queue": "polling"}},
    result_expires=3600,
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

"""Tasks for the coordination tests (locks, unique enqueue, rate and concurrency limits).

The broker URL comes from ``-b`` (or the test sets it). What the tasks do is recorded in files
under ``$CONVEYOR_TEST_DIR``, so a test can see it across worker processes, even killed ones.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from conveyor import Conveyor

app = Conveyor("coord")
# Short leases make crash tests fast; the guarantees are stated relative to these settings.
app.conf.worker_lease_timeout = float(os.environ.get("CONVEYOR_TEST_LEASE", "3.0"))
app.conf.worker_heartbeat_interval = float(os.environ.get("CONVEYOR_TEST_HEARTBEAT", "1.0"))


def workdir() -> Path:
    return Path(os.environ.get("CONVEYOR_TEST_DIR", "."))


def mark(name: str, text: str) -> None:
    with open(workdir() / name, "a") as f:
        f.write(text + "\n")


@contextlib.contextmanager
def exclusive(name: str) -> Iterator[None]:
    """Detect overlapping runs across processes: a second run finds the first one's marker."""
    marker = workdir() / f"inside-{name}"
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        mark("overlaps", f"{name} {os.getpid()}")
        yield
        return
    os.close(fd)
    try:
        yield
    finally:
        marker.unlink()


def busy_sleep(seconds: float) -> None:
    """Sleep in small steps, so a time limit or terminate interrupts it promptly."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.02)


# -- the launch tracker: a periodic scrape and a manual refresh must never overlap ------------------
@app.task(lock="scrape:{source}", lock_timeout=3)  # on_locked="wait" (default)
def scrape(source: str, seconds: float = 0.2) -> str:
    with exclusive(f"scrape-{source}"):
        mark("scrapes", f"scrape {source} {os.getpid()}")
        busy_sleep(seconds)
    return source


@app.task(lock="scrape:{source}", on_locked="skip")
def manual_refresh(source: str, seconds: float = 0.2) -> str:
    with exclusive(f"scrape-{source}"):
        mark("scrapes", f"refresh {source} {os.getpid()}")
        busy_sleep(seconds)
    return source


@app.task(lock="scrape:{source}", on_locked="retry")
def polite_scrape(source: str) -> str:
    mark("polite", source)
    return source


# -- lock release on every ending ---------------------------------------------------------------------
@app.task(lock="fragile:{name}", max_retries=0)
def fails(name: str) -> None:
    raise ValueError(f"{name} failed")


@app.task(lock="slow:{name}", time_limit=1.0)
def too_slow(name: str) -> None:
    mark("too_slow", name)
    busy_sleep(60)


@app.task(lock="revocable:{name}")
def revocable(name: str) -> None:
    mark("revocable", name)
    busy_sleep(60)


# -- killed holders -----------------------------------------------------------------------------------
@app.task(lock="holder", lock_timeout=2.0, acks_late=False)
def hold_forever(token: str) -> None:
    """At-most-once: after its worker dies it is not run again, so only the TTL frees the lock."""
    mark("holding", f"{token} {os.getpid()}")
    busy_sleep(600)


@app.task(lock="takeover", lock_timeout=60.0)
def hold_then_finish(token: str) -> str:
    """The first run blocks (its worker gets killed); the redelivered run finishes."""
    first = not (workdir() / "takeover").exists()
    mark("takeover", f"start {token} {os.getpid()}")
    if first:
        busy_sleep(600)
    return token


@app.task(concurrency_key="one-slot", concurrency_limit=1, lock_timeout=2.0, acks_late=False)
def hold_slot(token: str) -> None:
    mark("slot", f"{token} {os.getpid()}")
    busy_sleep(600)


# -- rate and concurrency limits ----------------------------------------------------------------------
@app.task(rate_limit="4/s")
def limited(token: str) -> str:
    mark("limited", f"{time.time():.6f} {token} {os.getpid()}")
    return token


@app.task
def unlimited(token: str) -> str:
    mark("unlimited", token)
    return token


@app.task(concurrency_key="user:{user_id}", concurrency_limit=2, lock_timeout=3.0)
def per_user(user_id: int, seconds: float = 0.1) -> int:
    """Counts the runs of this user in progress right now (marker files) and records the count."""
    marker = workdir() / f"running-{user_id}-{uuid.uuid4().hex}"
    marker.touch()
    try:
        running = len(list(workdir().glob(f"running-{user_id}-*")))
        mark(f"per_user-{user_id}", str(running))
        busy_sleep(seconds)
    finally:
        marker.unlink()
    return user_id


# -- unique enqueue -----------------------------------------------------------------------------------
@app.task(unique_for=60)
def refresh(city_id: int) -> int:
    return city_id


@app.task(unique_key="city:{city_id}")
def refresh_city(city_id: int, force: bool = False) -> int:
    return city_id


@app.task(bind=True, unique_for=60, default_retry_delay=30)
def retry_later(self: Any, n: int) -> int:
    if self.request.retries == 0:
        self.retry()
    return n


@app.task
def holder_of_inner_lock(name: str) -> str:
    """Takes ``app.lock(name)`` inside its body and returns the holder the lock records."""
    with app.lock(name, timeout=30) as lock:
        return lock.holder

"""Tasks used by the worker tests. The broker URL comes from ``-b`` (or the test sets it).

Tasks that must be observable across processes record what they do in files under
``$CONVEYOR_TEST_DIR``, so a test can count runs even after a worker was killed.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
import time
from pathlib import Path

from conveyor import Conveyor, Reject, SoftTimeLimitExceeded

app = Conveyor("basic")
# Short leases make crash tests fast; the guarantee is "within lease + heartbeat" either way.
app.conf.worker_lease_timeout = float(os.environ.get("CONVEYOR_TEST_LEASE", "3.0"))
app.conf.worker_heartbeat_interval = float(os.environ.get("CONVEYOR_TEST_HEARTBEAT", "1.0"))
if os.environ.get("CONVEYOR_TEST_CONCURRENCY"):  # worker_concurrency set in the app, not by -c
    app.conf.worker_concurrency = int(os.environ["CONVEYOR_TEST_CONCURRENCY"])
if os.environ.get("CONVEYOR_TEST_IMPORT_THREAD"):  # a thread an app starts at import (pinning)

    def _import_thread() -> None:
        """Says which thread it is (``import-thread-PID``: its native id), then waits."""
        here = Path(os.environ.get("CONVEYOR_TEST_DIR", "."))
        (here / f"import-thread-{os.getpid()}").write_text(str(threading.get_native_id()))
        threading.Event().wait()

    threading.Thread(target=_import_thread, name="import-thread", daemon=True).start()
if os.environ.get("CONVEYOR_TEST_PIN_CPUS"):  # worker_pin_cpus set in the app, not by a flag
    app.conf.worker_pin_cpus = os.environ["CONVEYOR_TEST_PIN_CPUS"] == "1"


def _mark(name: str, text: str) -> None:
    directory = Path(os.environ.get("CONVEYOR_TEST_DIR", "."))
    with open(directory / name, "a") as f:
        f.write(text + "\n")


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
def heap_state() -> list[int]:
    """This process's pid and how many objects its garbage collector holds frozen."""
    return [os.getpid(), gc.get_freeze_count()]


@app.task
async def async_add(x: int, y: int) -> int:
    await asyncio.sleep(0.001)
    return x + y


@app.task
def record(name: str, token: str, seconds: float = 0.0) -> str:
    """Append ``start token`` to file ``name``, sleep, then append ``done token``."""
    _mark(name, f"start {token} {os.getpid()}")
    time.sleep(seconds)
    _mark(name, f"done {token} {os.getpid()}")
    return token


@app.task(acks_late=False)
def record_at_most_once(name: str, token: str, seconds: float = 0.0) -> str:
    _mark(name, f"start {token} {os.getpid()}")
    time.sleep(seconds)
    _mark(name, f"done {token} {os.getpid()}")
    return token


@app.task
def suicide(name: str) -> None:
    """Kill the worker running it (SIGKILL): the worker dies on this task every time."""
    _mark(name, f"start {os.getpid()}")
    os.kill(os.getpid(), 9)


@app.task(bind=True, max_retries=3, autoretry_for=(OSError,), retry_backoff=0.05, retry_jitter=False)
def flaky(self, name: str, succeed_on: int) -> int:
    _mark(name, f"attempt {self.request.retries}")
    if self.request.retries < succeed_on:
        raise OSError(f"attempt {self.request.retries} failed")
    return self.request.retries


@app.task(bind=True, max_retries=2, default_retry_delay=0.05)
def manual_retry(self, fail_times: int) -> int:
    if self.request.retries < fail_times:
        self.retry(countdown=0.05)
    return self.request.retries


@app.task(bind=True, max_retries=0)
def retries_with_exc(self) -> None:
    """Past max_retries, ``self.retry(exc=e)`` raises ``e`` itself (Celery's rule)."""
    try:
        raise KeyError("upstream down")
    except KeyError as exc:
        raise self.retry(exc=exc, countdown=0) from None


@app.task
def boom() -> None:
    raise ValueError("boom")


@app.task
def upstream_down() -> None:
    from . import upstream  # imported here only: a command reading the result has not

    raise upstream.UpstreamError("upstream answered 503")


@app.task
def reject(requeue: bool = False) -> None:
    raise Reject("not today", requeue=requeue)


@app.task
def unserialisable_result() -> object:
    return object()


@app.task(soft_time_limit=0.3)
def soft_limited() -> str:
    try:
        while True:
            time.sleep(0.01)
    except SoftTimeLimitExceeded:
        return "cleaned up"


@app.task(time_limit=0.5)
def hard_limited() -> str:
    while True:
        time.sleep(0.01)


@app.task(soft_time_limit=0.2)
async def async_soft_limited() -> str:
    try:
        await asyncio.sleep(10)
    except SoftTimeLimitExceeded:
        await asyncio.sleep(0.01)  # cleanup may still await
        return "cleaned up"
    return "not interrupted"


@app.task(time_limit=0.3)
async def async_hard_limited() -> str:
    await asyncio.sleep(10)
    return "not stopped"


@app.task
def sleeper(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@app.task
async def async_sleeper(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


@app.task
def swallowing_loop(name: str, steps: int = 300) -> int:
    """A loop that logs and goes on past every Exception (``except Exception:``, as batch jobs
    do per item), 30 s long unless stopped: a hard stop must still end it. Appends
    ``swallowed <type>`` for each one it caught, and ``unwound`` when its thread leaves the body."""
    done = 0
    try:
        for _ in range(steps):
            try:
                time.sleep(0.1)
                done += 1
            except Exception as exc:
                _mark(name, f"swallowed {type(exc).__name__}")
    finally:
        _mark(name, "unwound")
    return done


@app.task
def busy_loop(seconds: float) -> float:
    """Holds the thread in Python code (revoke-terminate must interrupt it)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return seconds


@app.task
def stamp(name: str) -> None:
    """Append the wall-clock start time (to measure how late a delayed task starts)."""
    _mark(name, repr(time.time()))


class Unprintable(Exception):
    """An exception whose __str__ itself raises (the worker must still report it)."""

    def __str__(self) -> str:
        raise RuntimeError("no str for you")


@app.task
def unprintable(name: str) -> None:
    _mark(name, f"start {os.getpid()}")
    raise Unprintable()


@app.task
def exits(name: str, code: int) -> None:
    """sys.exit() inside a task: the task fails, the worker goes on."""
    _mark(name, f"start {os.getpid()}")
    sys.exit(code)


@app.task
def interrupted(name: str) -> None:
    _mark(name, f"start {os.getpid()}")
    raise KeyboardInterrupt


@app.task
async def async_exits(name: str, code: int) -> None:
    _mark(name, f"start {os.getpid()}")
    await asyncio.sleep(0)
    sys.exit(code)


@app.task
def exits_process_cleanly(name: str) -> None:
    """Ends its worker process with exit code 0, unasked (a supervisor must replace it)."""
    _mark(name, f"start {os.getpid()}")
    os._exit(0)


_hoard: list[bytes] = []  # kept for the life of the process, as a leak in task code would be


@app.task
def hoard(name: str, megabytes: int) -> int:
    """Keep ``megabytes`` of touched memory in a module-level list (a leak), and record the pid."""
    _hoard.append(b"\x01" * (megabytes * 1024 * 1024))  # written, so resident, unlike calloc'd pages
    _mark(name, f"hoard {os.getpid()}")
    return os.getpid()


@app.task
def pid() -> int:
    return os.getpid()


@app.task
def gated(name: str, token: str) -> str:
    """Append ``start token``, wait until the file ``name.open`` exists (the test opens the
    gate when it is ready for the task to finish), then append ``done token``."""
    directory = Path(os.environ.get("CONVEYOR_TEST_DIR", "."))
    _mark(name, f"start {token} {os.getpid()}")
    deadline = time.monotonic() + 60  # a test that never opens the gate fails, not hangs
    while not (directory / f"{name}.open").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    _mark(name, f"done {token} {os.getpid()}")
    return token


@app.task
def rendezvous(name: str, token: str, count: int) -> str:
    """Append ``start token``, then wait until ``count`` tasks have started in file ``name``:
    "met" if they all ran at once, "alone" if the 60 s deadline passed first."""
    path = Path(os.environ.get("CONVEYOR_TEST_DIR", ".")) / name
    _mark(name, f"start {token} {os.getpid()}")
    deadline = time.monotonic() + 60  # fewer slots than ``count``: the test fails, not hangs
    while time.monotonic() < deadline:
        if sum(line.startswith("start ") for line in path.read_text().splitlines()) >= count:
            return "met"
        time.sleep(0.01)
    return "alone"

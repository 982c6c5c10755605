"""Tasks for the ``-P processes`` tests: stuck in C, segfaulting, leaking, logging, enqueueing.

Runs are recorded in files under ``$CONVEYOR_TEST_DIR`` with the pid of the process that ran
them, so a test can tell children and worker apart and count runs across crashes.
"""

from __future__ import annotations

import ctypes
import os
import socket
import time
from pathlib import Path
from typing import Any

from conveyor import Conveyor, SoftTimeLimitExceeded, Task
from conveyor.exceptions import TimeLimitExceeded
from conveyor.log import get_task_logger
from conveyor.signals import worker_process_init

app = Conveyor("proc_tasks")
app.conf.worker_lease_timeout = 3.0
app.conf.worker_heartbeat_interval = 1.0
app.conf.task_max_worker_deaths = 3
logger = get_task_logger(__name__)


def _mark(name: str, text: str) -> None:
    directory = os.environ.get("CONVEYOR_TEST_DIR")
    if directory is None:  # an embedded worker in the test process: nothing to leave in its cwd
        return
    with open(Path(directory) / name, "a") as f:
        f.write(text + "\n")


@worker_process_init.connect
def _process_init(sender: object = None, **_kwargs: object) -> None:
    _mark("process_init", str(os.getpid()))
    if sender is None and os.environ.get("PROC_TASKS_BREAK_CHILDREN"):  # a pool child, not the worker
        os._exit(5)


@app.task
def pid() -> int:
    return os.getpid()


@app.task
async def async_pid() -> int:
    return os.getpid()


@app.task(soft_time_limit=0.5, time_limit=1.5)
def stuck(name: str, seconds: float) -> str:
    """Catches the soft limit (recording it), then blocks again until the hard limit kills it."""
    _mark(name, f"start {os.getpid()}")
    try:
        time.sleep(seconds)
    except SoftTimeLimitExceeded:
        _mark(name, f"soft {os.getpid()}")
        time.sleep(seconds)
    return "not killed"


@app.task(time_limit=1)
def sleeps(name: str, seconds: float) -> str:
    _mark(name, f"start {os.getpid()}")
    time.sleep(seconds)
    return "slept"


@app.task(time_limit=1)
def socket_read(name: str, seconds: float) -> bytes:
    """Stuck in a socket read with no timeout (nothing is ever sent)."""
    _mark(name, f"start {os.getpid()}")
    ours, _theirs = socket.socketpair()  # the other end stays open: recv never returns
    return ours.recv(1)


@app.task
def c_blocked(name: str, seconds: int) -> str:
    """Blocked inside one C call (libc sleep): no Python code runs until it returns."""
    _mark(name, f"start {os.getpid()}")
    ctypes.CDLL(None).sleep(seconds)
    return "woke"


@app.task
def segfault(name: str) -> None:
    _mark(name, f"start {os.getpid()}")
    ctypes.string_at(0)  # reads address 0: SIGSEGV


@app.task
def exits(name: str) -> None:
    _mark(name, f"start {os.getpid()}")
    os._exit(3)


@app.task
def forks_then_exits(name: str, how: str) -> int:
    """The first run forks a grandchild that sleeps a long time (by ``os.fork``, or by libc's
    fork called from C, where no Python at-fork hook runs), then its child exits at once; the
    grandchild would hold the child's pipe to the worker. Any later run returns its pid."""
    directory = Path(os.environ.get("CONVEYOR_TEST_DIR", "."))
    first = not (directory / name).exists()
    _mark(name, f"start {os.getpid()}")
    if not first:
        return os.getpid()
    forked = os.fork() if how == "os" else ctypes.PyDLL(None).fork()
    if forked == 0:  # the grandchild
        _mark(name, f"grandchild {os.getpid()}")
        time.sleep(120)
        os._exit(0)
    while "grandchild" not in (directory / name).read_text():
        time.sleep(0.01)
    os._exit(3)


@app.task(acks_late=False)
def segfault_at_most_once(name: str) -> None:
    _mark(name, f"start {os.getpid()}")
    ctypes.string_at(0)


@app.task
def first_run_hangs(name: str, seconds: float) -> int:
    """The first run blocks (its worker gets killed meanwhile); any later run returns at once."""
    directory = Path(os.environ.get("CONVEYOR_TEST_DIR", "."))
    first = not (directory / name).exists()
    _mark(name, f"start {os.getpid()}")
    if first:
        time.sleep(seconds)
        _mark(name, f"done {os.getpid()}")
    return os.getpid()


_hoard: list[bytes] = []


@app.task
def hoard(megabytes: int) -> int:
    _hoard.append(b"\x01" * (megabytes * 1024 * 1024))  # written, so resident
    return os.getpid()


@app.task
def logs(text: str) -> int:
    logger.warning("child says %s", text)
    return os.getpid()


@app.task
def enqueue_from_child(x: int) -> str:
    """A task that sends a task: the child opens its own broker connection for it."""
    return pid.delay().id if x else ""


@app.task
def open_descriptors() -> list[str]:
    """What this process has open (its sockets and files), as /proc shows them."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            found.append(os.readlink(f"/proc/self/fd/{name}"))
        except OSError:
            continue
    return found


@app.task(bind=True, autoretry_for=(KeyError,), max_retries=2, default_retry_delay=0.05)
def fails_twice(self: object, name: str) -> int:
    _mark(name, f"run {os.getpid()}")
    runs = len((Path(os.environ.get("CONVEYOR_TEST_DIR", ".")) / name).read_text().splitlines())
    if runs <= 2:
        raise KeyError(f"run {runs}")
    return runs


class CustomError(Exception):
    pass


@app.task
def raises_custom() -> None:
    raise CustomError("custom failure")


@app.task
def cpu(milliseconds: float) -> int:
    """Pure-Python work for about this long on an idle core."""
    deadline = time.perf_counter() + milliseconds / 1000
    n = 0
    while time.perf_counter() < deadline:
        n += 1
    return n


class Hooked(Task):  # type: ignore[type-arg]
    """Records its hooks with the pid of the process they ran in."""

    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        _mark("hooks", f"on_success {os.getpid()}")

    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        request_id = self.request.id if self.request is not None else None
        _mark("hooks", f"on_failure {type(exc).__name__} {os.getpid()} {request_id == task_id}")


@app.task(base=Hooked, time_limit=1)
def hooked(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


@app.task
def unserialisable_result() -> object:
    return object()


@app.task(ignore_result=True)
def unserialisable_ignored() -> object:
    return object()


@app.task(autoretry_for=(TimeLimitExceeded,), max_retries=1, default_retry_delay=0.05, time_limit=1)
def retried_after_time_limit(name: str) -> None:
    _mark(name, f"start {os.getpid()}")
    time.sleep(60)

"""A ``-P processes`` child: runs the sync task bodies its worker sends it, one at a time.

The child never touches the broker for its worker: the worker fetches, leases, heartbeats and
settles; the child gets a ``Job`` (the run's ``Request``: arguments already decoded from the
task's envelope by its serializer) through its pipe, runs the body with the task's hooks and
run signals around it, decides retry / reject / failure itself (``execution.decide`` needs the
live exception), and sends a ``Done`` back: the return value or the decision.

The pipe carries msgpack (msgspec), not JSON, so what a ``msgpack`` task's arguments hold
reaches the body as it is, and what the body returns reaches the result serializer as it is:
``bytes`` stay bytes (JSON would turn them into base64 text). What only JSON carries (an
integer beyond 64 bits, from a JSON message) goes as JSON. Nothing of the user's is pickled:
a task whose arguments are pickled is dead-lettered by the worker with an ``EncodeError``
instead of being sent, and a worker set to store pickled results does not start on this pool.

Its signals: SIGUSR1 raises ``SoftTimeLimitExceeded`` in the body (the worker sends it at the
soft limit); SIGUSR2 writes the stack of every thread to the child's stack file (faulthandler,
which works even while the body is blocked inside a C call), which the worker reads just before
it kills the child at the hard limit or on a terminating revoke, so that the task's traceback
shows where it was stuck (``read_stack_dump``); SIGTERM and SIGINT are ignored, so a stop
signal sent to the worker's whole process group (Ctrl-C, supervisord ``stopasgroup``,
systemd) drains the worker instead of killing running tasks — the worker alone decides when a
child ends (EOF on its pipe: exit).

It dies with its worker: ``PR_SET_PDEATHSIG`` (Linux) kills it the moment the worker dies, and
a thread watching the worker's end of a pipe does the same elsewhere.
"""

from __future__ import annotations

import contextlib
import faulthandler
import gc
import importlib
import logging
import multiprocessing
import os
import re
import signal
import threading
import time
from multiprocessing.connection import Connection, wait
from traceback import StackSummary
from typing import IO, TYPE_CHECKING, Any

import msgspec

from ..einfo import task_traceback
from ..exceptions import NotRegistered, SoftTimeLimitExceeded
from ..execution.decision import Verdict, decide, describe, exc_qualname
from ..execution.trace import run_traced
from ..log import configure, install_task_context, set_worker_name
from ..request import Request, current_request
from ..signals import worker_process_init
from .heap import freeze_heap
from .parentdeath import signal_on_parent_death
from .supervisor import STOP_SIGNALS

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..appproto import AppLike
    from ..task import Task

logger = logging.getLogger("conveyor.worker")


class Job(msgspec.Struct, array_like=True):
    """Worker -> child: run this."""

    request: Request
    soft: float | None = None  # the soft limit, for the log line only: the worker sends SIGUSR1


class Done(msgspec.Struct, omit_defaults=True):
    """Child -> worker: how the body ended (``verdict`` None: it returned ``result``)."""

    id: str
    runtime: float
    result: bytes = b"\xc0"  # the return value, msgpack-encoded (0xc0: None); JSON if ``json``
    json: bool = False  # ``result`` is JSON: a value only JSON carries (an integer beyond 64 bits)
    verdict: Verdict | None = None  # retry, reject, failure
    exc_type: str = ""
    exc_message: str = ""
    traceback: str | None = None
    countdown: float = 0.0
    args: list[Any] | None = None
    kwargs: dict[str, Any] | None = None
    requeue: bool = False
    unencodable: str | None = None  # the value returned cannot be stored as JSON: why


class Ready(msgspec.Struct):
    """Child -> worker, once, first: started and able to take jobs."""

    pid: int


_job_decoder = msgspec.msgpack.Decoder(Job)
_job_json_decoder = msgspec.json.Decoder(Job)
_done_decoder = msgspec.msgpack.Decoder(Done)
_ready_decoder = msgspec.msgpack.Decoder(Ready)
_encoder = msgspec.msgpack.Encoder()
_json = msgspec.json.Encoder()  # for return values only


def encode_job(job: Job) -> bytes:
    """msgpack (bytes stay bytes); JSON for what only JSON carries (an integer beyond 64
    bits, from a JSON message), marked by its first byte (msgpack's array_like Job starts 0x92
    or 0x93, never ``[``)."""
    try:
        return _encoder.encode(job)
    except OverflowError:
        return _json.encode(job)


def decode_job(raw: bytes) -> Job:
    return _job_json_decoder.decode(raw) if raw[:1] == b"[" else _job_decoder.decode(raw)


def decode_done(raw: bytes) -> Done:
    return _done_decoder.decode(raw)


def decode_ready(raw: bytes) -> Ready:
    return _ready_decoder.decode(raw)


# -- starting -----------------------------------------------------------------------------------
class Start(msgspec.Struct):
    """What a child needs to start (given to it as the process's argument: plain data only)."""

    hostname: str
    app_spec: str | None = None  # "module:attribute": spawn imports the app again
    modules: list[str] = []  # modules of the registered tasks, imported too under spawn
    log_level: int = logging.WARNING
    log_format: str = "text"  # spawn: the worker's log format ...
    log_file: str | None = None  # ... and its log file (None: stderr)
    keep_fds: list[tuple[int, int, int]] = []  # fork: (fd, device, inode) open before the worker ran


def child_main(start: Start, conn: Connection, stack_path: str, app: AppLike | None = None) -> None:
    """The child process's body. ``app`` is given under fork; under spawn it is imported.
    ``stack_path``: the file SIGUSR2 writes this process's stacks to (see the module doc)."""
    if app is not None:
        _close_inherited(app, start.keep_fds, conn)
    _die_with_parent()
    with contextlib.suppress(ValueError):
        signal.set_wakeup_fd(-1)  # the worker's event loop's, inherited by the fork
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # held by the worker across the start
    signal.signal(signal.SIGUSR1, _soft_limit)
    _dump_stacks_on_request(stack_path)
    forked = app is not None
    if app is None:
        app = _import_app(start)
    _hide_pipe_from_forks(conn)
    set_worker_name(start.hostname)
    install_task_context()
    worker_process_init.send(None)
    # This process is ours alone (worker/heap.py). Forked from a worker that froze its heap, it
    # freezes what it inherited without a collection (which would copy every shared page);
    # spawned, or forked from one that did not (embedded), it collects first.
    freeze_heap(collect=not forked or gc.get_freeze_count() == 0)
    conn.send_bytes(_encoder.encode(Ready(os.getpid())))
    tasks = app.tasks
    while True:
        try:
            raw = conn.recv_bytes()
        except (EOFError, OSError):
            return  # the worker is gone
        if not raw:
            return  # retired: the worker starts a fresh child in this one's place
        job = decode_job(raw)
        conn.send_bytes(_encoder.encode(run_job(job, tasks)))


_in_body = False


STACK_SIGNAL = signal.SIGUSR2
_stack_file: list[IO[bytes]] = []  # kept open (and referenced) for faulthandler


def _dump_stacks_on_request(path: str) -> None:
    """SIGUSR2 dumps every thread's stack into ``path``, after a first line naming the thread
    that runs the task bodies (this one). Ignored where that cannot be set up (no ``path``: the
    worker could not make the file; no ``faulthandler.register``: Windows), so a stray SIGUSR2
    never kills the child (its default action would)."""
    signal.signal(STACK_SIGNAL, signal.SIG_IGN)
    if not path:
        return
    with contextlib.suppress(OSError, AttributeError, ValueError, RuntimeError):
        file = open(path, "ab", buffering=0)  # noqa: SIM115  (open for the process's lifetime)
        _stack_file.append(file)
        file.write(b"%#x\n" % threading.get_ident())
        faulthandler.register(STACK_SIGNAL, file=file, all_threads=True, chain=False)


_THREAD = re.compile(r"^(?:Current thread|Thread) (0x[0-9a-fA-F]+)")
_FRAME = re.compile(r'^\s+File "(.*)", line (\d+) in (.*)$')


def read_stack_dump(raw: bytes) -> StackSummary | None:
    """The task thread's stack (outermost frame first) from a child's stack file, or None.

    >>> stack = read_stack_dump(b"0x7f01\\nThread 0x7f02 (most recent call first):\\n"
    ...     b'  File "/lib/threading.py", line 320 in wait\\n\\n'
    ...     b"Current thread 0x7f01 (most recent call first):\\n"
    ...     b'  File "/app/tasks.py", line 9 in fetch\\n'
    ...     b'  File "/lib/conveyor/children.py", line 180 in run_job\\n')
    >>> [(f.filename, f.lineno, f.name) for f in stack]
    [('/lib/conveyor/children.py', 180, 'run_job'), ('/app/tasks.py', 9, 'fetch')]
    """
    lines = raw.decode("utf-8", "replace").splitlines()
    if not lines:
        return None
    try:
        wanted = int(lines[0], 16)
    except ValueError:
        return None
    frames: list[tuple[str, int, str, None]] = []
    thread: int | None = None
    for line in lines[1:]:
        header = _THREAD.match(line)
        if header is not None:
            thread = int(header.group(1), 16)
            continue
        frame = _FRAME.match(line)
        if frame is not None and thread == wanted:
            frames.append((frame.group(1), int(frame.group(2)), frame.group(3), None))
    if not frames:
        return None
    frames.reverse()  # faulthandler prints the innermost frame first
    return StackSummary.from_list(frames)


def _soft_limit(_signum: int, _frame: Any) -> None:
    if _in_body:
        raise SoftTimeLimitExceeded("soft time limit exceeded")


def run_job(job: Job, tasks: Mapping[str, Task[Any, Any]]) -> Done:
    """Run one body, hooks and signals around it; the outcome as a ``Done``."""
    global _in_body
    request = job.request
    t0 = time.perf_counter()
    task = tasks.get(request.task)
    token = current_request.set(request)
    try:
        if task is None:
            raise NotRegistered(f"task {request.task!r} is not registered in the worker's child process")
        call_args = [task, *request.args] if task.bind else request.args

        def body() -> Any:
            global _in_body
            _in_body = True
            try:
                return task.run(*call_args, **request.kwargs)
            finally:
                _in_body = False

        value = run_traced(task, request, body)
    except BaseException as exc:  # sys.exit() in a task fails the task, not the child
        _in_body = False
        return _failed(task, request, exc, time.perf_counter() - t0)
    finally:
        current_request.reset(token)
    runtime = time.perf_counter() - t0
    if task.ignore_result:
        return Done(request.id, runtime)  # not stored: it need not even be JSON
    try:
        try:
            return Done(request.id, runtime, _encoder.encode(value))
        except OverflowError:
            return Done(request.id, runtime, _json.encode(value), json=True)
    except (msgspec.EncodeError, TypeError, ValueError, OverflowError) as exc:
        return Done(request.id, runtime, unencodable=str(exc))


def _failed(task: Task[Any, Any] | None, request: Request, exc: BaseException, runtime: float) -> Done:
    if task is None:
        return Done(
            request.id,
            runtime,
            verdict="failure",
            exc_type=exc_qualname(exc),
            exc_message=describe(exc),
            traceback=task_traceback(exc),
        )
    decision = decide(task, request, exc)
    shown = decision.exc or exc
    done = Done(
        request.id,
        runtime,
        verdict=decision.verdict,
        exc_type=exc_qualname(shown),
        exc_message=describe(shown),
        traceback=decision.traceback,
        countdown=decision.countdown,
        args=decision.args,
        kwargs=decision.kwargs,
        requeue=decision.requeue,
    )
    try:
        _encoder.encode(done)
    except (msgspec.EncodeError, TypeError, ValueError, OverflowError) as bad:
        # self.retry(args=...) with arguments msgpack cannot carry: fail with the reason instead.
        done = Done(request.id, runtime, verdict="failure", exc_type="conveyor.exceptions.EncodeError")
        done.exc_message = f"retry arguments cannot be sent from a -P processes child: {bad}"
    return done


# -- dying with the worker, and what the fork inherited -------------------------------------------
def _die_with_parent() -> None:
    """Exit as soon as the worker is gone, even in the middle of a task."""
    signal_on_parent_death(signal.SIGKILL)
    parent = multiprocessing.parent_process()
    if parent is None or os.getppid() == 1:
        os._exit(1)  # the worker died before the prctl above could take effect
    sentinel = parent.sentinel

    def watch() -> None:
        # multiprocessing's pipe whose other end only the worker holds: it turns readable (EOF)
        # when the worker process is gone. The portable fallback of PDEATHSIG.
        with contextlib.suppress(Exception):
            wait([sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="conveyor-parent-watch", daemon=True).start()


def _close_inherited(app: AppLike, keep: list[tuple[int, int, int]], conn: Connection) -> None:
    """Forked: nothing the worker opened after it started may live on here — its broker
    connections, its event loop, the pipes of the other children (a sibling holding a copy of a
    pipe end would hide that child's EOF). Each such descriptor is pointed at /dev/null rather
    than closed: Python objects the fork copied still own those numbers, and closing a reused
    number later would hit an unrelated file. The app forgets its broker (not closed: that
    could end the worker's session); a task that enqueues opens a fresh connection."""
    inherited = getattr(app, "_broker", None)
    if inherited is not None:
        _INHERITED.append(inherited)  # kept referenced: never garbage-collected (and closed) here
        app._broker = None  # type: ignore[attr-defined]
    if hasattr(app, "_broker_lock"):
        app._broker_lock = threading.Lock()  # it may have been held at the fork
    parent = multiprocessing.parent_process()
    own = {0, 1, 2, conn.fileno()}
    if parent is not None:
        own.add(parent.sentinel)
    devnull = os.open(os.devnull, os.O_RDWR)
    own.add(devnull)
    kept = set(keep)
    for fd in open_fds():
        if fd in own:
            continue
        with contextlib.suppress(OSError):
            st = os.fstat(fd)
            if (fd, st.st_dev, st.st_ino) not in kept:  # not the same file: the number was reused
                os.dup2(devnull, fd)


def _hide_pipe_from_forks(conn: Connection) -> None:
    """A process the task forks (``os.fork``, a fork-context ``multiprocessing.Process``) gets
    /dev/null where this child's pipe to the worker was: holding the real pipe, it would keep
    the worker from seeing EOF when this child dies (the worker also watches the child's pid, for
    forks made in C, where this hook does not run). An exec'd program never holds it: the pipe
    is close-on-exec."""
    fd = conn.fileno()

    def in_grandchild() -> None:
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_RDWR)
            os.dup2(devnull, fd)
            os.close(devnull)

    os.register_at_fork(after_in_child=in_grandchild)


def open_fds() -> list[int]:
    """This process's open file descriptors."""
    for where in ("/proc/self/fd", "/dev/fd"):
        with contextlib.suppress(OSError):
            return [int(name) for name in os.listdir(where)]
    return []


def file_identities() -> list[tuple[int, int, int]]:
    """(descriptor, device, inode) of each open descriptor: what a forked child may keep."""
    found = []
    for fd in open_fds():
        with contextlib.suppress(OSError):
            st = os.fstat(fd)
            found.append((fd, st.st_dev, st.st_ino))
    return found


_INHERITED: list[object] = []


def _import_app(start: Start) -> AppLike:
    """Spawned: import the app (and its tasks' modules) the way ``-A`` did, then set up logging
    as the worker's (same level, format and file; the app's ``setup_logging`` handler, if any)."""
    assert start.app_spec is not None
    module_name, _, attr = start.app_spec.partition(":")
    module = importlib.import_module(module_name)
    app: AppLike = getattr(module, attr)
    # The fix-ups' setup first, as the worker ran it before importing these (``django.setup()``:
    # a tasks module that imports its models cannot be imported before it).
    loader = getattr(app, "loader", None)
    if loader is not None:
        loader.setup()
    for name in start.modules:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    configure(logging.getLevelName(start.log_level), start.log_file, start.log_format)
    return app

"""``-P processes`` (alias ``-P prefork``): sync task bodies run in child processes of the worker.

    fetcher ─> processor ─> ProcessRunner ──Job (msgpack)─> child: hooks, body, decide
                               ▲                              │
                               └──────Done (msgpack)──────────┘
       keeper, settler, control: in the worker only — a child never touches the broker

Why a pool of processes: a process can be killed. A hard time limit or ``revoke --terminate``
stops a task stuck in C (a socket read, ``time.sleep``, a C extension) for real, which no
thread pool can; a task that leaks is bounded by replacing its child; CPU-bound tasks use every
core. ``async def`` tasks still run on the worker's event loop (an event loop per child would
split their concurrency N ways for nothing).

- Hard time limit: SIGKILL to the child (after SIGUSR1 at the soft limit raised
  ``SoftTimeLimitExceeded`` inside it); just before it, SIGUSR2 has the child write where the
  task is (children.py), so that its traceback shows the line it was stuck on (given up on
  after ``STACK_WAIT``: the kill is never held back for long); the task fails or retries per
  its policy with ``TimeLimitExceeded`` — its ``on_failure``/``task_failure`` run in the
  worker, the child being gone — and a fresh child takes the slot at once.
- ``revoke --terminate [--signal SIG]``: SIG to the child running that task only (SIGTERM, the
  default, and SIGINT are ignored by children — see children.py — so those become SIGKILL; any
  other signal is followed by SIGKILL if the child outlives it by ``TERMINATE_GRACE``).
- A child that dies on its own (a segfault, ``os._exit``, the OOM killer): its task is handled
  as a worker death — redelivered with one death more, dead-lettered with the reason once that
  reaches ``task_max_worker_deaths`` (the broker's ``died`` settle) — and it is replaced. The
  death is seen by EOF on the child's pipe and by its pid (a pidfd on Linux, a poll elsewhere),
  for when a grandchild the task forked still holds that pipe open.
- ``worker_max_tasks_per_child`` / ``worker_max_memory_per_child`` (KiB, the child's resident
  memory read with psutil) retire a child after its task; a fresh one is started at once.

Children start by ``fork`` after the app is imported (the default), or by ``spawn``
(``--pool-start-method spawn``, ``worker_pool_start_method``) for code that is not fork-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import tempfile
from collections.abc import Callable
from multiprocessing.connection import Connection
from traceback import StackSummary
from typing import TYPE_CHECKING, Any

import msgspec

from ..einfo import body_stack, stopped_where
from ..exceptions import EncodeError, TaskRevokedError
from ..execution.decision import Decision, RemoteError
from ..execution.trace import errored, traced
from ..log import JsonFormatter
from ..request import current_request
from .children import (
    STACK_SIGNAL,
    Done,
    Job,
    Start,
    child_main,
    decode_done,
    decode_ready,
    encode_job,
    read_stack_dump,
)
from .pools import START_METHODS, PoolBroken, ProcessDied
from .runners import _killed
from .supervisor import STOP_SIGNALS

__all__ = ["START_METHODS", "PoolBroken", "ProcessDied", "ProcessPool", "ProcessRunner"]

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from ..appproto import AppLike
    from ..request import Request
    from ..task import Task
    from .runners import Active

logger = logging.getLogger("conveyor.worker")

TERMINATE_GRACE = 1.0  # seconds a child may outlive a terminating signal other than SIGKILL
PID_POLL = 1.0  # seconds between checks that a child lives, where there is no pidfd
RESTART_DELAY = 1.0  # before replacing a child that died before it was ready
FAILED_STARTS = 5  # children in a row that die before they are ready: the pool is broken
IGNORED_BY_CHILDREN = frozenset({signal.SIGTERM, signal.SIGINT})
STACK_WAIT = 0.5  # seconds a kill waits at most for the child to write where its task is


def signal_sent(signum: int) -> int:
    """The signal ``kill`` sends for ``signum``: children ignore SIGTERM and SIGINT, so SIGKILL.

    >>> signal_sent(signal.SIGTERM) == signal.SIGKILL, signal_sent(signal.SIGQUIT) == signal.SIGQUIT
    (True, True)
    """
    return signal.SIGKILL if signum in IGNORED_BY_CHILDREN else signum


_remote_classes: dict[str, type[RemoteError]] = {}


def remote_error(done: Done) -> RemoteError:
    """The child's exception as the worker reports it: a class with the original's qualified
    name (built on the fly: the original may not even be importable here), its message, and
    the child's decision (retry, reject, failure)."""
    cls = _remote_classes.get(done.exc_type)
    if cls is None:
        module, _, qualname = done.exc_type.rpartition(".")
        cls = type(qualname.rpartition(".")[2] or "Error", (RemoteError,), {})
        cls.__module__, cls.__qualname__ = module or "builtins", qualname
        _remote_classes[done.exc_type] = cls
    exc = cls(done.exc_message)
    exc.decision = Decision(
        done.verdict or "failure",
        exc=exc,
        traceback=done.traceback,
        countdown=done.countdown,
        args=done.args,
        kwargs=done.kwargs,
        requeue=done.requeue,
    )
    return exc


class Child:
    """One child process and its end of the pipe."""

    __slots__ = (
        "conn",
        "doomed",
        "exited",
        "index",
        "pending",
        "pid",
        "pidfd",
        "process",
        "ready",
        "stack_fd",
        "stack_path",
        "tasks_run",
    )

    def __init__(
        self, process: BaseProcess, conn: Connection, index: int, stack_fd: int | None, stack_path: str
    ) -> None:
        self.process = process
        self.conn = conn
        self.index = index
        # The file the child writes its stacks to on SIGUSR2: read here through this descriptor;
        # its name is removed once the child has opened it (or is gone), so nothing is left behind.
        self.stack_fd = stack_fd
        self.stack_path: str | None = stack_path or None
        self.pid = process.pid or 0
        self.ready = False
        self.pending: asyncio.Future[Done] | None = None  # the running job's reply
        self.tasks_run = 0
        self.doomed = False  # killed or retiring: its exit is expected, it takes no more jobs
        self.exited = False  # its pipe closed (or its pid ended): gone or going, being reaped
        self.pidfd: int | None = None  # Linux: readable once the process has ended

    @property
    def name(self) -> str:
        return f"{self.process.name} (pid {self.pid})"


class ProcessPool:
    """``size`` children, each running one task at a time; replaced when they die or retire."""

    def __init__(
        self,
        app: AppLike,
        size: int,
        hostname: str,
        method: str,
        max_tasks: int | None,
        max_memory_kib: int | None,
        keep_fds: list[tuple[int, int, int]],
        on_broken: Callable[[str], None] = lambda _why: None,
    ) -> None:
        if method not in START_METHODS:
            raise ValueError(f"pool start method {method!r}: choose one of {', '.join(START_METHODS)}")
        self.app = app
        self.size = size
        self.method = method
        self.max_tasks = max_tasks
        self.max_memory_kib = max_memory_kib
        self.context: Any = multiprocessing.get_context(method)  # fork or spawn: both have Process
        root = logging.getLogger()
        json_logs = any(isinstance(h.formatter, JsonFormatter) for h in root.handlers)
        files = [h.baseFilename for h in root.handlers if isinstance(h, logging.FileHandler)]
        self.start_spec = Start(
            hostname,
            app_spec=app_spec(app) if method == "spawn" else None,
            modules=sorted({t.run.__module__ for t in app.tasks.values()}) if method == "spawn" else [],
            log_level=root.getEffectiveLevel(),
            log_format="json" if json_logs else "text",
            log_file=files[0] if files else None,
            keep_fds=keep_fds,
        )
        self.children: dict[int, Child] = {}  # pid -> child, alive or not yet reaped
        self.idle: asyncio.Queue[Child] = asyncio.Queue()
        self.stopping = False
        self.replaced = 0  # children started in place of dead, killed or retired ones
        self._warned_memory = False
        self._failed_starts = 0  # children in a row that died before they were ready
        self._on_broken = on_broken
        self.broken: str | None = None  # why no child can start
        self._broken_event = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for index in range(1, self.size + 1):
            self._spawn(index)

    def _spawn(self, index: int) -> None:
        loop = self._loop
        assert loop is not None
        ours, theirs = self.context.Pipe(duplex=True)
        try:
            stack_fd, stack_path = tempfile.mkstemp(prefix="conveyor-stack-")
        except OSError:  # no writable temp directory (a read-only root file system): no stacks
            stack_fd, stack_path = None, ""
        args: tuple[Any, ...] = (self.start_spec, theirs, stack_path)
        if self.method == "fork":
            args += (self.app,)  # inherited by the fork, never pickled
        process = self.context.Process(target=child_main, args=args, name=f"PoolWorker-{index}", daemon=False)
        # Stop signals are held until the child ignores them (child_main): one landing in
        # between would run the worker's own handler in the child. The mask survives exec, so
        # this holds under spawn too, once multiprocessing's resource tracker runs: starting it
        # (at the first spawn) unblocks SIGINT and SIGTERM, so it is started first.
        if self.method == "spawn":
            from multiprocessing import resource_tracker

            resource_tracker.ensure_running()
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            process.start()
        except BaseException:
            if stack_fd is not None:
                _remove_stack_file(stack_fd, stack_path)
            raise
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        theirs.close()  # only the child holds it now: its death is an EOF here
        child = Child(process, ours, index, stack_fd, stack_path)
        self.children[child.pid] = child
        # Its exit shows as EOF on this pipe (only the child holds the other end), then it is
        # reaped. Not multiprocessing's sentinel: a forked child points every descriptor it
        # inherited at /dev/null (children.py), the sentinel's write end included.
        loop.add_reader(ours.fileno(), self._on_readable, child)
        # And by its pid: a grandchild the task forked (in C, where no at-fork hook of
        # children.py runs) may hold the pipe's other end open after the child died, so no EOF
        # ever comes. A pidfd turns readable when the process ends; without one (not Linux, or
        # an old kernel), a poll every PID_POLL seconds asks the same.
        try:
            child.pidfd = os.pidfd_open(child.pid)
        except (AttributeError, OSError):
            loop.call_later(PID_POLL, self._poll_pid, child)
        else:
            loop.add_reader(child.pidfd, self._on_pid_ended, child)

    async def close(self, timeout: float) -> None:
        """Stop every child: idle ones at once (an empty message), the others are killed —
        the worker calls this after its running tasks finished or were given back."""
        self.stopping = True
        for child in list(self.children.values()):
            self._retire(child)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.children and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for child in list(self.children.values()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGKILL)
        while self.children and loop.time() < deadline + 5:
            await asyncio.sleep(0.05)

    def busy_pids(self) -> list[int]:
        """The children running a task now."""
        return [c.pid for c in self.children.values() if c.pending is not None and not c.exited]

    async def wait_gone(self, pids: list[int], timeout: float) -> list[int]:
        """Until none of ``pids`` is a live child of the pool any more (reaped), or ``timeout``;
        returns those still there."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(pid in self.children for pid in pids) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        return [pid for pid in pids if pid in self.children]

    # -- jobs --------------------------------------------------------------------------------
    async def acquire(self) -> Child:
        """An idle child; ``PoolBroken`` once no child can start (the task was not started)."""
        while True:
            if self.broken is not None:
                raise PoolBroken(self.broken)
            if not self.idle.empty():
                child = self.idle.get_nowait()
            else:
                getter = asyncio.ensure_future(self.idle.get())
                broken = asyncio.ensure_future(self._broken_event.wait())
                try:
                    await asyncio.wait({getter, broken}, return_when=asyncio.FIRST_COMPLETED)
                except asyncio.CancelledError:
                    # The waiting task was cancelled (its worker stopping, a revoke): the pending
                    # get must go too, or it would later take an idle child for nobody; a child
                    # it already took goes back.
                    broken.cancel()
                    if getter.done() and not getter.cancelled():
                        self.idle.put_nowait(getter.result())
                    else:
                        getter.cancel()
                    raise
                broken.cancel()
                if not getter.done():
                    getter.cancel()
                    continue
                child = getter.result()
            if not (child.doomed or child.exited):
                return child

    def send(self, child: Child, job: Job) -> asyncio.Future[Done] | None:
        """Hand ``job`` to ``child``; None if the child turned out to be gone (an idle child
        the OOM killer took): the job never reached it, so it is no death of the task's."""
        loop = self._loop
        assert loop is not None
        raw = encode_job(job)  # EncodeError (arguments msgpack cannot carry): before any state changes
        if child.exited:
            return None
        try:
            child.conn.send_bytes(raw)
        except OSError:
            return None
        reply: asyncio.Future[Done] = loop.create_future()
        child.pending = reply
        return reply

    def release(self, child: Child) -> None:
        """The child finished its job: idle again, or retired if it reached a limit."""
        child.pending = None
        child.tasks_run += 1
        reason = self._recycle_reason(child)
        if reason is not None:
            logger.info("%s: %s; replacing it", child.name, reason)
            self._retire(child)
            if not self.stopping:
                self._spawn(child.index)
                self.replaced += 1
            return
        self.idle.put_nowait(child)

    def _recycle_reason(self, child: Child) -> str | None:
        if self.max_tasks is not None and child.tasks_run >= self.max_tasks:
            return f"ran {child.tasks_run} task(s) (max tasks per child {self.max_tasks})"
        if self.max_memory_kib is not None:
            import psutil  # only with a memory limit: psutil costs every worker's start-up otherwise

            try:
                used = psutil.Process(child.pid).memory_info().rss // 1024
            except psutil.Error:
                return None
            if used > self.max_memory_kib:
                if child.tasks_run == 1 and not self._warned_memory:
                    self._warned_memory = True
                    logger.warning(
                        "max memory per child %d KiB is below what a child uses after one task "
                        "(%d KiB): children may be replaced after every task; raise it",
                        self.max_memory_kib,
                        used,
                    )
                return f"resident memory {used} KiB is over max memory per child {self.max_memory_kib} KiB"
        return None

    def _check_start_size(self, child: Child) -> None:
        """As each child is ready, until said once: a memory limit below what a child uses before
        any task would replace the children after every task (the threads pool says it at start)."""
        if self.max_memory_kib is None or self._warned_memory:
            return
        import psutil

        try:
            used = psutil.Process(child.pid).memory_info().rss // 1024
        except psutil.Error:
            return
        if used > self.max_memory_kib:
            self._warned_memory = True
            logger.warning(
                "max memory per child %d KiB is below what a pool process uses at start (%d KiB): "
                "children will be replaced after every task; raise it",
                self.max_memory_kib,
                used,
            )

    def kill(self, child: Child, signum: int) -> None:
        """Stop ``child`` now (hard time limit, terminating revoke, its task given back at
        shutdown) and start its replacement (unless the pool is stopping)."""
        if child.exited:
            return
        # A child retired at shutdown is doomed too, and may still be running a task being given
        # back: it is killed all the same; only its replacement is decided once.
        replace = not child.doomed
        child.doomed = True
        child.pending = None
        signum = signal_sent(signum)
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signum)
        if signum != signal.SIGKILL and self._loop is not None:
            self._loop.call_later(TERMINATE_GRACE, self._kill_if_alive, child)
        if replace and not self.stopping:
            self.replaced += 1
            # From a loop callback, not from here: kill() is called while the run's
            # cancellation is being handled, and a child forked inside that handler would
            # run its whole life in it (every task's exception chained to CancelledError).
            if self._loop is not None:
                self._loop.call_soon(self._respawn, child.index)
            else:
                self._spawn(child.index)

    async def where(self, child: Child) -> StackSummary | None:
        """Where ``child``'s task is now (outermost frame first), or None if the child does not
        say within ``STACK_WAIT`` seconds: SIGUSR2 has it write its stacks (children.py)."""
        fd = child.stack_fd
        if fd is None or child.exited:
            return None
        try:
            # Its first line, then only what this signal writes (an earlier dump, say from an
            # operator's own kill -USR2, is not read again).
            head = os.pread(fd, 64, 0).partition(b"\n")[0] + b"\n"
            start = os.fstat(fd).st_size
            os.kill(child.pid, STACK_SIGNAL)
        except (OSError, ProcessLookupError):
            return None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STACK_WAIT
        seen = b""
        while loop.time() < deadline:
            await asyncio.sleep(0.01)
            if child.stack_fd != fd:  # the child died meanwhile: its descriptor is closed
                return None
            try:
                raw = os.pread(fd, 1 << 20, start)
            except OSError:
                return None
            if raw and raw == seen:  # written, and no longer growing
                break
            seen = raw
        return read_stack_dump(head + seen)

    def soft_limit(self, child: Child, reply: asyncio.Future[Done]) -> None:
        """SIGUSR1: ``SoftTimeLimitExceeded`` inside the body (if that job is still running)."""
        if child.pending is reply and not reply.done():
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGUSR1)

    def _retire(self, child: Child) -> None:
        child.doomed = True
        if child.pending is None and not child.conn.closed:
            with contextlib.suppress(OSError):
                child.conn.send_bytes(b"")  # "no more jobs": it exits; its EOF then reaps it

    # -- events from the children (on the loop) ------------------------------------------------
    def _on_readable(self, child: Child) -> None:
        if child.exited:  # already seen gone (by its pidfd or the poll) and being reaped
            return
        try:
            raw = child.conn.recv_bytes()
        except (EOFError, OSError):
            child.exited = True
            self._forget_reader(child)
            self._reap(child)
            return
        if not child.ready:
            decode_ready(raw)
            child.ready = True
            _unlink(child)  # the child has its stack file open by now
            self._failed_starts = 0
            self._check_start_size(child)
            if not child.doomed:
                self.idle.put_nowait(child)
            return
        reply = child.pending
        if reply is not None and not reply.done():
            reply.set_result(decode_done(raw))

    def _on_pid_ended(self, child: Child) -> None:
        """Its pidfd turned readable: the process ended, whoever still holds its pipe. What it
        sent before dying (a last reply) is read first."""
        with contextlib.suppress(OSError):
            while not child.exited and child.conn.poll(0):
                self._on_readable(child)
        if not child.exited:
            child.exited = True
            self._forget_reader(child)
            self._reap(child)

    def _poll_pid(self, child: Child) -> None:
        if child.exited:
            return
        if child.process.is_alive():
            loop = self._loop
            assert loop is not None
            loop.call_later(PID_POLL, self._poll_pid, child)
            return
        self._on_pid_ended(child)

    def _forget_reader(self, child: Child) -> None:
        loop = self._loop
        if child.pidfd is not None:
            if loop is not None:
                with contextlib.suppress(Exception):
                    loop.remove_reader(child.pidfd)
            with contextlib.suppress(OSError):
                os.close(child.pidfd)
            child.pidfd = None
        if loop is not None and not child.conn.closed:
            with contextlib.suppress(Exception):
                loop.remove_reader(child.conn.fileno())
            with contextlib.suppress(Exception):
                child.conn.close()

    def _reap(self, child: Child) -> None:
        """Its pipe closed: wait (without blocking the loop) until the process is gone."""
        loop = self._loop
        assert loop is not None
        child.process.join(0)
        if child.process.exitcode is None:
            loop.call_later(0.01, self._reap, child)
            return
        self._on_exit(child)

    def _on_exit(self, child: Child) -> None:
        code = child.process.exitcode
        how = describe_exit(code)
        self.children.pop(child.pid, None)
        _unlink(child)
        if child.stack_fd is not None:
            with contextlib.suppress(OSError):
                os.close(child.stack_fd)
            child.stack_fd = None
        with contextlib.suppress(Exception):
            child.process.close()
        reply = child.pending
        if reply is not None and not reply.done():
            reply.set_exception(ProcessDied(how, 0))
        if child.doomed:
            return
        child.doomed = True
        if self.stopping:
            return
        self.replaced += 1
        if child.ready:
            # No pause: a task that kills its child only ever fails itself (a death counted
            # against it each time), never the worker's other slots.
            logger.error("%s died (%s); starting a fresh one", child.name, how)
            self._spawn(child.index)
            return
        # It could not even start (an import error under spawn, a broken worker_process_init
        # handler): pause, or the worker would spin starting children that die at once; and
        # give up after a few in a row, or the worker would hold its tasks for ever.
        self._failed_starts += 1
        if self._failed_starts >= FAILED_STARTS:
            why = f"{self._failed_starts} pool processes in a row died before they were ready (last: {how})"
            logger.critical("%s; stopping the worker: its tasks go back to the queue", why)
            self.broken = why
            self._broken_event.set()
            self._on_broken(why)
            return
        logger.error(
            "%s died (%s) before it was ready; starting a fresh one in %.0fs", child.name, how, RESTART_DELAY
        )
        loop = self._loop
        assert loop is not None
        loop.call_later(RESTART_DELAY, self._respawn, child.index)

    def _respawn(self, index: int) -> None:
        """(A loop callback) Start the child of slot ``index`` again; a start that fails (fork
        refused, no temporary file) is tried again later, not left a slot short for good."""
        if self.stopping:
            return
        try:
            self._spawn(index)
        except Exception:
            logger.exception("could not start a pool process; trying again in %.0fs", RESTART_DELAY)
            loop = self._loop
            if loop is not None and not loop.is_closed():
                loop.call_later(RESTART_DELAY, self._respawn, index)

    def _kill_if_alive(self, child: Child) -> None:
        if self.children.get(child.pid) is child and not child.exited:  # not reaped (nor its pid reused)
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGKILL)

    def pids(self) -> list[int]:
        return sorted(self.children)


def _unlink(child: Child) -> None:
    if child.stack_path is not None:
        with contextlib.suppress(OSError):
            os.unlink(child.stack_path)
        child.stack_path = None


def _remove_stack_file(fd: int, path: str) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(path)


def describe_exit(code: int | None) -> str:
    """How a child ended, from its exit code (negative: the signal that killed it).

    >>> describe_exit(-11), describe_exit(3)
    ('killed by SIGSEGV', 'exit code 3')
    """
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def app_spec(app: AppLike) -> str:
    """``module:attribute`` under which a spawned child finds the app again."""
    main = sys.modules.get(app.main)
    candidates = [(app.main, main)] if main is not None else []
    candidates += [(n, m) for n, m in list(sys.modules.items()) if n != app.main]
    for name, module in candidates:
        if name in ("__main__", "__mp_main__") or module is None:
            continue
        for attr, value in list(vars(module).items()):
            if value is app:
                return f"{name}:{attr}"
    raise ValueError(
        "-P processes with the spawn start method imports the app again in each child: define it "
        "at the top level of an importable module (or use the default fork start method)"
    )


class ProcessRunner:
    """Runs a sync body in a child of ``pool`` and awaits its reply."""

    # Arguments decoded from pickle may hold any object, which msgpack would change on the way
    # to the child (a set into a list): the processor fails such a task instead (no other
    # runner has this attribute).
    refuses_pickled_arguments = True

    def __init__(self, pool: ProcessPool, max_deaths: int) -> None:
        self.pool = pool
        self.max_deaths = max_deaths

    async def run(
        self, task: Task[Any, Any], request: Request, active: Active, soft: float | None, hard: float | None
    ) -> Any:
        pool = self.pool
        job = Job(request, soft)
        while True:
            child = await pool.acquire()
            if active.killed is not None:  # revoked (terminate) while it waited for a free child
                pool.idle.put_nowait(child)
                raise TaskRevokedError("revoked while running (terminated)")
            try:
                reply = pool.send(child, job)
            except (msgspec.EncodeError, TypeError) as bad:
                pool.idle.put_nowait(child)
                raise EncodeError(
                    f"the arguments of {task.name} cannot be sent to a -P processes child "
                    f"(JSON and msgpack arguments can): {bad}"
                ) from None
            if reply is not None:
                break
        active.waiter, active.pid = reply, child.pid
        loop = asyncio.get_running_loop()
        timers = []
        if soft:
            timers.append(loop.call_later(soft, pool.soft_limit, child, reply))
        if hard:
            timers.append(loop.call_later(hard, active.stop_waiting, "time"))
        try:
            done = await reply
        except asyncio.CancelledError:
            reason = active.killed
            if reason is None:  # the worker itself is being cancelled: the task was given back
                pool.kill(child, signal.SIGKILL)
                raise
            signum = signal.SIGKILL if reason == "time" else _signal_number(active.signal)
            how = signal.Signals(signal_sent(signum)).name  # the log names the signal kill() sends
            try:
                active.stopped_at = body_stack(await pool.where(child), task.run)
            finally:  # killed even if the worker itself is cancelled meanwhile
                pool.kill(child, signum)
            at = f"; it was at {stopped_where(active.stopped_at)}" if active.stopped_at else ""
            logger.warning(
                "%s: killing %s running task %s (%s)%s", task.name, child.name, request.id, how, at
            )
            exc = _killed(reason, hard, active.stopped_at)  # already from the body's frame on
            if traced(task):  # the child is gone: its hooks run here, with self.request set
                token = current_request.set(request)
                try:
                    errored(task, request, exc)
                finally:
                    current_request.reset(token)
            raise exc from None
        except ProcessDied as died:
            raise ProcessDied(died.how, self.max_deaths) from None
        finally:
            for timer in timers:
                timer.cancel()
        pool.release(child)
        if done.unencodable is not None:  # as the other pools say it (message.encode_result)
            raise EncodeError(f"task result is not JSON-serialisable: {done.unencodable}")
        if done.verdict is not None:
            raise remote_error(done)
        if done.json:
            return msgspec.json.decode(done.result)
        return msgspec.msgpack.decode(done.result)


def _signal_number(name: str | None) -> int:
    try:
        return int(signal.Signals[name]) if name else signal.SIGTERM
    except KeyError:
        return signal.SIGTERM

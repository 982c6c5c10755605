"""The ways to run a task body, one runner per pool, chosen once per task (see plan.py).

- ``InlineRunner`` (``-P solo``, sync tasks): on the event-loop thread itself, no await at all —
  the fastest way to run tiny tasks, one at a time.
- ``ThreadRunner`` (``-P threads``, the default, and ``-P asyncio``, sync tasks): in one of the
  worker's slot threads (slots.py); the loop awaits its outcome, handed back in batches.
- ``AsyncRunner`` (``async def`` tasks, on every pool): as an asyncio task on the loop.

Time limits and terminating revokes: a sync body gets the exception raised inside its thread by
the watchdog (limits.py); at the hard limit (or a terminating revoke) the worker stops waiting
for it. An async body is cancelled. Either way the runner raises ``TimeLimitExceeded`` or
``TaskRevokedError`` to the processor, which reports it like any failure.

``SystemExit`` and ``KeyboardInterrupt`` from task code come out of a runner as exceptions like
any other (the processor reports them as the task's failure): they must never stop the loop.

Each runner calls the task's hooks and run signals (``execution/trace.py``) where the body runs:
in its thread, or in its asyncio task; outside the span where a time limit can strike.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from dataclasses import dataclass
from traceback import StackSummary
from typing import TYPE_CHECKING, Any

from ..einfo import body_stack
from ..exceptions import SoftTimeLimitExceeded, TaskRevokedError, TimeLimitExceeded
from ..execution.trace import errored, run_traced, started, succeeded, traced
from ..request import current_request
from .limits import RunningCall, SoftLimitCoroutine, Watchdog

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..request import Request
    from ..task import Task
    from .slots import SlotThreads


@dataclass(slots=True)
class Active:
    """A task this worker is running now (what revokes, heartbeats and ``inspect`` see)."""

    id: str
    task: str
    delivery: int
    started: float
    kill: asyncio.Future[str] | None = None  # async tasks: resolved to stop waiting for them
    waiter: asyncio.Future[Any] | None = None  # sync tasks in threads: cancelled to stop waiting
    call: RunningCall | None = None
    killed: str | None = None  # why the worker stopped waiting: "time" or "revoked"
    request: Request | None = None  # its arguments and attempt, for the heartbeat's info
    signal: str | None = None  # a terminating revoke's --signal (the process pool sends it)
    on_kill: Callable[[], None] | None = None  # runs on a streak (streaks.py): how to stop waiting
    stopped_at: StackSummary | None = None  # where the body was when the worker stopped waiting
    enqueued: float | None = None  # when the task was sent (its envelope's created time)
    pid: int | None = None  # -P processes: the pool child running it (else the worker's own)

    def stop_waiting(self, reason: str) -> None:
        """On the loop: stop waiting for this run (hard time limit or terminating revoke)."""
        if self.killed is None:
            self.killed = reason
        if self.stopped_at is None and self.call is not None:
            self.stopped_at = self.call.stack()  # a sync body in a slot thread: where it is now
        if self.kill is not None and not self.kill.done():
            self.kill.set_result(reason)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.cancel()
        if self.on_kill is not None:
            self.on_kill()


def _call_args(task: Task[Any, Any], request: Request) -> list[Any]:
    return [task, *request.args] if task.bind else request.args


def _run_body(task: Task[Any, Any], request: Request, call: RunningCall) -> Any:
    """A sync body inside ``call`` (the span where limits strike), hooks and signals around it."""
    call_args = _call_args(task, request)
    return run_traced(task, request, lambda: call.run(lambda: task.run(*call_args, **request.kwargs)))


def _killed(
    reason: str, hard: float | None, stopped_at: StackSummary | None = None, body: Any = None
) -> Exception:
    """The failure of a run the worker stopped waiting for; ``stopped_at``: where it was then,
    shown from the frame of ``body`` (the task's ``run``) on."""
    exc: TaskRevokedError | TimeLimitExceeded = (
        TaskRevokedError("revoked while running (terminated)")
        if reason == "revoked"
        else TimeLimitExceeded(f"hard time limit ({hard}s) exceeded")
    )
    exc.stopped_at = body_stack(stopped_at, body) if body is not None else stopped_at
    return exc


class _SyncLimits:
    """Arms a sync body's soft and hard limits on the watchdog thread, which fires them even
    while the event loop itself is busy running a task (the solo pool)."""

    def __init__(self, watchdog: Watchdog, loop: asyncio.AbstractEventLoop) -> None:
        self._watchdog = watchdog
        self._loop = loop

    def arm(
        self, call: RunningCall, soft: float | None, hard: float | None, active: Active | None
    ) -> list[int]:
        handles = []
        now = time.monotonic()
        if soft:

            def on_soft() -> None:
                call.interrupt(SoftTimeLimitExceeded)

            handles.append(self._watchdog.call_at(now + soft, on_soft))
        if hard:
            loop = self._loop

            def on_hard() -> None:
                if active is not None and active.stopped_at is None:
                    active.stopped_at = call.stack()  # before the exception unwinds it
                call.interrupt(TimeLimitExceeded)
                if active is not None and not loop.is_closed():
                    loop.call_soon_threadsafe(active.stop_waiting, "time")

            handles.append(self._watchdog.call_at(now + hard, on_hard))
        return handles

    def disarm(self, handles: list[int]) -> None:
        for handle in handles:
            self._watchdog.cancel(handle)

    def run_here(
        self,
        task: Task[Any, Any],
        request: Request,
        call: RunningCall,
        soft: float | None,
        hard: float | None,
        active: Active | None,
    ) -> Any:
        """Run a sync body in this thread: its limits armed (the watchdog's lock is touched
        only for a task that has any), ``current_request`` set, hooks and signals around it."""
        handles = self.arm(call, soft, hard, active) if soft or hard else None
        token = current_request.set(request)
        try:
            return _run_body(task, request, call)
        finally:
            current_request.reset(token)
            if handles:
                self.disarm(handles)


class InlineRunner(_SyncLimits):
    """Runs a sync body on the loop thread (solo pool)."""

    def run(
        self, task: Task[Any, Any], request: Request, active: Active, soft: float | None, hard: float | None
    ) -> Any:
        call = RunningCall()
        active.call = call
        return self.run_here(task, request, call, soft, hard, None)


class ThreadRunner(_SyncLimits):
    """Runs a sync body in one of the worker's slot threads (slots.py) and awaits it."""

    def __init__(
        self,
        watchdog: Watchdog,
        loop: asyncio.AbstractEventLoop,
        threads: SlotThreads,
        on_abandoned: Callable[[], None],
    ) -> None:
        super().__init__(watchdog, loop)
        self._threads = threads
        self._on_abandoned = on_abandoned

    async def run(
        self, task: Task[Any, Any], request: Request, active: Active, soft: float | None, hard: float | None
    ) -> Any:
        call = RunningCall()

        def body() -> Any:
            token = current_request.set(request)
            try:
                return _run_body(task, request, call)
            finally:
                current_request.reset(token)

        job = self._threads.submit(body)
        active.call, active.waiter = call, job.future
        # Limits are armed only for tasks that have them: most have none, and the watchdog's
        # lock is then never touched on this path.
        handles = self.arm(call, soft, hard, active) if soft or hard else None
        try:
            # Awaited directly (no asyncio.wait per task: this is the threads pool's hot path);
            # a hard limit or a terminating revoke cancels this wait (Active.stop_waiting).
            value, exc = await job.future
        except asyncio.CancelledError:
            if active.killed is None:
                raise  # the worker itself is being cancelled
            self._threads.abandon(job)  # the thread runs on; its late outcome is moot
            self._on_abandoned()
            raise _killed(active.killed, hard, active.stopped_at, task.run) from None
        finally:
            if handles:
                self.disarm(handles)
        if exc is not None:
            raise exc
        return value


@dataclass(frozen=True, slots=True)
class _Raised:
    """An async task's SystemExit/KeyboardInterrupt, carried out of its asyncio task as a value."""

    exc: BaseException


class AsyncRunner:
    """Runs an ``async def`` body as an asyncio task on the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    async def run(
        self, task: Task[Any, Any], request: Request, active: Active, soft: float | None, hard: float | None
    ) -> Any:
        loop = self._loop
        wrapper = SoftLimitCoroutine(task.run(*_call_args(task, request), **request.kwargs))
        hooks = traced(task)

        async def drive() -> Any:
            if hooks:
                started(task, request)
            t0 = time.perf_counter()
            try:
                value = await wrapper
            except (SystemExit, KeyboardInterrupt) as exc:
                # Raised out of an asyncio task, they would stop the whole event loop.
                if hooks:
                    errored(task, request, exc)
                return _Raised(exc)
            except asyncio.CancelledError:
                if hooks and active.killed is not None:  # hard limit or terminate: its ending
                    errored(task, request, _killed(active.killed, hard, active.stopped_at, task.run))
                raise
            except BaseException as exc:
                if hooks:
                    errored(task, request, exc)
                raise
            if hooks:
                succeeded(task, request, value, time.perf_counter() - t0)
            return value

        ctx = contextvars.copy_context()
        ctx.run(current_request.set, request)
        inner = loop.create_task(drive(), context=ctx)
        kill: asyncio.Future[str] = loop.create_future()
        active.kill = kill
        timers = []
        if soft:
            timers.append(loop.call_later(soft, wrapper.fire_soft, inner))
        if hard:
            timers.append(loop.call_later(hard, active.stop_waiting, "time"))
        try:
            await asyncio.wait({inner, kill}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for timer in timers:
                timer.cancel()
        if inner.done():
            value = inner.result()
            if isinstance(value, _Raised):
                raise value.exc
            return value
        active.stopped_at = wrapper.stack()  # where it awaits, before the cancellation unwinds it
        inner.cancel()
        inner.add_done_callback(_consume_result)
        raise _killed(kill.result(), hard, active.stopped_at, task.run)


def _consume_result(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()  # mark retrieved: the task was abandoned, its late outcome is moot

"""Time limits and terminate-on-revoke for running tasks.

Sync tasks (thread pool or solo): Python cannot kill a thread, so a limit *raises an
exception inside the task's thread* with ``PyThreadState_SetAsyncExc`` (a hard one as a
BaseException, ``_Stop``, so that the task's ``except Exception:`` cannot swallow it). The
exception arrives at the next Python bytecode the thread runs: code looping in Python or
calling short C functions stops promptly; code blocked inside one long C call (a socket read
with no timeout, a sleep) sees it only when that call returns. At the hard limit the worker
does not wait for that: it fails the task with ``TimeLimitExceeded``, frees the slot, and
leaves the thread to finish in the background (counted as *abandoned* in the worker's stats).

Async tasks: the soft limit is delivered as ``SoftTimeLimitExceeded`` at the task's current
``await`` (a cancellation translated on the way in, so ``except SoftTimeLimitExceeded:`` works
in async code too); the hard limit cancels the task.
"""

from __future__ import annotations

import asyncio
import ctypes
import itertools
import sys
import threading
import time
import traceback
from collections.abc import Callable, Coroutine, Generator
from types import FrameType
from typing import Any

from ..exceptions import SoftTimeLimitExceeded, TaskRevokedError, TimeLimitExceeded

_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.argtypes = (ctypes.c_ulong, ctypes.py_object)
_set_async_exc.restype = ctypes.c_int


class _Stop(BaseException):
    """What a hard time limit or a terminating revoke raises inside a sync task's thread.

    A BaseException, as ``KeyboardInterrupt`` is: a task's own ``except Exception:`` (a loop
    that logs and goes on to the next item) must not swallow it and run on. Where the body
    ends (``RunningCall.run``) it becomes the public exception, ``public``, with the same
    traceback, so results, hooks and signals see ``TimeLimitExceeded`` / ``TaskRevokedError``.
    The soft limit stays an ``Exception`` (``SoftTimeLimitExceeded``): it is meant to be caught.
    """

    public: type[Exception]


class _HardLimit(_Stop):
    public = TimeLimitExceeded


class _Terminate(_Stop):
    public = TaskRevokedError


#: The exception raised in the thread for each public one a caller asks for.
_RAISED: dict[type[BaseException], type[BaseException]] = {
    TimeLimitExceeded: _HardLimit,
    TaskRevokedError: _Terminate,
}


class RunningCall:
    """A sync task body running in some thread; exceptions may be raised in it only while it runs."""

    __slots__ = ("_lock", "done", "interrupted", "stopped", "thread_id")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.thread_id: int | None = None
        self.done = False
        self.interrupted = False
        self.stopped = False  # a hard stop was raised: a second one (revoke + limit) is not

    def run(self, fn: Callable[[], Any]) -> Any:
        with self._lock:
            self.thread_id = threading.get_ident()
        try:
            try:
                return fn()
            finally:
                with self._lock:
                    self.done = True
                    if self.interrupted:
                        # Drop an exception injected too late to matter, so it cannot surface
                        # in whatever this thread runs next.
                        _set_async_exc(ctypes.c_ulong(threading.get_ident()), ctypes.py_object())
        except _Stop as stop:
            # Outside the finally: a stop that lands after fn() returned, before it was
            # dropped, is translated too (one stop only: ``interrupt`` raises no second).
            tb = stop.__traceback__  # from this frame: the raise below adds it again
            raise stop.public().with_traceback(tb.tb_next if tb else None) from None

    def stack(self) -> traceback.StackSummary | None:
        """Where the body is now (outermost frame first); None if it is not running. Read when
        the worker stops waiting for it, so that its failure shows where it was stuck."""
        with self._lock:
            if self.done or self.thread_id is None:
                return None
            frame = sys._current_frames().get(self.thread_id)
        try:  # on the watchdog thread too: nothing here may ever stop it
            return None if frame is None else traceback.extract_stack(frame)
        except Exception:
            return None

    def interrupt(self, exc_type: type[BaseException]) -> bool:
        """Raise ``exc_type`` in the running thread (a hard stop as a ``_Stop`` that ``except
        Exception:`` lets through); False if the call already finished."""
        raised = _RAISED.get(exc_type, exc_type)
        with self._lock:
            if self.done or self.thread_id is None:
                return False
            if self.stopped:  # already on its way out (a revoke's control and loop paths both ask)
                return True
            self.stopped = raised is not exc_type
            self.interrupted = True
            changed: int = _set_async_exc(ctypes.c_ulong(self.thread_id), ctypes.py_object(raised))
            return changed == 1


class Watchdog:
    """One thread that fires deadlines for sync tasks, even when the event loop itself is busy
    running a task (the solo pool).

    Armed deadlines live in a dict, so a cancelled one is simply gone: memory stays bounded by
    the number of running tasks however many tasks pass through (a heap would keep every
    cancelled entry until its deadline).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._armed: dict[int, tuple[float, Callable[[], None]]] = {}
        self._ids = itertools.count()
        self._wake_at = float("inf")
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name="conveyor-watchdog", daemon=True)
        self._thread.start()

    def call_at(self, when: float, fn: Callable[[], None]) -> int:
        """Call ``fn`` at monotonic time ``when`` (from the watchdog thread); returns a handle."""
        handle = next(self._ids)
        with self._cond:
            self._armed[handle] = (when, fn)
            if when < self._wake_at:
                self._cond.notify()
        return handle

    def cancel(self, handle: int) -> None:
        with self._cond:
            self._armed.pop(handle, None)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                if self._stopped:
                    return
                now = time.monotonic()
                due = [(h, fn) for h, (when, fn) in self._armed.items() if when <= now]
                for handle, _ in due:
                    del self._armed[handle]
                if not due:
                    self._wake_at = min((when for when, _ in self._armed.values()), default=float("inf"))
                    self._cond.wait(None if self._wake_at == float("inf") else self._wake_at - now)
                    self._wake_at = 0.0  # awake: call_at need not notify
                    continue
            for _, fn in due:
                fn()


def coroutine_stack(coro: Any) -> traceback.StackSummary:
    """Where a suspended coroutine is: its frame, then the frame of what it awaits, and so on
    down to the innermost ``await`` (an asyncio task's own ``get_stack`` gives only the first)."""
    frames: list[tuple[FrameType, int]] = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:
            break
        frames.append((frame, frame.f_lineno))
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return traceback.StackSummary.extract(frames)


class SoftLimitCoroutine:
    """Runs a coroutine so that a cancellation requested by ``fire_soft()`` arrives inside it as
    ``SoftTimeLimitExceeded`` instead of ``CancelledError``."""

    def __init__(self, coro: Coroutine[Any, Any, Any]) -> None:
        self._coro = coro
        self._soft_pending = False

    def stack(self) -> traceback.StackSummary:
        """Where the body is suspended now (see ``coroutine_stack``)."""
        return coroutine_stack(self._coro)

    def fire_soft(self, task: asyncio.Task[Any]) -> None:
        self._soft_pending = True
        task.cancel()

    def __await__(self) -> Generator[Any, Any, Any]:
        coro = self._coro
        send: Any = None
        error: BaseException | None = None
        while True:
            try:
                if error is not None:
                    exc, error = error, None
                    if isinstance(exc, asyncio.CancelledError) and self._soft_pending:
                        self._soft_pending = False
                        task = asyncio.current_task()
                        if task is not None:
                            task.uncancel()  # the task may go on awaiting after cleanup
                        exc = SoftTimeLimitExceeded("soft time limit exceeded")
                    yielded = coro.throw(exc)
                else:
                    yielded = coro.send(send)
            except StopIteration as stop:
                return stop.value
            try:
                send = yield yielded
            except BaseException as exc:
                error = exc

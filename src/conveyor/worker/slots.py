"""The threads pool's slot threads: where sync task bodies run under ``-P threads`` (and ``-P asyncio``).

Why not ``loop.run_in_executor``: per task it builds a ``concurrent.futures.Future``, a work item
and an asyncio future chained to it, and wakes the event loop once per finished task through its
self-pipe. Profiled on the benchmark's one-``INCR`` task, those hand-offs cost more than the task.
Here:

- Slot threads take bodies from one ``queue.SimpleQueue`` (a C queue, no Python-level locks) and
  are started on demand, up to ``size`` at once.
- A finished body's outcome goes on a list; only the first outcome of a batch wakes the loop
  (``call_soon_threadsafe``), which then resolves every waiting future of the batch at once.
  Under load, one wake-up settles many tasks; idle, each one still wakes the loop at once.
- The outcome crosses as a value ``(value, exception)``, never as a future's exception:
  ``SystemExit`` raised by task code is that task's failure and must not stop the loop.

A body abandoned by the loop (hard time limit, terminating revoke) keeps its thread until it
returns; a replacement thread takes its slot at once, so that the pool keeps ``size`` working
slots (while fewer than ``spare`` abandoned bodies still run: a bound on leaked threads, as the
old executor's ``size + spare`` threads were), and the abandoned thread exits when its body
finally returns instead of taking more work. A body abandoned before any thread took it (all
slots busy) is never run. Slot threads are daemon threads: one stuck in C at exit must not hold
the process up (its task was given back or failed already).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any

Outcome = tuple[Any, BaseException | None]  # (value, exception) of a body


class Job:
    """One body handed to the slots.

    ``started`` (set by its thread before it looks at ``abandoned``) and ``abandoned`` (set by
    the loop before it looks at ``started``) tell the two sides apart without a lock: under the
    GIL at least one of them sees the other's write, so a body abandoned before it started is
    skipped, and one abandoned while running retires its thread (``retiring``, loop-side)."""

    __slots__ = ("abandoned", "fn", "future", "retiring", "started")

    def __init__(self, fn: Callable[[], Any], future: asyncio.Future[Outcome]) -> None:
        self.fn = fn
        self.future = future
        self.started = False
        self.abandoned = False
        self.retiring = False


class SlotThreads:
    def __init__(self, loop: asyncio.AbstractEventLoop, size: int, spare: int, name: str) -> None:
        self._loop = loop
        self._size = size
        self._spare = spare
        self._name = name
        self._jobs: SimpleQueue[Job | None] = SimpleQueue()
        self._done: list[tuple[Job, Outcome]] = []
        self._done_lock = threading.Lock()
        self._wake_pending = False
        # Loop-side bookkeeping (only the loop thread touches these): bodies submitted and not
        # yet resolved, working threads, and threads retiring with an abandoned body.
        self._in_flight = 0
        self._threads = 0
        self._abandoned = 0
        self._count = 0
        self._closed = False

    @property
    def size(self) -> int:
        return self._size

    def submit(self, fn: Callable[[], Any]) -> Job:
        """(Loop) Run ``fn`` in a slot thread; await ``job.future`` for its (value, exception)."""
        job = Job(fn, self._loop.create_future())
        self._in_flight += 1
        if self._threads < self._in_flight and self._may_start():
            self._start()
        self._jobs.put(job)
        return job

    def abandon(self, job: Job) -> None:
        """(Loop) Stop waiting for ``job``. Running: its thread retires once the body returns,
        and a fresh thread takes its slot. Not started yet: it never runs."""
        if job.abandoned:
            return
        job.abandoned = True
        self._in_flight -= 1
        if job.started:
            job.retiring = True
            self._threads -= 1
            self._abandoned += 1
        if self._threads < self._in_flight and self._may_start():
            self._start()

    def close(self) -> None:
        """(Loop) Let idle threads exit; bodies still running finish on their daemon threads."""
        if self._closed:
            return
        self._closed = True
        for _ in range(self._threads):
            self._jobs.put(None)

    def _may_start(self) -> bool:
        """At most ``size`` working threads, and ``size + spare`` threads in all: past ``spare``
        bodies stuck at once, the pool works with fewer slots rather than grow without end."""
        return self._threads < self._size and self._threads + self._abandoned < self._size + self._spare

    def _start(self) -> None:
        self._count += 1
        self._threads += 1
        thread = threading.Thread(target=self._slot, name=f"{self._name}_{self._count}", daemon=True)
        thread.start()

    def _slot(self) -> None:
        jobs, done, lock = self._jobs, self._done, self._done_lock
        while True:
            job = jobs.get()
            if job is None:
                return
            job.started = True
            if job.abandoned:  # revoked or timed out while it waited for a thread: not run
                if not self._call_loop(self._skipped, job):
                    return
                continue
            try:
                outcome: Outcome = (job.fn(), None)
            except BaseException as exc:  # SystemExit too: the task's failure, reported as a value
                outcome = (None, exc)
            if job.abandoned:
                # Its slot went to a replacement: this thread retires with its late outcome.
                self._call_loop(self._retired, job)
                return
            with lock:
                done.append((job, outcome))
                if self._wake_pending:
                    continue
                self._wake_pending = True
            if not self._call_loop(self._resolve, None):
                return

    def _call_loop(self, fn: Callable[[Any], None], arg: Any) -> bool:
        """(Slot thread) Run ``fn(arg)`` on the loop; False once the loop is closed."""
        try:
            self._loop.call_soon_threadsafe(fn, arg)
        except RuntimeError:  # the loop is closed: nobody waits for outcomes any more
            return False
        return True

    def _skipped(self, job: Job) -> None:
        """(Loop) A thread skipped an abandoned body; if ``abandon`` saw it started (both sides
        wrote before they read), that thread is working after all."""
        if job.retiring:
            self._unretire()

    def _retired(self, _job: Job) -> None:
        self._abandoned -= 1

    def _unretire(self) -> None:
        self._abandoned -= 1
        self._threads += 1

    def _resolve(self, _: None) -> None:
        """(Loop) Hand every finished body of the batch to its waiter."""
        with self._done_lock:
            batch = self._done.copy()
            self._done.clear()
            self._wake_pending = False
        for job, outcome in batch:
            if job.abandoned:
                # Abandoned just as it finished: its thread did not retire after all.
                if job.retiring:
                    self._unretire()
                continue
            self._in_flight -= 1
            if not job.future.done():  # cancelled: the worker itself is being cancelled
                job.future.set_result(outcome)

"""Streaks: under the threads pool, a slot thread runs task after task from the inbox by itself.

Handing each task from the event loop to a slot thread and its outcome back costs more than a
tiny task: a future, a wake-up of the thread, a wake-up of the loop, a coroutine step, and the
GIL passed back and forth between the loop and the slots at every one of them (profiled in
docs/benchmarks.md). On a streak the loop hands one delivery to a slot thread, which runs it and
then takes the next delivery from the inbox itself, and the next, without the loop. The thread
reports each run itself, through the same ``Processor.finish`` as any other run (the settler
takes outcomes from any thread and wakes the loop once per batch), and the fetcher learns of
the finished runs in batches too (``collect_done``): the loop is woken only when the fetcher
waits for exactly that room.

A delivery may join a streak only if nothing has to be awaited around its body: a sync task
with no run guards (locks, limits), acknowledged after the run (at-least-once), not a
redelivery (whose ``running`` mark must reach the broker first), not a chord body (whose header
results are read first), and not refused at intake. The first delivery that may not ends the
streak: it goes back to the consumer that started the streak, which takes it the usual way.
A streak also ends when the inbox is empty or the worker is stopping. The consumer stays busy
while its streak runs, so the pool still runs at most ``concurrency`` tasks at once.

How many streaks run at once: one for short runs, as many as needed for long ones. Measured on
the benchmark's one-``INCR`` task (60 µs a run), every extra thread taking turns at the GIL
costs more than the overlap of round trips it buys (one streak: 0.96x ``-P solo``; up to eight:
0.6x; two: the same drain in ``bench/pools.py`` for 20-25 % more CPU per task with one
process, docs/benchmarks.md), while tasks that wait (an HTTP call, a query of a few
milliseconds) want every slot. So at most ``LIMIT`` streaks whose current run is younger than
``STALL`` run at once, and a run that takes longer than ``STALL`` no longer counts: waiting
tasks get up to ``concurrency`` streaks (as many threads as the one-task-per-thread pool ran).
A consumer whose delivery would make one streak too many sets it aside (first in line, in the
order taken) for the running streaks and waits, to look again every ``TICK`` (backing off to
``TICK_MAX`` while the streaks keep up: each look wakes the loop) or when a streak ends; a
streak over the limit ends after its current run.

Hard time limits and terminating revokes work as for any run in a slot thread: the exception is
raised in the thread, and the worker stops waiting at once (``Streak.kill``): the run is
reported as killed from the loop, the streak's thread is abandoned (it retires when the body
returns, reporting nothing), and a fresh slot thread takes its place. Which side reports a run
— the thread when the body returns, or the loop when it kills it — is settled under the
streak's lock, so a run is reported exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from .intake import Refused, intake
from .limits import RunningCall
from .runners import Active, _killed

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..brokers import Delivery
    from ..message import Envelope
    from ..request import Request
    from ..task import Task
    from .plan import Plan
    from .processor import Processor
    from .runners import ThreadRunner
    from .slots import Job, SlotThreads

NO_VALUE: Any = object()  # a run that raised: its value is this
LIMIT = 1  # streaks with a young run at once (see the module doc)
STALL = 0.001  # a streak whose run has taken longer than this no longer counts against LIMIT
TICK = 0.001  # how often held-back consumers look again (only while some are held back)...
TICK_MAX = 0.016  # ...backing off to this while the running streaks keep up (each look wakes the loop)
ROOM_EVERY = 16  # runs between two looks at the fetcher's room from a streak (_count_done)


@dataclass(slots=True)
class Run:
    """One delivery on a streak, from intake to its outcome."""

    d: Delivery
    env: Envelope
    task: Task[Any, Any]
    request: Request
    plan: Plan
    active: Active | None = None
    t0: float = 0.0
    value: Any = NO_VALUE
    exc: BaseException | None = None
    runtime: float = 0.0


class Streak:
    """One slot thread's streak. ``current`` (the run in its body) and ``abandoned`` change
    only under ``lock``: see the module doc."""

    __slots__ = ("abandoned", "current", "job", "lock", "retire")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.current: Run | None = None
        self.abandoned = False
        self.retire = False  # over the limit: end after the current run (set by the loop)
        self.job: Job | None = None


class Streaks:
    """Starts streaks for the processor's consumers, decides how many run at once, and counts
    their finished runs done for the fetcher in batches (the runs report themselves)."""

    def __init__(
        self,
        processor: Processor,
        threads: SlotThreads,
        runner: ThreadRunner,
        loop: asyncio.AbstractEventLoop,
        on_abandoned: Callable[[], None],
    ) -> None:
        self._processor = processor
        self._threads = threads
        self._runner = runner
        self._loop = loop
        self._on_abandoned = on_abandoned
        # Runs reported by slot threads and not yet counted done by the fetcher (_count_done).
        self._done = 0
        self._done_lock = threading.Lock()
        self._wake_pending = False
        processor.fetcher.collect_done = self.collect_done
        processor.fetcher.runs_at_once = self.runs_at_once
        self.given_up = False  # shutdown gave back what still runs: late outcomes are dropped
        self._running: set[Streak] = set()
        self._held_back: list[asyncio.Future[None]] = []  # consumers waiting to look again
        self._timer: asyncio.TimerHandle | None = None
        self._tick_every = TICK

    # -- loop side ------------------------------------------------------------------------------
    def _keeping_up(self) -> list[Streak]:
        """(Loop) The running streaks that count against the limit (not stalled in a run)."""
        now = time.perf_counter()
        return [st for st in self._running if (run := st.current) is None or now - run.t0 < STALL]

    def wanted(self) -> bool:
        """(Loop) May another streak start? See the module doc."""
        if len(self._running) < LIMIT:
            return True
        return len(self._keeping_up()) < LIMIT

    async def hold_back(self, d: Delivery) -> None:
        """(Loop) Leave ``d`` to the running streaks; return when another streak may be wanted
        (the caller then takes the next delivery from the inbox and asks again)."""
        self._processor.fetcher.inbox.set_aside(d)
        fut = self._loop.create_future()
        self._held_back.append(fut)
        if self._timer is None:
            self._timer = self._loop.call_later(self._tick_every, self._tick)
        await fut

    def _tick(self) -> None:
        """(Loop) Wake a held-back consumer once another streak is wanted (all of them when
        stopping); end a streak that is one too many (runs that stalled got their replacements
        and then finished). Ticks on while any consumer is held back: every ``TICK`` after a
        look that found a stall, backing off to ``TICK_MAX`` while the streaks keep up."""
        self._timer = None
        if not self._held_back:
            return
        keeping_up = self._keeping_up()
        for streak in keeping_up[LIMIT:]:
            streak.retire = True
        if self._processor.stopping:
            self._wake_held_back(everyone=True)
        elif len(keeping_up) < LIMIT:
            self._wake_held_back()
            self._tick_every = TICK
        else:
            self._tick_every = min(self._tick_every * 2, TICK_MAX)
        if self._held_back:
            self._timer = self._loop.call_later(self._tick_every, self._tick)

    def _wake_held_back(self, everyone: bool = False) -> None:
        """One held-back consumer (one more streak is wanted at a time; with ``-P asyncio`` a
        hundred consumers woken at every streak's end would each take and set aside a delivery
        for nothing), or all of them."""
        held = self._held_back
        while held:
            fut = held.pop(0)
            if not fut.done():
                fut.set_result(None)
                if not everyone:
                    return

    async def run(self, first: Run) -> Delivery | None:
        """(Loop) Run ``first`` and the streak after it in a slot thread; return the delivery
        that ended the streak (for the caller to take the usual way), if any."""
        streak = Streak()
        job = self._threads.submit(lambda: self._streak(streak, first))
        streak.job = job
        self._running.add(streak)
        try:
            leftover, exc = await job.future
        finally:
            self._running.discard(streak)
            self._apply_done()
            self._wake_held_back()
        if exc is not None:
            raise exc  # a fault of the streak itself, not of a task: the consumer logs it
        return leftover  # type: ignore[no-any-return]

    def kill(self, streak: Streak, active: Active) -> None:
        """(Loop) A hard time limit or a terminating revoke: stop waiting for ``active``'s run."""
        with streak.lock:
            run = streak.current
            if streak.abandoned or run is None or run.active is not active:
                return  # it returned just now: the thread reports it as it finished
            streak.abandoned = True
        job = streak.job
        assert job is not None and active.killed is not None
        self._threads.abandon(job)  # the thread runs on; a fresh one takes the slot
        self._on_abandoned()
        # A copy: the abandoned thread still writes ``run.value``/``run.exc`` when its body
        # returns (or raises the limit's exception), which must not replace the kill reported here.
        limit = run.request.time_limit or run.plan.time_limit
        exc = _killed(active.killed, limit, active.stopped_at, run.task.run)
        self._report(replace(run, value=NO_VALUE, exc=exc, runtime=time.perf_counter() - run.t0))
        self._processor.fetcher.done()
        if not job.future.done():
            job.future.set_result((None, None))  # the consumer goes on; nothing is left over

    def runs_at_once(self) -> int:
        """(Any thread) How many runs go on now, for the fetcher's prefetch target: short runs
        share one streak, runs that wait get a streak each, up to every slot."""
        processor = self._processor
        return max(1, min(len(processor.active), processor.fetcher.concurrency))

    def collect_done(self) -> int:
        """(Loop) How many runs the streaks finished since the last call."""
        with self._done_lock:
            done, self._done = self._done, 0
            self._wake_pending = False
        return done

    def _apply_done(self) -> None:
        """(Loop) Count the streaks' finished runs done (the fetcher may have room now)."""
        done = self.collect_done()
        if done:
            self._processor.fetcher.done(done)

    def _report(self, run: Run) -> None:
        """(Any thread) Report a finished run, as the processor reports any other."""
        processor = self._processor
        try:
            processor.finish(run.d, run.env, run.task, run.request, run.plan, run.runtime, run.value, run.exc)
        except Exception as exc:
            processor.active.pop(run.d.id, None)
            processor.reporter.internal_error(run.d, exc)

    # -- slot thread side -----------------------------------------------------------------------
    def accept(self, d: Delivery) -> Run | None:
        """(Any thread) ``d`` as a run that may join a streak, or None (see the module doc)."""
        processor = self._processor
        if d.redelivered or d.queue in processor.fetcher.paused:  # the consumer gives it back
            return None
        got = intake(d, processor.tasks, processor.revoked, processor.accept, processor.hostname)
        if isinstance(got, Refused):
            return None
        plan = processor.plans.get(got.task.name)
        if plan is None or not plan.streak:
            return None
        workflow = got.request.workflow
        if workflow is not None and workflow.results_of is not None:
            return None
        return Run(d, got.env, got.task, got.request, plan)

    def _streak(self, streak: Streak, run: Run) -> Delivery | None:
        processor = self._processor
        inbox = processor.fetcher.inbox
        while True:
            if not self._run(streak, run):
                return None  # abandoned: the loop reported the run; this thread retires
            if processor.stopping or self.given_up or streak.retire:
                return None
            d = inbox.take()
            if d is None:
                return None
            try:
                next_run = self.accept(d)
            except Exception:  # the consumer takes it the usual way, and reports what fails
                return d
            if next_run is None:
                return d
            run = next_run

    def _run(self, streak: Streak, run: Run) -> bool:
        """Run one body; False if the loop killed it meanwhile (and reported it)."""
        processor = self._processor
        d, request, plan = run.d, run.request, run.plan
        call = RunningCall()
        active = Active(
            d.id, run.task.name, d.delivery, time.time(), call=call, request=request, enqueued=run.env.created
        )
        active.on_kill = lambda: self.kill(streak, active)
        run.active = active
        run.t0 = t0 = time.perf_counter()
        with streak.lock:
            streak.current = run
        processor.active[d.id] = active
        soft = request.soft_time_limit or plan.soft_time_limit
        hard = request.time_limit or plan.time_limit
        try:
            run.value = self._runner.run_here(run.task, request, call, soft, hard, active)
        except BaseException as exc:  # SystemExit too: the task's failure, reported as a value
            run.exc = exc
        run.runtime = time.perf_counter() - t0
        with streak.lock:
            if streak.abandoned:
                return False
            streak.current = None
        if self.given_up:  # shutdown gave it back already
            return True
        self._report(run)
        self._count_done()
        return True

    def _count_done(self) -> None:
        """(Slot thread) One more run done. The loop is woken for it only when the fetcher is
        waiting for exactly that room; otherwise it collects the count at its next fetch. The
        room is worked out every ``ROOM_EVERY`` runs, or when the inbox runs dry (profiled: at
        every run it cost a tenth of the streak's own work), so a refill may start that many
        runs late while a full inbox still holds that many."""
        fetcher = self._processor.fetcher
        with self._done_lock:
            self._done += 1
            if self._wake_pending or fetcher.state != "full":
                return
            if self._done % ROOM_EVERY and not fetcher.inbox.empty():
                return
            if not fetcher.wants_room(self._done):
                return
            self._wake_pending = True
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody fetches any more
            self._loop.call_soon_threadsafe(self._apply_done)

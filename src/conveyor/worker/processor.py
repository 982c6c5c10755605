"""The processor: takes deliveries from the inbox and carries each one through to its outcome.

    inbox ──> intake ──refused──> reporter
                 │
                 └─accepted──> guards ─> start/running mark ─> runner ─> reporter

``concurrency`` consumers run ``consume()`` side by side. The inline fast path (solo pool, sync,
no guards, at-least-once, not a redelivery) runs a task with no await at all; every other path
awaits what it needs (guards in their own threads, an at-most-once ``start`` or a redelivery's
``running`` mark confirmed by the broker before the body starts, a thread, a coroutine).

The processor also owns the set of running tasks (``active``): revokes with ``terminate`` and
hard time limits stop waiting for a run through it, and each heartbeat names them so that a
worker's death counts against them only.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

from ..brokers import Delivery, Outcome
from ..einfo import body_stack, stopped_where
from ..exceptions import BrokerError, EncodeError, TaskRevokedError
from . import signalling
from .intake import Refused, intake
from .plan import Plan, make_plan
from .pools import PoolBroken, ProcessDied
from .runners import Active, AsyncRunner, InlineRunner, ThreadRunner
from .streaks import NO_VALUE, Run

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ..execution.guards import RunGuard
    from ..message import Envelope
    from ..request import Request
    from ..task import Task
    from .fetcher import Fetcher
    from .procpool import ProcessRunner
    from .reporter import Reporter
    from .settler import Settler
    from .streaks import Streaks

logger = logging.getLogger("conveyor.worker")


class Processor:
    def __init__(
        self,
        tasks: Mapping[str, Task[Any, Any]],
        run_guards: Callable[[Task[Any, Any]], list[RunGuard]],
        fetcher: Fetcher,
        settler: Settler,
        reporter: Reporter,
        sync_runner: InlineRunner | ThreadRunner | ProcessRunner,
        async_runner: AsyncRunner,
        guard_executor: Executor,
        accept: frozenset[str],
        hostname: str,
        prepare: Callable[[Request], None] | None = None,
    ) -> None:
        self.tasks = tasks
        self.run_guards = run_guards
        self.fetcher = fetcher
        self.settler = settler
        self.reporter = reporter
        self.sync_runner = sync_runner
        self.async_runner = async_runner
        self.guard_executor = guard_executor
        self.accept = accept
        self.hostname = hostname
        # Called (in an I/O thread) before a workflow step that needs the broker first: a chord
        # body reads its header's results. What it raises dead-letters the delivery.
        self.prepare = prepare
        self.inline_pool = isinstance(sync_runner, InlineRunner)
        self.active: dict[str, Active] = {}
        self.revoked: dict[str, bool] = {}  # revokes among this worker's leases: id -> terminate
        self.plans: dict[str, Plan] = {}
        self.stopping = False
        # Called as each delivery is done, before the consumer takes the next: a worker that
        # retires after a task (recycle.py) stops here, so no further task starts.
        self.after_each: Callable[[], None] | None = None
        # Slot threads' streaks (threads pool; streaks.py), set by the worker when it uses them.
        self.streaks: Streaks | None = None

    # -- the consumer loop ---------------------------------------------------------------------
    async def consume(self) -> None:
        fetcher = self.fetcher
        inbox = fetcher.inbox
        leftover: Delivery | None = None  # the delivery that ended this consumer's streak
        while True:
            d = leftover if leftover is not None else await inbox.get()
            leftover = None
            if d is None:
                return
            if self.stopping or d.queue in fetcher.paused:
                # Shutting down, or its queue was paused after it was prefetched: not started
                # yet, so it goes back to the front of its queue untouched (no attempt counted).
                fetcher.give_back(d, shutting_down=self.stopping)
                continue
            streaked = False  # a streak reports (and counts done) each of its runs itself
            try:
                got = intake(d, self.tasks, self.revoked, self.accept, self.hostname)
                if isinstance(got, Refused):
                    self.revoked.pop(d.id, None)
                    self.reporter.refused(d, got)
                    signalling.refused(d, got, self.hostname)
                else:
                    plan = self.plans.get(got.task.name) or self._plan(got.task)
                    wf = got.request.workflow
                    if wf is not None and wf.results_of is not None and self.prepare is not None:
                        loop = asyncio.get_running_loop()
                        try:
                            await loop.run_in_executor(self.guard_executor, self.prepare, got.request)
                        except BrokerError:
                            raise
                        except Exception as exc:
                            self.reporter.dead(d, got.request, exc, str(exc), enqueued=got.env.created)
                            continue
                        await self._process(d, got.env, got.task, got.request, plan)
                    elif plan.inline and not d.redelivered:
                        self._run_inline(d, got.env, got.task, got.request, plan)  # no awaits at all
                    elif plan.streak and not d.redelivered and self.streaks is not None:
                        streaked = True
                        if not self.streaks.wanted():
                            await self.streaks.hold_back(d)  # the running streaks take it
                            continue
                        run = Run(d, got.env, got.task, got.request, plan)
                        leftover = await self.streaks.run(run)
                    else:
                        await self._process(d, got.env, got.task, got.request, plan)
            except BrokerError as exc:
                # The broker failed a guard's call (a lock, a limit): not the message's fault.
                logger.error("task %s: broker unreachable while preparing it; giving it back: %s", d.id, exc)
                self.settler.add(Outcome("release", d.id, d.delivery))
            except Exception as exc:
                if streaked:
                    # A fault of the streak itself, outside any task body (which reports its own
                    # errors): the run it was reporting may stay leased while this worker lives.
                    logger.exception("internal error in a slot thread's streak (please report it)")
                    continue
                self.active.pop(d.id, None)
                self.reporter.internal_error(d, exc)
            finally:
                if not streaked:
                    fetcher.done()
                    if self.after_each is not None:
                        self.after_each()

    def _plan(self, task: Task[Any, Any]) -> Plan:
        plan = make_plan(
            task,
            self.run_guards(task),
            self.sync_runner,
            self.async_runner,
            self.inline_pool,
            streaks=self.streaks is not None,
        )
        self.plans[task.name] = plan
        return plan

    async def _process(
        self, d: Delivery, env: Envelope, task: Task[Any, Any], request: Request, plan: Plan
    ) -> None:
        guards = plan.guards
        loop = asyncio.get_running_loop()
        if guards:
            instead = await loop.run_in_executor(
                self.guard_executor, _guards_before, guards, task, request, d
            )
            if instead is not None:
                self.reporter.instead_of_run(instead, d, request, env.created)
                return
        try:
            if not plan.acks_late:
                # At-most-once: tell the broker before running, so a crash mid-run dead-letters
                # the job instead of running it again. (Inside the try: guards are undone even
                # if this fails.)
                await self.settler.add_and_wait(Outcome("start", d.id, d.delivery))
            elif d.redelivered:
                # Its last worker died (or gave it back). If it killed that worker, it may kill
                # this one before the next heartbeat: the broker must know it is running first,
                # so that such a death counts against it (and only it) and it ends in the dead
                # letters instead of a loop. Only redeliveries pay this round trip.
                await self.settler.add_and_wait(Outcome("running", d.id, d.delivery))
            if isinstance(plan.runner, InlineRunner):  # solo pool: on the loop, after the awaits
                self._run_inline(d, env, task, request, plan)
            else:
                await self._run_awaited(d, env, task, request, plan)
        finally:
            if guards:
                await loop.run_in_executor(self.guard_executor, _guards_after, guards, task, request, d)

    def _run_inline(
        self, d: Delivery, env: Envelope, task: Task[Any, Any], request: Request, plan: Plan
    ) -> None:
        runner = plan.runner
        assert isinstance(runner, InlineRunner)
        active, t0 = self._begin(d, task, request, env.created)
        soft = request.soft_time_limit or plan.soft_time_limit
        hard = request.time_limit or plan.time_limit
        try:
            value = runner.run(task, request, active, soft, hard)
        except BaseException as exc:  # sys.exit() in a task fails the task, not the worker
            self._end(d, env, task, request, plan, t0, NO_VALUE, exc)
            return
        self._end(d, env, task, request, plan, t0, value, None)

    async def _run_awaited(
        self, d: Delivery, env: Envelope, task: Task[Any, Any], request: Request, plan: Plan
    ) -> None:
        runner = plan.runner
        assert not isinstance(runner, InlineRunner)
        if env.content_type == "pickle" and getattr(runner, "refuses_pickled_arguments", False):
            # Decoded from pickle they may hold any object; sent on to a -P processes child
            # as msgpack a set would arrive as a list, a datetime as text: refused, not changed.
            # Straight to the dead letters: no retry policy can make the same message fit.
            exc = EncodeError(
                f"the arguments of {task.name} are pickled, and cannot be sent to a -P processes "
                "child (JSON and msgpack arguments can): send them as JSON or msgpack, or run this "
                "task on a worker with -P threads"
            )
            self.reporter.failed_unrun(d, request, exc, env.created)
            return
        active, t0 = self._begin(d, task, request, env.created)
        soft = request.soft_time_limit or plan.soft_time_limit
        hard = request.time_limit or plan.time_limit
        try:
            value = await runner.run(task, request, active, soft, hard)
        except asyncio.CancelledError:
            raise  # the worker itself is being cancelled
        except BaseException as exc:
            # BaseException: sys.exit() or KeyboardInterrupt in a task is that task's failure
            # (as in Celery); let through, it would stop or wedge the whole worker.
            self._end(d, env, task, request, plan, t0, NO_VALUE, exc)
            return
        self._end(d, env, task, request, plan, t0, value, None)

    def _begin(
        self, d: Delivery, task: Task[Any, Any], request: Request, enqueued: float | None
    ) -> tuple[Active, float]:
        active = Active(d.id, task.name, d.delivery, time.time(), request=request, enqueued=enqueued)
        self.active[d.id] = active
        return active, time.perf_counter()

    def _end(
        self,
        d: Delivery,
        env: Envelope,
        task: Task[Any, Any],
        request: Request,
        plan: Plan,
        t0: float,
        value: Any,
        exc: BaseException | None,
    ) -> None:
        """Report a finished run: success, revoked (terminated), or an error to classify."""
        self.finish(d, env, task, request, plan, time.perf_counter() - t0, value, exc)

    def finish(
        self,
        d: Delivery,
        env: Envelope,
        task: Task[Any, Any],
        request: Request,
        plan: Plan,
        runtime: float,
        value: Any,
        exc: BaseException | None,
    ) -> None:
        """Report a run that took ``runtime`` seconds (see ``_end``): on the loop, or in the slot
        thread that ran it on a streak (streaks.py)."""
        del self.active[d.id]
        self.revoked.pop(d.id, None)
        if exc is None:
            self.reporter.success(d, task, request, value, plan.store_result, runtime, env.created)
        elif isinstance(exc, TaskRevokedError):
            reason = str(exc) or "revoked while running (terminated)"
            # Where: read by the worker when it stopped waiting, or (the exception raised in the
            # body itself reached its end first) the place it was raised.
            stack = exc.stopped_at or body_stack(
                traceback.extract_tb(exc.__traceback__), task.run, strict=True
            )
            if stack:
                reason += f"; stopped at {stopped_where(stack)}"
            self.reporter.revoked(d, reason, request.retries, request, runtime, env.created)
            signalling.terminated(task, request)
        elif isinstance(exc, ProcessDied):  # -P processes: a worker death, not the task's failure
            self.reporter.died(d, task, request, exc.how, exc.max_deaths, runtime, env.created)
        elif isinstance(exc, PoolBroken):  # -P processes: no child could start; never started
            self.settler.add(Outcome("release", d.id, d.delivery))
        else:
            self.reporter.error(d, env, task, request, exc, runtime)

    # -- revokes -------------------------------------------------------------------------------
    def on_revoked(self, revoked: dict[str, bool], loop: asyncio.AbstractEventLoop | None) -> None:
        """Called from the keeper thread with revokes among this worker's leases.

        The set is updated right here, not via the loop: under the solo pool the loop may be
        busy running a task, and the next prefetched task must already see its revoke."""
        self.revoked.update(revoked)
        if self.inline_pool:
            # The solo pool runs a sync task on the loop thread itself: the loop cannot run
            # _terminate until the task ends, so the exception is raised in it from here.
            for task_id, terminate in revoked.items():
                active = self.active.get(task_id)
                if terminate and active is not None and active.call is not None:
                    logger.warning("terminating task %s[%s]: revoked", active.task, task_id)
                    active.call.interrupt(TaskRevokedError)
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._terminate, revoked)

    def _terminate(self, revoked: dict[str, bool]) -> None:
        """On the loop: stop running tasks whose revoke asked for it."""
        for task_id, terminate in revoked.items():
            active = self.active.get(task_id)
            if active is None or not terminate:
                # Prefetched: skipped when its turn comes (intake). Running without terminate:
                # Celery semantics, it finishes.
                continue
            logger.warning("terminating task %s[%s]: revoked", active.task, task_id)
            active.stop_waiting("revoked")
            if active.call is not None:
                active.call.interrupt(TaskRevokedError)

    def running(self) -> list[tuple[str, int]]:
        """(Keeper thread) The tasks running now, for the heartbeat to mark."""
        return [(a.id, a.delivery) for a in list(self.active.values())]


def _guards_before(
    guards: list[RunGuard], task: Task[Any, Any], request: Request, d: Delivery
) -> Outcome | None:
    entered: list[RunGuard] = []
    for guard in guards:
        instead = guard.before(task, request, d)
        if instead is not None:
            _guards_after(entered, task, request, d)  # undo the guards that let it through
            return instead
        entered.append(guard)
    return None


def _guards_after(guards: list[RunGuard], task: Task[Any, Any], request: Request, d: Delivery) -> None:
    for guard in reversed(guards):
        try:
            guard.after(task, request, d)
        except Exception:
            logger.exception("run guard %r failed after task %s", guard, d.id)

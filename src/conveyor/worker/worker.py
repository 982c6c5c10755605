"""The worker process: one asyncio event loop that fetches, runs and settles tasks.

    fetch loop ──(leased deliveries)──> inbox ──> N consumers ──(outcomes)──> settler ──> broker
        ▲                                              │
        └── room (held < prefetch limit) <─────────────┘        keeper thread: heartbeats leases

- ``async def`` tasks run on the loop; sync tasks run in a thread pool (``-P threads``, the
  default, or ``-P asyncio``) or inline on the loop thread (``-P solo``, fastest for tiny tasks).
- At most ``concurrency * prefetch_multiplier`` deliveries are held at once; each is leased and
  kept alive by the keeper thread, so a prefetched job is never lost and never runs twice
  while this worker lives.
- Graceful shutdown (SIGTERM/SIGINT): stop fetching, give prefetched jobs back at once, let
  running tasks finish for ``worker_shutdown_timeout`` seconds, give back what is still
  running. A second signal exits at once; the leases expire and other workers take over.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..brokers import Delivery, Outcome
from ..exceptions import (
    BrokerError,
    DecodeError,
    NotRegistered,
    SoftTimeLimitExceeded,
    TaskRevokedError,
    TimeLimitExceeded,
)
from ..execution import decide, describe
from ..message import Envelope, decode_envelope, unpack_args
from ..request import Request, current_request
from . import outcomes
from .keeper import Keeper
from .limits import RunningCall, SoftLimitCoroutine, Watchdog
from .naming import expand_name, lease_owner
from .settler import Settler

if TYPE_CHECKING:
    from ..app import Conveyor
    from ..task import Task
    from .guards import RunGuard

logger = logging.getLogger("conveyor.worker")

FETCH_WAIT = 1.0  # longest a fetch blocks, so a stop request is noticed promptly
POOLS = ("threads", "asyncio", "solo")
DEFAULT_CONCURRENCY = {"threads": 8, "asyncio": 100, "solo": 1}
SPARE_THREADS = 8  # replacements for threads left running by a hard time limit
# Adaptive prefetch: for short tasks a worker may hold up to PREFETCH_HORIZON seconds of work per
# slot (never more than PREFETCH_MAX jobs), so tiny tasks come in large batches. Jobs held that
# briefly could not start sooner on another worker, so this costs no fairness; for tasks slower
# than PREFETCH_HORIZON / multiplier the Celery rule (concurrency x multiplier) applies as is.
PREFETCH_HORIZON = 0.1
PREFETCH_MAX = 1000


@dataclass(slots=True)
class _Active:
    """A task this worker is running now."""

    id: str
    task: str
    delivery: int
    started: float
    kill: asyncio.Future[str] | None = None  # async tasks: resolved to stop waiting for them
    waiter: asyncio.Future[Any] | None = None  # sync tasks in threads: cancelled to stop waiting
    call: RunningCall | None = None
    killed: str | None = None  # why the worker stopped waiting: "time" or "revoked"


@dataclass(frozen=True, slots=True)
class _Plan:
    """A task's settings as this worker applies them, resolved once (not per run)."""

    acks_late: bool
    store_result: bool
    inline: bool  # solo pool, sync, no guards, at-least-once: runs without any await
    soft_time_limit: float | None
    time_limit: float | None
    guards: list[RunGuard]


@dataclass(slots=True)
class Stats:
    processed: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    dead_lettered: int = 0
    revoked: int = 0
    abandoned_threads: int = 0


class Worker:
    """Runs tasks of ``app`` from ``queues``.

    >>> Worker(app, queues=["default"], concurrency=4).run()    # doctest: +SKIP
    """

    def __init__(
        self,
        app: Conveyor,
        queues: list[str] | None = None,
        concurrency: int | None = None,
        pool: str | None = None,
        name: str | None = None,
        prefetch_multiplier: int | None = None,
        burst: bool = False,
        shutdown_timeout: float | None = None,
        install_signal_handlers: bool = True,
    ) -> None:
        conf = app.conf
        self.app = app
        self.pool = pool or conf.worker_pool
        if self.pool not in POOLS:
            raise ValueError(f"unknown pool {self.pool!r}: choose one of {', '.join(POOLS)}")
        self.queues = list(queues or [conf.task_default_queue])
        if not self.queues or not all(isinstance(q, str) and q for q in self.queues):
            raise ValueError(f"queues must be non-empty names, got {self.queues!r}")
        concurrency = concurrency or conf.worker_concurrency or DEFAULT_CONCURRENCY[self.pool]
        self.concurrency = 1 if self.pool == "solo" else int(concurrency)
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        multiplier = int(prefetch_multiplier or conf.worker_prefetch_multiplier)
        if multiplier < 1:
            raise ValueError(f"prefetch multiplier must be at least 1, got {multiplier}")
        self.prefetch_limit = self.concurrency * multiplier  # the floor; see _prefetch_target
        self._runtime_ewma: float | None = None  # seconds per task, recent average
        self.hostname = expand_name(name)
        self.owner = lease_owner(self.hostname)
        self.burst = burst
        self.shutdown_timeout = float(
            conf.worker_shutdown_timeout if shutdown_timeout is None else shutdown_timeout
        )
        self.lease_timeout = float(conf.worker_lease_timeout)
        self.install_signal_handlers = install_signal_handlers
        self.accept = frozenset(conf.accept_content)
        self.dead_letter_failures = bool(conf.get("task_dead_letter_on_failure", True))
        self.stats = Stats()
        self.started = time.time()
        self._active: dict[str, _Active] = {}
        # Every delivery this worker holds (prefetched, running, or settled but not yet
        # confirmed by the broker): id -> delivery. What a reconcile keeps (see _reconcile).
        self._leases: dict[str, int] = {}
        self._trouble = False  # the broker failed a call: reconcile the leases once it is back
        self._keeper: Keeper | None = None
        self._plans: dict[str, _Plan] = {}
        self._revoked: dict[str, bool] = {}
        self._held = 0
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._signals = 0
        self.stuck_threads = False

    # -- lifecycle ---------------------------------------------------------------------------
    def run(self) -> None:
        """Run until stopped (SIGTERM/SIGINT, ``stop()``, or an empty queue with ``burst``)."""
        previous: dict[signal.Signals, Any] = {}
        if self.install_signal_handlers and threading.current_thread() is threading.main_thread():
            # signal.signal, not loop.add_signal_handler: the handler must run even while a
            # solo-pool task occupies the loop thread.
            for signum in (signal.SIGTERM, signal.SIGINT):
                previous[signum] = signal.signal(signum, self._on_signal)
        try:
            asyncio.run(self.run_async())
        except BaseException:
            # The loop itself died (a bug; task code cannot get here). Stop renewing the leases
            # at once, so other workers take the tasks over instead of a worker that heartbeats
            # but runs nothing.
            if self._keeper is not None:
                self._keeper.stop()
            logger.critical("%s: worker loop crashed; its tasks go back to the queue", self.hostname)
            raise
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def stop(self) -> None:
        """Ask the worker to shut down gracefully (thread-safe)."""
        self._stopping = True
        loop, event = self._loop, self._stop_event
        if loop is not None and event is not None and not loop.is_closed():
            loop.call_soon_threadsafe(event.set)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._signals += 1
        if self._signals == 1:
            logger.warning(
                "%s: %s received, shutting down gracefully (again to stop at once)",
                self.hostname,
                signal.Signals(signum).name,
            )
            self.stop()
        else:
            logger.warning(
                "%s: second signal, stopping at once; leases will return unfinished tasks", self.hostname
            )
            os._exit(1)

    async def run_async(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._stop_event = asyncio.Event()
        if self._stopping:
            self._stop_event.set()
        broker = self.app.broker
        conf = self.app.conf
        self._fetch_exec = ThreadPoolExecutor(1, thread_name_prefix="conveyor-fetch")
        self._settle_exec = ThreadPoolExecutor(1, thread_name_prefix="conveyor-settle")
        # Guards (locks, limits) make broker round trips of their own: not behind the settler.
        self._guard_exec = ThreadPoolExecutor(4, thread_name_prefix="conveyor-guard")
        self._threads = ThreadPoolExecutor(
            self.concurrency + SPARE_THREADS, thread_name_prefix="conveyor-task"
        )
        self._watchdog = Watchdog()
        self._inbox: asyncio.Queue[Delivery | None] = asyncio.Queue()
        self._room = asyncio.Event()
        self.settler = Settler(
            broker, self._settle_exec, lambda: float(conf.result_expires), self._on_settled, self._on_trouble
        )
        self.settler.start()
        keeper = self._keeper = Keeper(
            broker,
            self.owner,
            float(conf.worker_heartbeat_interval),
            self.lease_timeout,
            int(conf.task_max_worker_deaths),
            float(conf.result_expires),
            float(conf.dead_letter_expires),
            self._info,
            self._running,
            self._on_revoked,
            self._on_trouble,
        )
        await loop.run_in_executor(self._settle_exec, keeper.start)
        logger.info(
            "%s ready: queues=%s pool=%s concurrency=%d broker=%s",
            self.hostname,
            ",".join(self.queues),
            self.pool,
            self.concurrency,
            conf.broker(),
        )
        consumers = [
            asyncio.create_task(self._consume(), name=f"conveyor-consumer-{i}")
            for i in range(self.concurrency)
        ]
        fetcher = asyncio.create_task(self._fetch_loop(), name="conveyor-fetch")
        stopper = asyncio.create_task(self._stop_event.wait())
        try:
            await asyncio.wait({fetcher, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._stopping = True
            stopper.cancel()
            await self._shutdown(fetcher, consumers, keeper)

    async def _shutdown(
        self, fetcher: asyncio.Task[None], consumers: list[asyncio.Task[None]], keeper: Keeper
    ) -> None:
        loop = asyncio.get_running_loop()
        released = self._release_inbox()
        # The fetch loop ends by itself once _stopping is set (its fetch blocks at most FETCH_WAIT);
        # whatever it still brings back is released by the loop itself.
        await asyncio.wait({fetcher}, timeout=FETCH_WAIT + 1)
        released += self._release_inbox()
        if released:
            logger.info("%s: gave %d prefetched task(s) back to the queue", self.hostname, released)
        for _ in consumers:
            self._inbox.put_nowait(None)
        _, pending = (
            await asyncio.wait(consumers, timeout=self.shutdown_timeout) if consumers else (set(), set())
        )
        if pending:
            logger.warning(
                "%s: %d task(s) still running after %.0fs; giving them back to the queue",
                self.hostname,
                len(self._active),
                self.shutdown_timeout,
            )
            for active in list(self._active.values()):
                task = self.app.tasks.get(active.task)
                if task is None or task.acks_late:
                    self.settler.add(Outcome("release", active.id, active.delivery))
            for consumer in pending:
                consumer.cancel()
            self.stuck_threads = True
        await self.settler.close()
        keeper.stop()
        try:
            await loop.run_in_executor(self._settle_exec, self.app.broker.unregister_worker, self.owner)
        except Exception as exc:
            logger.warning("could not unregister worker: %s", exc)
        self._watchdog.stop()
        self._threads.shutdown(wait=False, cancel_futures=True)
        self._fetch_exec.shutdown(wait=False)
        self._settle_exec.shutdown(wait=False)
        self._guard_exec.shutdown(wait=False)
        logger.info("%s stopped: %d task(s) processed", self.hostname, self.stats.processed)

    def _release_inbox(self) -> int:
        """Give every not-yet-started delivery back. Stop sentinels (None) are kept: a fetch that
        returns late during shutdown must not swallow the consumers' signal to stop."""
        released = sentinels = 0
        while not self._inbox.empty():
            d = self._inbox.get_nowait()
            if d is None:
                sentinels += 1
                continue
            self.settler.add(Outcome("release", d.id, d.delivery))
            self._held -= 1
            released += 1
        for _ in range(sentinels):
            self._inbox.put_nowait(None)
        return released

    # -- fetching ----------------------------------------------------------------------------
    async def _fetch_loop(self) -> None:
        loop = asyncio.get_running_loop()
        broker = self.app.broker
        backoff = 0.05
        failing = False
        while not self._stopping:
            room = self._prefetch_target() - self._held
            if room <= 0:
                self._room.clear()
                await self._room.wait()
                continue
            try:
                if self._trouble:
                    await self._reconcile()
                batch = await loop.run_in_executor(
                    self._fetch_exec,
                    broker.fetch,
                    self.queues,
                    self.owner,
                    room,
                    self.lease_timeout,
                    FETCH_WAIT,
                )
            except Exception as exc:
                self._trouble = True
                if not failing:
                    logger.error("%s: fetch failed (broker unreachable?), retrying: %s", self.hostname, exc)
                    failing = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if failing:
                logger.warning("%s: fetching again", self.hostname)
                failing, backoff = False, 0.05
            if not batch:
                if self.burst and self._held == 0:
                    return
                continue
            self._held += len(batch)
            leases = self._leases
            for d in batch:
                leases[d.id] = d.delivery
                self._inbox.put_nowait(d)
            if self._stopping:
                self._release_inbox()

    async def _reconcile(self) -> None:
        """After the broker failed a call: give back what it says this worker leases but this
        worker does not hold (an ack lost in a broker crash or failover would otherwise keep the
        job leased, renewed by every heartbeat, for ever). Runs on the fetch thread between two
        fetches, so every job this worker fetched is in ``_leases``."""
        self._trouble = False
        held = list(self._leases)
        try:
            given_back = await asyncio.get_running_loop().run_in_executor(
                self._fetch_exec, self.app.broker.reconcile, self.owner, held
            )
        except BaseException:
            self._trouble = True
            raise
        if given_back:
            logger.warning(
                "%s: the broker still leased %d task(s) to this worker that it no longer holds (an "
                "acknowledgement lost in a broker crash?); gave them back: %s",
                self.hostname,
                len(given_back),
                ", ".join(given_back[:10]),
            )

    def _on_trouble(self) -> None:
        """The broker failed a call (any thread): reconcile leases once it answers again."""
        self._trouble = True

    def _on_settled(self, batch: list[Outcome]) -> None:
        """On the loop, once the broker has a batch: those deliveries are no longer held."""
        leases = self._leases
        for o in batch:
            if o.kind not in ("start", "running") and leases.get(o.id) == o.delivery:
                del leases[o.id]

    def _running(self) -> list[tuple[str, int]]:
        """(Keeper thread) The tasks running now, for the heartbeat to mark."""
        return [(a.id, a.delivery) for a in list(self._active.values())]

    # -- running -----------------------------------------------------------------------------
    async def _consume(self) -> None:
        while True:
            d = await self._inbox.get()
            if d is None:
                return
            if self._stopping:  # shutting down: not started yet, so it goes back untouched
                self.settler.add(Outcome("release", d.id, d.delivery))
                self._held -= 1
                continue
            try:
                prepared = self._prepare(d)
                if prepared is not None:
                    if prepared[3].inline and not d.redelivered:
                        self._execute_inline(d, *prepared)  # the hot path: no awaits at all
                    else:
                        await self._handle(d, *prepared)
            except BrokerError as exc:
                # The broker failed a guard's call (a lock, a limit): not the message's fault.
                logger.error("task %s: broker unreachable while preparing it; giving it back: %s", d.id, exc)
                self.settler.add(Outcome("release", d.id, d.delivery))
            except Exception as exc:
                # Anything else is this message breaking the worker's own handling of it. Giving
                # it back would only bring it here again (a poison loop): dead-letter it.
                self._active.pop(d.id, None)
                self.stats.dead_lettered += 1
                logger.exception("internal error while handling task %s; moved to dead letters", d.id)
                self.settler.add(outcomes.internal_error(d, exc, self.hostname))
            finally:
                self._held -= 1
                self._room.set()

    def _prepare(self, d: Delivery) -> tuple[Envelope, Task[Any, Any], Request, _Plan] | None:
        """Decode and check a delivery; None if it was settled here (dead letter, revoked, expired)."""
        try:
            env = decode_envelope(d.body)
        except DecodeError as exc:
            self._dead(d, None, exc, f"malformed message: {exc}")
            return None
        task = self.app.tasks.get(env.task)
        if task is None:
            missing = NotRegistered(f"task {env.task!r} is not registered on worker {self.hostname}")
            self._dead(
                d,
                None,
                missing,
                f"unknown task {env.task!r}: not registered on this worker "
                "(is its module imported by the app given with -A?)",
            )
            return None
        if d.id in self._revoked:
            self._revoked.pop(d.id, None)
            self._settle_revoked(d, "revoked", env.retries)
            return None
        if env.expires is not None and env.expires < time.time():
            self._settle_revoked(d, f"expired at {_utc(env.expires)}", env.retries)
            return None
        try:
            args, kwargs = unpack_args(env, self.accept)
        except DecodeError as exc:
            self._dead(d, None, exc, str(exc))
            return None
        request = Request(
            id=env.id,
            task=env.task,
            args=args,
            kwargs=kwargs,
            retries=env.retries,
            queue=d.queue,
            priority=env.priority,
            eta=env.eta,
            expires=env.expires,
            hostname=self.hostname,
            delivery=d.delivery,
            time_limit=env.time_limit,
            soft_time_limit=env.soft_time_limit,
            max_retries=env.max_retries,
            headers=env.headers,
        )
        return env, task, request, self._plans.get(task.name) or self._plan(task)

    async def _handle(
        self, d: Delivery, env: Envelope, task: Task[Any, Any], request: Request, plan: _Plan
    ) -> None:
        guards = plan.guards
        if guards:
            instead = await asyncio.get_running_loop().run_in_executor(
                self._guard_exec, _guards_before, guards, task, request, d
            )
            if instead is not None:
                self.settler.add(instead)
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
            if self.pool == "solo" and not task.is_async:
                self._execute_inline(d, env, task, request, plan)
            else:
                await self._execute(d, env, task, request, plan)
        finally:
            if guards:
                await asyncio.get_running_loop().run_in_executor(
                    self._guard_exec, _guards_after, guards, task, request, d
                )

    async def _execute(
        self, d: Delivery, env: Envelope, task: Task[Any, Any], request: Request, plan: _Plan
    ) -> None:
        soft = request.soft_time_limit or plan.soft_time_limit
        hard = request.time_limit or plan.time_limit
        active, t0 = self._begin(d, task)
        try:
            if task.is_async:
                value = await self._run_async(task, request, active, soft, hard)
            else:
                value = await self._run_thread(task, request, active, soft, hard)
        except asyncio.CancelledError:
            raise  # the worker itself is being cancelled
        except BaseException as exc:
            # BaseException: sys.exit() or KeyboardInterrupt in a task is that task's failure
            # (as in Celery); let through, it would stop or wedge the whole worker.
            self._end(d, env, task, request, plan, t0, _NO_VALUE, exc)
            return
        self._end(d, env, task, request, plan, t0, value, None)

    def _execute_inline(
        self, d: Delivery, env: Envelope, task: Task[Any, Any], request: Request, plan: _Plan
    ) -> None:
        """Run a sync task on the loop thread (solo pool)."""
        active, t0 = self._begin(d, task)
        try:
            value = self._run_inline(
                task,
                request,
                active,
                request.soft_time_limit or plan.soft_time_limit,
                request.time_limit or plan.time_limit,
            )
        except BaseException as exc:  # sys.exit() in a task fails the task, not the worker
            self._end(d, env, task, request, plan, t0, _NO_VALUE, exc)
            return
        self._end(d, env, task, request, plan, t0, value, None)

    def _begin(self, d: Delivery, task: Task[Any, Any]) -> tuple[_Active, float]:
        active = _Active(d.id, task.name, d.delivery, time.time())
        self._active[d.id] = active
        return active, time.perf_counter()

    def _end(
        self,
        d: Delivery,
        env: Envelope,
        task: Task[Any, Any],
        request: Request,
        plan: _Plan,
        t0: float,
        value: Any,
        exc: BaseException | None,
    ) -> None:
        """Settle a finished run: success, revoked (terminated), or an error to classify."""
        runtime = time.perf_counter() - t0
        del self._active[d.id]
        self._revoked.pop(d.id, None)
        if exc is not None:
            if isinstance(exc, TaskRevokedError):
                self._settle_revoked(d, str(exc) or "revoked while running (terminated)", request.retries)
            else:
                self._on_error(d, env, task, request, exc, runtime)
            return
        ewma = self._runtime_ewma
        self._runtime_ewma = runtime if ewma is None else ewma + (runtime - ewma) * 0.05
        self.settler.add(outcomes.success(d, request, value, plan.store_result, self.hostname))
        self.stats.processed += 1
        self.stats.succeeded += 1
        if logger.isEnabledFor(logging.INFO):
            logger.info("task %s[%s] succeeded in %.3fs", task.name, d.id, runtime)

    def _prefetch_target(self) -> int:
        """How many deliveries to hold: concurrency x multiplier, more for short tasks."""
        ewma = self._runtime_ewma
        if ewma is None:
            return self.prefetch_limit
        adaptive = int(self.concurrency * PREFETCH_HORIZON / max(ewma, 1e-6))
        return max(self.prefetch_limit, min(PREFETCH_MAX, adaptive))

    def _plan(self, task: Task[Any, Any]) -> _Plan:
        guards = self.app.run_guards(task)
        inline = self.pool == "solo" and not task.is_async and not guards and task.acks_late
        plan = _Plan(
            task.acks_late, not task.ignore_result, inline, task.soft_time_limit, task.time_limit, guards
        )
        self._plans[task.name] = plan
        return plan

    def _on_error(
        self,
        d: Delivery,
        env: Envelope,
        task: Task[Any, Any],
        request: Request,
        exc: BaseException,
        runtime: float,
    ) -> None:
        self.stats.processed += 1
        decision = decide(task, request, exc)
        if decision.verdict == "retry":
            self.stats.retried += 1
            self.settler.add(outcomes.retry(d, env, request, decision, self.hostname))
            logger.warning(
                "task %s[%s] will retry in %.1fs (attempt %d): %s: %s",
                task.name,
                d.id,
                decision.countdown,
                request.retries + 1,
                type(decision.exc).__name__,
                describe(decision.exc) if decision.exc is not None else "",
            )
        elif decision.verdict == "reject":
            if decision.requeue:
                self.settler.add(Outcome("release", d.id, d.delivery))
            else:
                self._dead(d, request, exc, f"rejected: {describe(exc)}", decision.traceback)
        else:
            failed = decision.exc or exc
            self.stats.failed += 1
            if self.dead_letter_failures:
                self.stats.dead_lettered += 1
            self.settler.add(
                outcomes.failure(
                    d, request, failed, decision.traceback, self.hostname, self.dead_letter_failures
                )
            )
            logger.error(
                "task %s[%s] failed after %.3fs: %s: %s\n%s",
                task.name,
                d.id,
                runtime,
                type(failed).__name__,
                describe(failed),
                decision.traceback or "",
            )

    def _dead(
        self, d: Delivery, request: Request | None, exc: BaseException, reason: str, trace: str | None = None
    ) -> None:
        self.stats.dead_lettered += 1
        logger.error("task %s moved to dead letters: %s", d.id, reason)
        self.settler.add(outcomes.dead(d, request, exc, trace, self.hostname, reason))

    def _settle_revoked(self, d: Delivery, reason: str, retries: int) -> None:
        self.stats.revoked += 1
        logger.info("task %s not run: %s", d.id, reason)
        self.settler.add(outcomes.revoked(d, reason, retries))

    # -- the three ways to run a task body --------------------------------------------------
    async def _run_async(
        self, task: Task[Any, Any], request: Request, active: _Active, soft: float | None, hard: float | None
    ) -> Any:
        loop = asyncio.get_running_loop()
        call_args = [task, *request.args] if task.bind else request.args
        wrapper = SoftLimitCoroutine(task.run(*call_args, **request.kwargs))

        async def drive() -> Any:
            try:
                return await wrapper
            except (SystemExit, KeyboardInterrupt) as exc:
                # Raised out of a task, asyncio would stop the whole event loop with it.
                return _Raised(exc)

        ctx = contextvars.copy_context()
        ctx.run(current_request.set, request)
        inner = loop.create_task(drive(), context=ctx)
        kill: asyncio.Future[str] = loop.create_future()
        active.kill = kill
        timers = []
        if soft:
            timers.append(loop.call_later(soft, wrapper.fire_soft, inner))
        if hard:
            timers.append(loop.call_later(hard, _resolve, kill, "time"))
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
        inner.cancel()
        inner.add_done_callback(_consume_result)
        raise _killed(kill.result(), hard)

    def _run_inline(
        self, task: Task[Any, Any], request: Request, active: _Active, soft: float | None, hard: float | None
    ) -> Any:
        call = RunningCall()
        active.call = call
        handles = self._arm(call, soft, hard, None)
        token = current_request.set(request)
        try:
            call_args = [task, *request.args] if task.bind else request.args
            return call.run(lambda: task.run(*call_args, **request.kwargs))
        finally:
            current_request.reset(token)
            for handle in handles:
                self._watchdog.cancel(handle)

    async def _run_thread(
        self, task: Task[Any, Any], request: Request, active: _Active, soft: float | None, hard: float | None
    ) -> Any:
        loop = asyncio.get_running_loop()
        call = RunningCall()
        call_args = [task, *request.args] if task.bind else request.args

        def body() -> Any:
            token = current_request.set(request)
            try:
                return call.run(lambda: task.run(*call_args, **request.kwargs))
            finally:
                current_request.reset(token)

        future = loop.run_in_executor(self._threads, body)
        active.call, active.waiter = call, future
        handles = self._arm(call, soft, hard, active)
        try:
            # Awaited directly (no asyncio.wait per task: this is the threads pool's hot path);
            # a hard limit or a terminating revoke cancels this wait via _kill.
            return await future
        except asyncio.CancelledError:
            if active.killed is None:
                raise  # the worker itself is being cancelled
            self.stats.abandoned_threads += 1  # the thread runs on; its late outcome is moot
            raise _killed(active.killed, hard) from None
        finally:
            for handle in handles:
                self._watchdog.cancel(handle)

    def _arm(
        self, call: RunningCall, soft: float | None, hard: float | None, active: _Active | None
    ) -> list[int]:
        """Schedule the soft and hard limits of a sync task on the watchdog thread."""
        handles = []
        now = time.monotonic()
        loop = self._loop
        if soft:

            def on_soft() -> None:
                call.interrupt(SoftTimeLimitExceeded)

            handles.append(self._watchdog.call_at(now + soft, on_soft))
        if hard:

            def on_hard() -> None:
                call.interrupt(TimeLimitExceeded)
                if active is not None and loop is not None:
                    loop.call_soon_threadsafe(self._kill, active, "time")

            handles.append(self._watchdog.call_at(now + hard, on_hard))
        return handles

    # -- revokes -----------------------------------------------------------------------------
    def _on_revoked(self, revoked: dict[str, bool]) -> None:
        """Called from the keeper thread with revokes among this worker's leases.

        The set is updated right here, not via the loop: under the solo pool the loop may be
        busy running a task, and the next prefetched task must already see its revoke."""
        self._revoked.update(revoked)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._apply_revokes, revoked)

    def _apply_revokes(self, revoked: dict[str, bool]) -> None:
        """On the loop: terminate running tasks whose revoke asked for it."""
        for task_id, terminate in revoked.items():
            active = self._active.get(task_id)
            if active is None:
                continue  # prefetched: skipped when its turn comes (see _handle)
            if not terminate:
                continue  # running; Celery semantics: revoke without terminate lets it finish
            logger.warning("terminating task %s[%s]: revoked", active.task, task_id)
            self._kill(active, "revoked")
            if active.call is not None:
                active.call.interrupt(TaskRevokedError)

    def _kill(self, active: _Active, reason: str) -> None:
        """On the loop: stop waiting for a running task (hard time limit or terminating revoke)."""
        if active.killed is None:
            active.killed = reason
        if active.kill is not None:
            _resolve(active.kill, reason)
        if active.waiter is not None and not active.waiter.done():
            active.waiter.cancel()

    def _info(self) -> bytes:
        stats = self.stats
        return json.dumps(
            {
                "hostname": self.hostname,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "queues": self.queues,
                "pool": self.pool,
                "concurrency": self.concurrency,
                "started": self.started,
                "processed": stats.processed,
                "succeeded": stats.succeeded,
                "failed": stats.failed,
                "retried": stats.retried,
                "dead_lettered": stats.dead_lettered,
                "revoked": stats.revoked,
                "abandoned_threads": stats.abandoned_threads,
                "active": [
                    {"id": a.id, "task": a.task, "started": a.started}
                    for a in list(self._active.values())[:100]
                ],
            }
        ).encode()


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


_NO_VALUE: Any = object()


@dataclass(frozen=True, slots=True)
class _Raised:
    """An async task's SystemExit/KeyboardInterrupt, carried out of its asyncio task as a value."""

    exc: BaseException


def _utc(timestamp: float) -> str:
    """An epoch time as UTC text, or as the number when it is out of range (broker data)."""
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))
    except (OverflowError, OSError, ValueError):
        return repr(timestamp)


def _resolve(fut: asyncio.Future[str], reason: str) -> None:
    if not fut.done():
        fut.set_result(reason)


def _consume_result(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()  # mark retrieved: the task was abandoned, its late outcome is moot


def _killed(reason: str, hard: float | None) -> Exception:
    if reason == "revoked":
        return TaskRevokedError("revoked while running (terminated)")
    return TimeLimitExceeded(f"hard time limit ({hard}s) exceeded")
